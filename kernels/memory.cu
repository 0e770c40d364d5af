// Streaming memory kernels: 16-byte vector accesses, grid-stride loops. `n4` counts 16-byte
// vectors (4 fp32 each); buffers are 16-byte aligned.
#include "common.cuh"

extern "C" __global__ void copy_u4(const uint4* __restrict__ src, uint4* __restrict__ dst, u64 n4) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n4; i += (u64)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

// b = s * a
extern "C" __global__ void scale_f4(const float4* __restrict__ a, float4* __restrict__ b, float s, u64 n4) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n4; i += (u64)gridDim.x * blockDim.x) {
        float4 v = a[i];
        b[i] = make_float4(s * v.x, s * v.y, s * v.z, s * v.w);
    }
}

// a = b + s * c (STREAM triad)
extern "C" __global__ void triad_f4(float4* __restrict__ a, const float4* __restrict__ b,
                                    const float4* __restrict__ c, float s, u64 n4) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n4; i += (u64)gridDim.x * blockDim.x) {
        float4 x = b[i];
        float4 y = c[i];
        a[i] = make_float4(__fmaf_rn(s, y.x, x.x), __fmaf_rn(s, y.y, x.y), __fmaf_rn(s, y.z, x.z),
                           __fmaf_rn(s, y.w, x.w));
    }
}

__device__ __forceinline__ float block_sum(float v) {
    __shared__ float warp_sums[32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    v = (threadIdx.x < blockDim.x / 32) ? warp_sums[threadIdx.x] : 0.0f;
    if (warp == 0)
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// First pass of sum(a): one partial sum per block (read-only over a).
extern "C" __global__ void reduce_sum_f4(const float4* __restrict__ a, float* __restrict__ partials, u64 n4) {
    float acc0 = 0.0f, acc1 = 0.0f;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n4; i += (u64)gridDim.x * blockDim.x) {
        float4 v = a[i];
        acc0 += v.x + v.y;
        acc1 += v.z + v.w;
    }
    float s = block_sum(acc0 + acc1);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// Second pass: one block sums the partials into out[0].
extern "C" __global__ void reduce_sum_final(const float* __restrict__ partials, float* __restrict__ out, u32 n) {
    float acc = 0.0f;
    for (u32 i = threadIdx.x; i < n; i += blockDim.x) acc += partials[i];
    float s = block_sum(acc);
    if (threadIdx.x == 0) out[0] = s;
}

// Register-resident fp32 FMA chains: CHAINS independent chains of `iters` steps x = x * b + c per
// thread; each step is one FMA = 2 FLOPs. The per-thread sum is stored so nothing is eliminated.
#define FMA_CHAINS 16
extern "C" __global__ void fma_fp32(float* __restrict__ out, float b, float c, u32 iters) {
    float x[FMA_CHAINS];
#pragma unroll
    for (int j = 0; j < FMA_CHAINS; ++j) x[j] = (float)(j + 1) * 1.0e-3f;
#pragma unroll 8
    for (u32 it = 0; it < iters; ++it) {
#pragma unroll
        for (int j = 0; j < FMA_CHAINS; ++j) x[j] = __fmaf_rn(x[j], b, c);
    }
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < FMA_CHAINS; ++j) s += x[j];
    out[blockIdx.x * (u64)blockDim.x + threadIdx.x] = s;
}
