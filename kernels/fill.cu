// Fills device buffers with the deterministic pseudo-random values of common.cuh, so that inputs
// are fresh random data (never zeros) and the host can recompute any element for its reference.
#include "common.cuh"

extern "C" __global__ void fill_uniform_f32(float* out, u64 n, u32 seed, float scale, float offset) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        out[i] = random_uniform(i, seed, scale, offset);
}

extern "C" __global__ void fill_uniform_bf16(bf16_t* out, u64 n, u32 seed, float scale, float offset) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        out[i] = f32_to_bf16(random_uniform(i, seed, scale, offset));
}
