// Normalization and elementwise kernels over bf16 activations [rows, D], fp32 math, 16-byte
// accesses (8 bf16 per vector).
#include "common.cuh"

// RMSNorm: y = x * rsqrt(mean(x^2) + eps) * w. One warp per row; D % 256 == 0, D <= 1024.
extern "C" __global__ void rmsnorm(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w,
                                   bf16_t* __restrict__ y, u64 rows, int D, float eps) {
    const u64 row = blockIdx.x * (u64)(blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const uint4* xr = (const uint4*)(x + row * D);
    const uint4* wr = (const uint4*)w;
    uint4* yr = (uint4*)(y + row * D);
    const int chunks = D / 256;
    uint4 v[4];
    float ss = 0.0f;
#pragma unroll
    for (int c = 0; c < 4; ++c)
        if (c < chunks) {
            v[c] = xr[c * 32 + lane];
            u32 e[4] = {v[c].x, v[c].y, v[c].z, v[c].w};
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                float a = bf16x2_lo(e[i]), b = bf16x2_hi(e[i]);
                ss = __fmaf_rn(a, a, ss);
                ss = __fmaf_rn(b, b, ss);
            }
        }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float r = rsqrtf(ss / (float)D + eps);
#pragma unroll
    for (int c = 0; c < 4; ++c)
        if (c < chunks) {
            uint4 wv = wr[c * 32 + lane];
            u32 e[4] = {v[c].x, v[c].y, v[c].z, v[c].w};
            u32 we[4] = {wv.x, wv.y, wv.z, wv.w};
            u32 out[4];
#pragma unroll
            for (int i = 0; i < 4; ++i)
                out[i] = pack_bf16x2(bf16x2_lo(e[i]) * r * bf16x2_lo(we[i]), bf16x2_hi(e[i]) * r * bf16x2_hi(we[i]));
            yr[c * 32 + lane] = make_uint4(out[0], out[1], out[2], out[3]);
        }
}

// adaLN modulate: y[b, t, :] = x[b, t, :] * (1 + scale[b, :]) + shift[b, :], x and y [B, T, D],
// scale and shift [B, D]; D % 8 == 0. Grid-stride over 8-element vectors.
extern "C" __global__ void modulate(const bf16_t* __restrict__ x, const bf16_t* __restrict__ scale,
                                    const bf16_t* __restrict__ shift, bf16_t* __restrict__ y, u64 n,
                                    u64 tokens, int D) {
    const u64 n8 = n / 8;
    const u64 per_sample = tokens * D;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n8; i += (u64)gridDim.x * blockDim.x) {
        const u64 e0 = i * 8;
        const u64 b = e0 / per_sample;
        const u64 d0 = e0 % D;
        const uint4 xv = ((const uint4*)x)[i];
        const uint4 sv = *(const uint4*)(scale + b * D + d0);
        const uint4 hv = *(const uint4*)(shift + b * D + d0);
        u32 xe[4] = {xv.x, xv.y, xv.z, xv.w}, se[4] = {sv.x, sv.y, sv.z, sv.w}, he[4] = {hv.x, hv.y, hv.z, hv.w};
        u32 out[4];
#pragma unroll
        for (int k = 0; k < 4; ++k)
            out[k] = pack_bf16x2(__fmaf_rn(bf16x2_lo(xe[k]), 1.0f + bf16x2_lo(se[k]), bf16x2_lo(he[k])),
                                 __fmaf_rn(bf16x2_hi(xe[k]), 1.0f + bf16x2_hi(se[k]), bf16x2_hi(he[k])));
        ((uint4*)y)[i] = make_uint4(out[0], out[1], out[2], out[3]);
    }
}
