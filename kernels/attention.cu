// Attention forward, non-causal, head dim 64. Q, K, V, O are bf16 [B*H, S, 64] (one contiguous
// [S, 64] matrix per batch-head); S % 64 == 0. `scale` = 1/sqrt(64).
//
// Naive three-step version (what a framework does without a fused kernel):
//   attn_scores:  Sc = scale * Q K^T, fp32 [B*H, S, S] written to device memory;
//   attn_softmax: row softmax of Sc in place (fp32);
//   attn_pv:      O = P V, bf16 output.
// Fused flash-style version (attention_fused): online softmax, S never leaves the chip.
#include "common.cuh"

#define HD 64

// ---- naive step 1: 64x64 output tile per block, 256 threads, 4x4 outputs per thread ----
extern "C" __global__ void __launch_bounds__(256)
attn_scores(const bf16_t* __restrict__ Q, const bf16_t* __restrict__ K, float* __restrict__ Sc, int S, float scale) {
    __shared__ __align__(16) float sQ[HD][64 + 4];
    __shared__ __align__(16) float sK[HD][64 + 4];
    const u64 head = blockIdx.z;
    const int i0 = blockIdx.y * 64, j0 = blockIdx.x * 64;
    const bf16_t* q = Q + head * S * HD;
    const bf16_t* k = K + head * S * HD;
    // 64 rows x 64 dims = 512 vectors of 8 bf16; 2 per thread per operand, stored transposed.
#pragma unroll
    for (int v = 0; v < 2; ++v) {
        int idx = threadIdx.x + v * 256;
        int row = idx / 8, d0 = (idx % 8) * 8;
        uint4 a = *(const uint4*)(q + (u64)(i0 + row) * HD + d0);
        uint4 b = *(const uint4*)(k + (u64)(j0 + row) * HD + d0);
        u32 av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            sQ[d0 + 2 * e][row] = bf16x2_lo(av[e]);
            sQ[d0 + 2 * e + 1][row] = bf16x2_hi(av[e]);
            sK[d0 + 2 * e][row] = bf16x2_lo(bv[e]);
            sK[d0 + 2 * e + 1][row] = bf16x2_hi(bv[e]);
        }
    }
    __syncthreads();
    const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
    float acc[4][4] = {};
#pragma unroll 8
    for (int d = 0; d < HD; ++d) {
        float4 a = *(const float4*)&sQ[d][ty * 4];
        float4 b = *(const float4*)&sK[d][tx * 4];
        float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[r][c] = __fmaf_rn(av[r], bv[c], acc[r][c]);
    }
    float* out = Sc + head * S * S;
#pragma unroll
    for (int r = 0; r < 4; ++r)
        *(float4*)(out + (u64)(i0 + ty * 4 + r) * S + j0 + tx * 4) =
            make_float4(acc[r][0] * scale, acc[r][1] * scale, acc[r][2] * scale, acc[r][3] * scale);
}

// ---- naive step 2: one warp per row, in place; S % 128 == 0 and S <= 1024 ----
extern "C" __global__ void attn_softmax(float* __restrict__ Sc, u64 rows, int S) {
    const u64 row = blockIdx.x * (u64)(blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    float4* p = (float4*)(Sc + row * S);
    const int chunks = S / 128;
    float4 v[8];
    float mx = NEG_INF;
#pragma unroll
    for (int c = 0; c < 8; ++c)
        if (c < chunks) {
            v[c] = p[c * 32 + lane];
            mx = fmaxf(mx, fmaxf(fmaxf(v[c].x, v[c].y), fmaxf(v[c].z, v[c].w)));
        }
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < 8; ++c)
        if (c < chunks) {
            v[c].x = __expf(v[c].x - mx);
            v[c].y = __expf(v[c].y - mx);
            v[c].z = __expf(v[c].z - mx);
            v[c].w = __expf(v[c].w - mx);
            sum += (v[c].x + v[c].y) + (v[c].z + v[c].w);
        }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    const float inv = 1.0f / sum;
#pragma unroll
    for (int c = 0; c < 8; ++c)
        if (c < chunks) p[c * 32 + lane] = make_float4(v[c].x * inv, v[c].y * inv, v[c].z * inv, v[c].w * inv);
}

// ---- naive step 3: O tile of 64 rows x 64 dims per block, 256 threads, 4x4 outputs per thread ----
extern "C" __global__ void __launch_bounds__(256)
attn_pv(const float* __restrict__ P, const bf16_t* __restrict__ V, bf16_t* __restrict__ O, int S) {
    __shared__ __align__(16) float sP[32][64 + 4];
    __shared__ __align__(16) float sV[32][HD];
    const u64 head = blockIdx.y;
    const int i0 = blockIdx.x * 64;
    const float* p = P + head * S * S;
    const bf16_t* v = V + head * S * HD;
    const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
    float acc[4][4] = {};
    for (int j0 = 0; j0 < S; j0 += 32) {
        // P tile: 64 rows x 32 cols = 512 float4, 2 per thread, stored transposed.
#pragma unroll
        for (int t = 0; t < 2; ++t) {
            int idx = threadIdx.x + t * 256;
            int row = idx / 8, c0 = (idx % 8) * 4;
            float4 a = *(const float4*)(p + (u64)(i0 + row) * S + j0 + c0);
            sP[c0][row] = a.x;
            sP[c0 + 1][row] = a.y;
            sP[c0 + 2][row] = a.z;
            sP[c0 + 3][row] = a.w;
        }
        // V tile: 32 rows x 64 dims = 256 vectors of 8 bf16, 1 per thread.
        {
            int row = threadIdx.x / 8, d0 = (threadIdx.x % 8) * 8;
            uint4 b = *(const uint4*)(v + (u64)(j0 + row) * HD + d0);
            u32 bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                sV[row][d0 + 2 * e] = bf16x2_lo(bv[e]);
                sV[row][d0 + 2 * e + 1] = bf16x2_hi(bv[e]);
            }
        }
        __syncthreads();
#pragma unroll 8
        for (int jj = 0; jj < 32; ++jj) {
            float4 a = *(const float4*)&sP[jj][ty * 4];
            float4 b = *(const float4*)&sV[jj][tx * 4];
            float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int r = 0; r < 4; ++r)
#pragma unroll
                for (int c = 0; c < 4; ++c) acc[r][c] = __fmaf_rn(av[r], bv[c], acc[r][c]);
        }
        __syncthreads();
    }
    bf16_t* o = O + head * S * HD;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
        uint2 packed = make_uint2(pack_bf16x2(acc[r][0], acc[r][1]), pack_bf16x2(acc[r][2], acc[r][3]));
        *(uint2*)(o + (u64)(i0 + ty * 4 + r) * HD + tx * 4) = packed;
    }
}

// ---- fused forward ----
// Block: 64 query rows, 4 warps (16 rows each), K/V streamed in 64-row tiles, double-buffered
// with cp.async. Q K^T and P V on mma.sync m16n8k16 (bf16 in, fp32 accumulate); P is rounded to
// bf16 as the A operand of P V. Online softmax in base 2: x = s * scale * log2(e).
// Shared tiles are [64 rows][64 bf16] = 128-byte rows, chunk c of row r stored at c ^ (r % 8).
__device__ __forceinline__ u32 swz128(int row, int chunk) {
    return (u32)(row * 128 + ((chunk ^ (row & 7)) << 4));
}

__device__ __forceinline__ void load_rows64(u32 dst, const bf16_t* __restrict__ src) {
    // 64 rows x 8 chunks = 512 chunks; 128 threads copy 4 each.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        int idx = threadIdx.x + i * 128;
        int row = idx >> 3, chunk = idx & 7;
        cp_async_16(dst + swz128(row, chunk), src + row * HD + chunk * 8, true);
    }
}

extern "C" __global__ void __launch_bounds__(128)
attention_fused(const bf16_t* __restrict__ Q, const bf16_t* __restrict__ K, const bf16_t* __restrict__ V,
                bf16_t* __restrict__ O, int S, float scale_log2) {
    __shared__ __align__(128) bf16_t sQ[64 * HD];
    __shared__ __align__(128) bf16_t sK[2][64 * HD];
    __shared__ __align__(128) bf16_t sV[2][64 * HD];
    const u64 head = blockIdx.y;
    const int q0 = blockIdx.x * 64;
    const bf16_t* q = Q + head * S * HD + (u64)q0 * HD;
    const bf16_t* k = K + head * S * HD;
    const bf16_t* v = V + head * S * HD;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int n_tiles = S / 64;

    load_rows64(smem_u32(sQ), q);
    load_rows64(smem_u32(sK[0]), k);
    load_rows64(smem_u32(sV[0]), v);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    u32 qf[4][4];
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
        int row = warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
        ldmatrix_x4(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], smem_u32(sQ) + swz128(row, kk * 2 + lane / 16));
    }
    float o[8][4];
    float m[2] = {NEG_INF, NEG_INF}, l[2] = {0.0f, 0.0f};
#pragma unroll
    for (int n = 0; n < 8; ++n)
#pragma unroll
        for (int r = 0; r < 4; ++r) o[n][r] = 0.0f;

    for (int t = 0; t < n_tiles; ++t) {
        if (t + 1 < n_tiles) {
            load_rows64(smem_u32(sK[(t + 1) & 1]), k + (u64)(t + 1) * 64 * HD);
            load_rows64(smem_u32(sV[(t + 1) & 1]), v + (u64)(t + 1) * 64 * HD);
        }
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const u32 sk = smem_u32(sK[t & 1]), sv = smem_u32(sV[t & 1]);

        float s[8][4];
#pragma unroll
        for (int n = 0; n < 8; ++n)
#pragma unroll
            for (int r = 0; r < 4; ++r) s[n][r] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < 4; ++kk)
#pragma unroll
            for (int jp = 0; jp < 4; ++jp) {
                u32 b0, b1, b2, b3;
                int row = jp * 16 + (lane % 8) + (lane / 16) * 8;
                ldmatrix_x4(b0, b1, b2, b3, sk + swz128(row, kk * 2 + (lane / 8) % 2));
                mma_bf16_16816(s[2 * jp], qf[kk], b0, b1);
                mma_bf16_16816(s[2 * jp + 1], qf[kk], b2, b3);
            }

        // Row h = 0 holds s[n][0..1] (row g), h = 1 holds s[n][2..3] (row g + 8); a row's 64
        // values are spread over the 4 lanes of a quad.
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            float mx = NEG_INF;
#pragma unroll
            for (int n = 0; n < 8; ++n) mx = fmaxf(mx, fmaxf(s[n][2 * h], s[n][2 * h + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float m_new = fmaxf(m[h], mx * scale_log2);
            const float alpha = exp2f(m[h] - m_new);
            float sum = 0.0f;
#pragma unroll
            for (int n = 0; n < 8; ++n) {
                s[n][2 * h] = exp2f(__fmaf_rn(s[n][2 * h], scale_log2, -m_new));
                s[n][2 * h + 1] = exp2f(__fmaf_rn(s[n][2 * h + 1], scale_log2, -m_new));
                sum += s[n][2 * h] + s[n][2 * h + 1];
                o[n][2 * h] *= alpha;
                o[n][2 * h + 1] *= alpha;
            }
            l[h] = l[h] * alpha + sum;
            m[h] = m_new;
        }

#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
            u32 pa[4];
            pa[0] = pack_bf16x2(s[2 * kk][0], s[2 * kk][1]);
            pa[1] = pack_bf16x2(s[2 * kk][2], s[2 * kk][3]);
            pa[2] = pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            pa[3] = pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
            for (int dp = 0; dp < 4; ++dp) {
                u32 b0, b1, b2, b3;
                int row = kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
                ldmatrix_x4_trans(b0, b1, b2, b3, sv + swz128(row, dp * 2 + lane / 16));
                mma_bf16_16816(o[2 * dp], pa, b0, b1);
                mma_bf16_16816(o[2 * dp + 1], pa, b2, b3);
            }
        }
        __syncthreads();
    }

    const int g = lane / 4, qd = lane % 4;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        float total = l[h];
        total += __shfl_xor_sync(0xffffffffu, total, 1);
        total += __shfl_xor_sync(0xffffffffu, total, 2);
        const float inv = 1.0f / total;
        bf16_t* out = O + head * S * HD + (u64)(q0 + warp * 16 + g + h * 8) * HD;
#pragma unroll
        for (int n = 0; n < 8; ++n)
            *(u32*)(out + n * 8 + qd * 2) = pack_bf16x2(o[n][2 * h] * inv, o[n][2 * h + 1] * inv);
    }
}
