// bf16 tensor-core GEMM with mma.sync.m16n8k16 (sm_80+), fp32 accumulation, bf16 output.
//
// C[M,N] = A[M,K] * B[N,K]^T: A row-major (K contiguous), B stored [N,K] with K contiguous (the
// layout of a PyTorch nn.Linear weight, y = x W^T), C row-major. Requires K % 8 == 0 and N % 2 == 0
// (16-byte rows of the k-tiles, 4-byte bf16 pairs in the epilogue); rows and columns past M, N
// and the k-tail past K are handled by zero-filled loads and guarded stores.
//
// CTA tile 128x128x32, 8 warps as 2 (M) x 4 (N), warp tile 64x32, STAGES-deep cp.async ring.
// Shared memory rows are 32 bf16 = 64 bytes = four 16-byte chunks; chunk c of row r is stored at
// chunk c ^ ((r >> 1) & 3), so the 8 rows read by one ldmatrix phase hit 8 distinct 16-byte bank
// groups.
#include "common.cuh"

#define BM 128
#define BN 128
#define BK 32
#define STAGES 4
#define THREADS 256

__device__ __forceinline__ u32 swz64(int row, int chunk) {
    return (u32)(row * 64 + ((chunk ^ ((row >> 1) & 3)) << 4));
}

__device__ __forceinline__ void load_tile(u32 sA, u32 sB, const bf16_t* __restrict__ A,
                                          const bf16_t* __restrict__ B, int M, int N, int K,
                                          int m0, int n0, int k0) {
    // 128 rows x 4 chunks per operand = 512 chunks; 256 threads copy 2 each.
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        int idx = threadIdx.x + i * THREADS;
        int row = idx >> 2, chunk = idx & 3;
        int k = k0 + chunk * 8;
        bool kvalid = k < K;
        int gm = m0 + row, gn = n0 + row;
        bool va = kvalid && gm < M;
        bool vb = kvalid && gn < N;
        const bf16_t* pa = va ? A + (u64)gm * K + k : A;
        const bf16_t* pb = vb ? B + (u64)gn * K + k : B;
        cp_async_16(sA + swz64(row, chunk), pa, va);
        cp_async_16(sB + swz64(row, chunk), pb, vb);
    }
}

extern "C" __global__ void __launch_bounds__(THREADS)
gemm_mma_sync(const bf16_t* __restrict__ A, const bf16_t* __restrict__ B, bf16_t* __restrict__ C,
              int M, int N, int K) {
    extern __shared__ __align__(128) unsigned char smem[];
    const u32 stage_bytes = (BM + BN) * BK * 2;
    const u32 s_base = smem_u32(smem);
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wm = (warp / 4) * 64, wn = (warp % 4) * 32;
    const int k_tiles = (K + BK - 1) / BK;

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;

#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < k_tiles) {
            u32 sA = s_base + s * stage_bytes;
            load_tile(sA, sA + BM * BK * 2, A, B, M, N, K, m0, n0, s * BK);
        }
        cp_async_commit();
    }

    for (int kt = 0; kt < k_tiles; ++kt) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        int next = kt + STAGES - 1;
        if (next < k_tiles) {
            u32 sA = s_base + (next % STAGES) * stage_bytes;
            load_tile(sA, sA + BM * BK * 2, A, B, M, N, K, m0, n0, next * BK);
        }
        cp_async_commit();

        const u32 sA = s_base + (kt % STAGES) * stage_bytes;
        const u32 sB = sA + BM * BK * 2;
#pragma unroll
        for (int kk = 0; kk < BK / 16; ++kk) {
            u32 a[4][4], b[4][2];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                int row = wm + i * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
                int chunk = kk * 2 + lane / 16;
                ldmatrix_x4(a[i][0], a[i][1], a[i][2], a[i][3], sA + swz64(row, chunk));
            }
#pragma unroll
            for (int j = 0; j < 2; ++j) {
                int row = wn + j * 16 + (lane % 8) + (lane / 16) * 8;
                int chunk = kk * 2 + (lane / 8) % 2;
                ldmatrix_x4(b[2 * j][0], b[2 * j][1], b[2 * j + 1][0], b[2 * j + 1][1], sB + swz64(row, chunk));
            }
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) mma_bf16_16816(acc[i][j], a[i], b[j][0], b[j][1]);
        }
    }
    cp_async_wait<0>();

    // Accumulator layout of m16n8: c0,c1 at (row g, cols 2q, 2q+1), c2,c3 at row g+8; g = lane/4, q = lane%4.
    const int g = lane / 4, q = lane % 4;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            int col = n0 + wn + j * 8 + q * 2;
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                int row = m0 + wm + i * 16 + g + h * 8;
                if (row < M && col < N)
                    *(u32*)(C + (u64)row * N + col) = pack_bf16x2(acc[i][j][2 * h], acc[i][j][2 * h + 1]);
            }
        }
}
