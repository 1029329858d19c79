/* Task module "matmul": C = A·B in f32.
 * Input:  u32 M, u32 K, u32 N, then A[M×K] and B[K×N] as little-endian f32, row-major.
 * Output: C[M×N] as little-endian f32, row-major.
 * matmul.wasm calls the tensor host API (gt_gemm, native speed); matmul_wasm.wasm, built from this
 * file with -DGAIA_PURE_WASM, runs the product in WebAssembly (SIMD128, kernels.c) and serves as
 * the pure-WASM reference of the benchmarks. Both sum each C[i,j] over k ascending without FMA, so
 * they give the same bits. */
#include "gaia_abi.h"
#ifdef GAIA_PURE_WASM
#include "kernels.h"
#else
#include "gaia_tensor.h"
#endif

GAIA_EXPORT("matmul") u64 matmul_entry(const unsigned char *in, u32 len) {
    if (len < 12) return gaia_fail("matmul: input shorter than its 12-byte header (M, K, N)");
    const u32 M = gaia_u32(in, 0), K = gaia_u32(in, 4), N = gaia_u32(in, 8);
    const u64 need = 12 + 4 * ((u64)M * K + (u64)K * N);
    if (need != len) return gaia_fail("matmul: input size does not match M, K, N");
    if ((M | K | N) >> 31) return gaia_fail("matmul: M, K and N must be below 2^31");
    if ((u64)M * N * 4 > 0xFFFFFFF0u) return gaia_fail("matmul: output would exceed 4 GiB");
    float *C = gaia_alloc_or_trap(4 * M * N);
#ifdef GAIA_PURE_WASM
    /* The input sits 16-byte aligned after gaia_alloc; A starts at +12, so copy to align the floats. */
    float *A = gaia_alloc_or_trap(len - 12);
    __builtin_memcpy(A, in + 12, len - 12);
    matmul(A, A + (u64)M * K, C, M, K, N);
#else
    /* The host API takes 4-byte aligned tensors: A and B are used where they arrived. */
    const float *A = (const float *)(in + 12);
    gt_gemm(A, A + (u64)M * K, C, (int)M, (int)N, (int)K, 0);
#endif
    return gaia_output(C, 4 * M * N);
}
