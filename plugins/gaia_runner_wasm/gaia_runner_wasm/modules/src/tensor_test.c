/* Test module of the tensor host API: one entry calling any gaia_tensor function with given arguments.
 *
 * Input: a 64-byte header of little-endian 32-bit words, then a data blob.
 *   word 0: the function (index in the order of gaia_tensor.h, 0 gemm ... 17 argmax_rows)
 *   word 1: pointer mask: bit i set means argument i is an offset into the blob (the module adds the
 *           blob's address); clear means it is passed as given (a raw pointer, a size, or 0)
 *   word 2..14: the arguments in the header's order (axpy's alpha as f32 bits)
 * The blob is copied to a 16-byte aligned buffer, the function is called, and the entry returns the
 * blob as it is afterwards. tests/test_tensor_host.py drives it. */
#include "gaia_abi.h"
#include "gaia_tensor.h"

#define HEADER 64

GAIA_EXPORT("call") u64 call(const unsigned char *in, u32 len) {
    if (len < HEADER) return gaia_fail("input shorter than the 64-byte header");
    const u32 op = gaia_u32(in, 0), mask = gaia_u32(in, 4), size = len - HEADER;
    unsigned char *blob = gaia_alloc_or_trap(size ? size : 1);
    __builtin_memcpy(blob, in + HEADER, size);
    int a[13];
    for (u32 i = 0; i < 13; i++) {
        u32 v = gaia_u32(in, 8 + 4 * i);
        if (mask & (1u << i)) v += (u32)(unsigned long)blob;
        a[i] = (int)v;
    }
    float alpha;
    __builtin_memcpy(&alpha, &a[0], sizeof alpha);
#define F(i) ((float *)(unsigned long)(u32)a[i])
#define I(i) ((int *)(unsigned long)(u32)a[i])
    switch (op) {
    case 0: gt_gemm(F(0), F(1), F(2), a[3], a[4], a[5], a[6]); break;
    case 1: gt_conv2d(F(0), F(1), F(2), F(3), a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12]); break;
    case 2: gt_im2col(F(0), F(1), a[2], a[3], a[4], a[5], a[6], a[7], a[8]); break;
    case 3: gt_col2im(F(0), F(1), a[2], a[3], a[4], a[5], a[6], a[7], a[8]); break;
    case 4: gt_maxpool2d(F(0), F(1), I(2), a[3], a[4], a[5], a[6], a[7], a[8]); break;
    case 5: gt_maxpool2d_backward(F(0), I(1), F(2), a[3], a[4], a[5], a[6], a[7], a[8]); break;
    case 6: gt_avgpool2d(F(0), F(1), a[2], a[3], a[4], a[5], a[6], a[7]); break;
    case 7: gt_add(F(0), F(1), F(2), a[3]); break;
    case 8: gt_mul(F(0), F(1), F(2), a[3]); break;
    case 9: gt_axpy(alpha, F(1), F(2), a[3]); break;
    case 10: gt_bias_add(F(0), F(1), a[2], a[3]); break;
    case 11: gt_relu(F(0), F(1), a[2]); break;
    case 12: gt_relu_backward(F(0), F(1), F(2), a[3]); break;
    case 13: gt_sigmoid(F(0), F(1), a[2]); break;
    case 14: gt_tanh(F(0), F(1), a[2]); break;
    case 15: gt_softmax(F(0), F(1), a[2], a[3]); break;
    case 16: gt_sum_rows(F(0), F(1), a[2], a[3]); break;
    case 17: gt_argmax_rows(F(0), I(1), a[2], a[3]); break;
    default: return gaia_fail("unknown function index");
    }
    return gaia_output(blob, size);
}
