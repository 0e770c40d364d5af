// bf16 tensor-core GEMM with Hopper wgmma (sm_90a only), fp32 accumulation, bf16 output.
//
// Same contract as gemm_mma.cu: C[M,N] = A[M,K] * B[N,K]^T, A and B K-contiguous, C row-major,
// K % 8 == 0, N % 2 == 0; edges by zero-filled loads and guarded stores.
//
// CTA tile 128x128x64 computed by two warpgroups (256 threads), each issuing
// wgmma.m64n128k16 on a 64-row half of the A tile and the whole B tile, both operands read from
// shared memory through matrix descriptors. Tiles are loaded with cp.async (every thread, no
// producer specialization) into a STAGES-deep ring. Shared layout: K-major, rows of 64 bf16 =
// 128 bytes, the 128-byte swizzle: 16-byte chunk c of row r is stored at chunk c ^ (r % 8), each
// stage 1024-byte aligned; descriptor: leading byte offset 16 (unused for swizzled K-major),
// stride byte offset 1024 (one 8-row swizzle atom), layout type 1 (128B swizzle). The k16 steps
// inside a 64-wide k-tile advance the descriptor start address by 32 bytes.
#include "common.cuh"

#define BM 128
#define BN 128
#define BK 64
#define STAGES 4
#define THREADS 256

__device__ __forceinline__ u32 swz128(int row, int chunk) {
    return (u32)(row * 128 + ((chunk ^ (row & 7)) << 4));
}

__device__ __forceinline__ u64 smem_desc(u32 addr) {
    u64 desc = 0;
    desc |= (u64)((addr & 0x3FFFF) >> 4);
    desc |= (u64)(16 >> 4) << 16;
    desc |= (u64)(1024 >> 4) << 32;
    desc |= 1ull << 62;
    return desc;
}

__device__ __forceinline__ void wgmma_m64n128k16(float* d, u64 desc_a, u64 desc_b) {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "%64, %65, p, 1, 1, 0, 0;\n"
        "}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(desc_a), "l"(desc_b), "r"(1));
}

__device__ __forceinline__ void fence_acc(float* d) {
#pragma unroll
    for (int i = 0; i < 64; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

__device__ __forceinline__ void load_tile(u32 sA, u32 sB, const bf16_t* __restrict__ A,
                                          const bf16_t* __restrict__ B, int M, int N, int K,
                                          int m0, int n0, int k0) {
    // 128 rows x 8 chunks per operand = 1024 chunks; 256 threads copy 4 each.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        int idx = threadIdx.x + i * THREADS;
        int row = idx >> 3, chunk = idx & 7;
        int k = k0 + chunk * 8;
        bool kvalid = k < K;
        int gm = m0 + row, gn = n0 + row;
        bool va = kvalid && gm < M;
        bool vb = kvalid && gn < N;
        const bf16_t* pa = va ? A + (u64)gm * K + k : A;
        const bf16_t* pb = vb ? B + (u64)gn * K + k : B;
        cp_async_16(sA + swz128(row, chunk), pa, va);
        cp_async_16(sB + swz128(row, chunk), pb, vb);
    }
}

extern "C" __global__ void __launch_bounds__(THREADS, 1)
gemm_wgmma(const bf16_t* __restrict__ A, const bf16_t* __restrict__ B, bf16_t* __restrict__ C,
           int M, int N, int K) {
    extern __shared__ __align__(1024) unsigned char smem[];
    const u32 tile_bytes = BM * BK * 2;
    const u32 stage_bytes = 2 * tile_bytes;
    const u32 s_base = (smem_u32(smem) + 1023u) & ~1023u;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int wg = threadIdx.x / 128;
    const int warp_in_wg = (threadIdx.x % 128) / 32, lane = threadIdx.x % 32;
    const int k_tiles = (K + BK - 1) / BK;

    float acc[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[i] = 0.0f;

#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < k_tiles) {
            u32 sA = s_base + s * stage_bytes;
            load_tile(sA, sA + tile_bytes, A, B, M, N, K, m0, n0, s * BK);
        }
        cp_async_commit();
    }

    for (int kt = 0; kt < k_tiles; ++kt) {
        cp_async_wait<STAGES - 2>();
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        __syncthreads();
        int next = kt + STAGES - 1;
        if (next < k_tiles) {
            u32 sA = s_base + (next % STAGES) * stage_bytes;
            load_tile(sA, sA + tile_bytes, A, B, M, N, K, m0, n0, next * BK);
        }
        cp_async_commit();

        const u32 sA = s_base + (kt % STAGES) * stage_bytes + wg * 64 * 128;
        const u32 sB = s_base + (kt % STAGES) * stage_bytes + tile_bytes;
        fence_acc(acc);
        asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
        for (int kk = 0; kk < BK / 16; ++kk)
            wgmma_m64n128k16(acc, smem_desc(sA + kk * 32), smem_desc(sB + kk * 32));
        asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
        asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
        fence_acc(acc);
    }
    cp_async_wait<0>();

    // Accumulator layout of m64nNk16 (per warp w of the warpgroup, like m16n8 repeated over N/8
    // column blocks j): acc[4j], acc[4j+1] at (row 16w + g, cols 8j + 2q, +1), acc[4j+2], acc[4j+3]
    // at row 16w + g + 8; g = lane/4, q = lane%4.
    const int g = lane / 4, q = lane % 4;
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
        int col = n0 + j * 8 + q * 2;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            int row = m0 + wg * 64 + warp_in_wg * 16 + g + h * 8;
            if (row < M && col < N)
                *(u32*)(C + (u64)row * N + col) = pack_bf16x2(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]);
        }
    }
}
