/* Task module "matmul": C = A·B in f32 (SIMD128).
 * Input:  u32 M, u32 K, u32 N, then A[M×K] and B[K×N] as little-endian f32, row-major.
 * Output: C[M×N] as little-endian f32, row-major. */
#include "gaia_abi.h"
#include "kernels.h"

GAIA_EXPORT("matmul") u64 matmul_entry(const unsigned char *in, u32 len) {
    if (len < 12) return gaia_fail("matmul: input shorter than its 12-byte header (M, K, N)");
    const u32 M = gaia_u32(in, 0), K = gaia_u32(in, 4), N = gaia_u32(in, 8);
    const u64 need = 12 + 4 * ((u64)M * K + (u64)K * N);
    if (need != len) return gaia_fail("matmul: input size does not match M, K, N");
    if ((u64)M * N * 4 > 0xFFFFFFF0u) return gaia_fail("matmul: output would exceed 4 GiB");
    /* The input sits 16-byte aligned after gaia_alloc; A starts at +12, so copy to align the floats. */
    float *A = gaia_alloc_or_trap(4 * ((u32)need - 12));
    __builtin_memcpy(A, in + 12, len - 12);
    float *C = gaia_alloc_or_trap(4 * M * N);
    matmul(A, A + (u64)M * K, C, M, K, N);
    return gaia_output(C, 4 * M * N);
}
