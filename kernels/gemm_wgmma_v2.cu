// bf16 GEMM for Hopper (sm_90a): TMA loads, a 4-stage mbarrier pipeline, a producer warpgroup
// and two consumer warpgroups issuing wgmma, persistent CTAs over a grouped tile order.
//
// Same contract as gemm_wgmma.cu: C[M,N] = A[M,K] * B[N,K]^T, A and B K-contiguous (row-major),
// C row-major, bf16 in and out, fp32 accumulation; K % 8 == 0 and N % 8 == 0 (16-byte TMA
// strides, bf16 pairs in the epilogue). Edges: the TMA zero-fills rows and k past the tensor
// (the box may exceed it), stores are guarded.
//
// Launch (src/gpu/gemm.rs): 384 threads, grid = min(tiles, SMs), dynamic shared memory
// V2_SHARED_BYTES; tmA / tmB are CUtensorMaps built by cuTensorMapEncodeTiled on the host and
// passed by value (__grid_constant__): A as dims {K, M}, box {64, 128}; B as dims {K, N}, box
// {64, 256}; bf16, 128-byte swizzle, OOB fill zeros.
//
// CTA tile 128x256x64. Warpgroup 0 is the producer (one thread issues the TMA loads; the
// warpgroup drops to 40 registers with setmaxnreg); warpgroups 1 and 2 (232 registers) each
// compute a 64x256 half with wgmma.m64n256k16 (128 fp32 accumulators per thread) from shared
// memory: A rows 64*(wg-1)..+63 of the stage, all 256 rows of B. Shared layout per stage: A tile
// 128 rows x 128 bytes, then B tile 256 rows x 128 bytes, K-major with the 128-byte swizzle the
// TMA writes (16-byte chunk c of row r at chunk c ^ (r % 8), stage 1024-byte aligned), read by
// the same descriptors as gemm_wgmma.cu (SBO 1024, 128B-swizzle layout, +32 bytes per k16 step).
//
// Pipeline: iteration `it` counts (tile, k-tile) pairs of this CTA, the same sequence on both
// sides; stage = it % STAGES, phase parity = (it / STAGES) & 1. full[s] (count 1: the producer's
// arrive.expect_tx, then the TMA bytes) and empty[s] (count 8: lane 0 of each consumer warp once
// its wgmma reading the stage has retired). The producer waits empty[s] with the opposite
// parity, so round 0 passes at once. Consumers keep one wgmma group in flight (wait_group 1)
// and release the previous stage. A wait that has not completed after 4 s (by %globaltimer,
// read only on failed polls) traps, so a pipeline bug ends in a launch error, not a hang.
#include "common.cuh"

#define V2_BM 128
#define V2_BN 256
#define V2_BK 64
#define V2_STAGES 4
#define V2_THREADS 384
#define V2_GROUP_M 16
#define V2_A_BYTES (V2_BM * V2_BK * 2)
#define V2_B_BYTES (V2_BN * V2_BK * 2)
#define V2_STAGE_BYTES (V2_A_BYTES + V2_B_BYTES)
// Stages, 2 * STAGES mbarriers of 8 bytes, and up to 1023 bytes lost to 1024-byte alignment.
#define V2_SHARED_BYTES (V2_STAGES * V2_STAGE_BYTES + 2 * V2_STAGES * 8 + 1024)
#define V2_WAIT_LIMIT_NS 4000000000ull

// Opaque 128-byte CUtensorMap (the driver's layout), passed by value as a __grid_constant__.
struct __align__(64) TmaDesc {
    u64 opaque[16];
};

__device__ __forceinline__ u64 v2_smem_desc(u32 addr) {
    u64 desc = 0;
    desc |= (u64)((addr & 0x3FFFF) >> 4);
    desc |= (u64)(16 >> 4) << 16;
    desc |= (u64)(1024 >> 4) << 32;
    desc |= 1ull << 62;
    return desc;
}

__device__ __forceinline__ void mbar_init(u32 bar, u32 count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

__device__ __forceinline__ void mbar_arrive_expect_tx(u32 bar, u32 bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
                 : "memory");
}

__device__ __forceinline__ void mbar_arrive(u32 bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

// Waits for the completion of the phase with parity `parity`; traps after V2_WAIT_LIMIT_NS.
__device__ __forceinline__ void mbar_wait(u32 bar, u32 parity) {
    u64 start = 0;
    while (true) {
        u32 done;
        asm volatile(
            "{\n"
            ".reg .pred p;\n"
            "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
            "selp.u32 %0, 1, 0, p;\n"
            "}\n"
            : "=r"(done)
            : "r"(bar), "r"(parity)
            : "memory");
        if (done) break;
        u64 now;
        asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(now));
        if (start == 0)
            start = now;
        else if (now - start > V2_WAIT_LIMIT_NS)
            asm volatile("trap;\n");
    }
}

// 2D tile load: box at (c0 = k, c1 = row) of the tensor map into shared memory at `dst`,
// completing `bar`'s transaction bytes.
__device__ __forceinline__ void tma_load_2d(u32 dst, const TmaDesc* map, u32 bar, int c0, int c1) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];\n" ::"r"(dst),
        "l"((u64)map), "r"(bar), "r"(c0), "r"(c1)
        : "memory");
}

// Tile t of the grouped order: V2_GROUP_M row-tiles at a time, down the rows first, so that the
// CTAs resident together share A rows and B rows in L2.
__device__ __forceinline__ void v2_tile_coords(int t, int tiles_m, int tiles_n, int& tm, int& tn) {
    int per_group = V2_GROUP_M * tiles_n;
    int first = (t / per_group) * V2_GROUP_M;
    int rows = min(tiles_m - first, V2_GROUP_M);
    int r = t % per_group;
    tm = first + r % rows;
    tn = r / rows;
}

__device__ __forceinline__ void v2_fence_acc(float* d) {
#pragma unroll
    for (int i = 0; i < 128; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

__device__ __forceinline__ void wgmma_m64n256k16(float* d, u64 desc_a, u64 desc_b) {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
        "%128, %129, p, 1, 1, 0, 0;\n"
        "}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
        : "l"(desc_a), "l"(desc_b), "r"(1));
}

extern "C" __global__ void __launch_bounds__(V2_THREADS, 1)
gemm_wgmma_v2(const __grid_constant__ TmaDesc tmA, const __grid_constant__ TmaDesc tmB,
              bf16_t* __restrict__ C, int M, int N, int K) {
    extern __shared__ __align__(1024) unsigned char smem[];
    const u32 base = (smem_u32(smem) + 1023u) & ~1023u;
    const u32 bars = base + V2_STAGES * V2_STAGE_BYTES;  // full[s] at bars + 8s, empty[s] after
    const int tiles_m = (M + V2_BM - 1) / V2_BM, tiles_n = (N + V2_BN - 1) / V2_BN;
    const int tiles = tiles_m * tiles_n;
    const int k_tiles = (K + V2_BK - 1) / V2_BK;
    const int wg = threadIdx.x / 128;

    if (threadIdx.x == 0) {
#pragma unroll
        for (int s = 0; s < V2_STAGES; ++s) {
            mbar_init(bars + 8 * s, 1);
            mbar_init(bars + 8 * (V2_STAGES + s), 8);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    if (wg == 0) {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
        if (threadIdx.x == 0) {
            u32 it = 0;
            for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
                int tm, tn;
                v2_tile_coords(t, tiles_m, tiles_n, tm, tn);
                for (int kt = 0; kt < k_tiles; ++kt, ++it) {
                    const u32 s = it % V2_STAGES, parity = (it / V2_STAGES) & 1;
                    const u32 full = bars + 8 * s, empty = bars + 8 * (V2_STAGES + s);
                    const u32 sA = base + s * V2_STAGE_BYTES;
                    mbar_wait(empty, parity ^ 1);
                    mbar_arrive_expect_tx(full, V2_STAGE_BYTES);
                    tma_load_2d(sA, &tmA, full, kt * V2_BK, tm * V2_BM);
                    tma_load_2d(sA + V2_A_BYTES, &tmB, full, kt * V2_BK, tn * V2_BN);
                }
            }
        }
    } else {
        asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory");
        const int half = wg - 1;  // 64-row half of the A tile
        const int warp = (threadIdx.x % 128) / 32, lane = threadIdx.x % 32;
        const int g = lane / 4, q = lane % 4;
        float acc[128];
        u32 it = 0;
        for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
            int tm, tn;
            v2_tile_coords(t, tiles_m, tiles_n, tm, tn);
#pragma unroll
            for (int i = 0; i < 128; ++i) acc[i] = 0.0f;
            for (int kt = 0; kt < k_tiles; ++kt, ++it) {
                const u32 s = it % V2_STAGES, parity = (it / V2_STAGES) & 1;
                mbar_wait(bars + 8 * s, parity);
                const u32 sA = base + s * V2_STAGE_BYTES + half * 64 * 128;
                const u32 sB = base + s * V2_STAGE_BYTES + V2_A_BYTES;
                v2_fence_acc(acc);
                asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
                for (int kk = 0; kk < V2_BK / 16; ++kk)
                    wgmma_m64n256k16(acc, v2_smem_desc(sA + kk * 32), v2_smem_desc(sB + kk * 32));
                asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
                asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
                v2_fence_acc(acc);
                // The group of iteration it - 1 has retired: release its stage.
                if (kt > 0 && lane == 0) mbar_arrive(bars + 8 * (V2_STAGES + (it - 1) % V2_STAGES));
            }
            asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
            v2_fence_acc(acc);
            if (k_tiles > 0 && lane == 0) mbar_arrive(bars + 8 * (V2_STAGES + (it - 1) % V2_STAGES));

            // Accumulator layout of m64nNk16 (warp w of the warpgroup, g = lane / 4, q = lane % 4):
            // acc[4j], acc[4j+1] at (row 16w + g, cols 8j + 2q, +1); acc[4j+2], acc[4j+3] at row
            // 16w + g + 8.
            const int row0 = tm * V2_BM + half * 64 + warp * 16 + g;
#pragma unroll
            for (int j = 0; j < V2_BN / 8; ++j) {
                const int col = tn * V2_BN + j * 8 + q * 2;
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const int row = row0 + h * 8;
                    if (row < M && col < N)
                        *(u32*)(C + (u64)row * N + col) =
                            pack_bf16x2(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]);
                }
            }
        }
    }
}
