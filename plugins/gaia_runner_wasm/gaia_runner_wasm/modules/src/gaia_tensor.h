/* The GAIA tensor host API for WASM tasks (docs/task-abi.md, "Tensor host API").
 *
 * A module that includes this header imports these functions from the import module "gaia_tensor"
 * (import name = the function name without "gt_"); the WASM runner links them, implemented in
 * gaia-native (Rust), and runs them at native speed.
 *
 * Conventions:
 *   - every pointer is an offset into the module's linear memory, 4-byte aligned; every size an int;
 *   - tensors are f32 row-major: NCHW for images, OIHW for convolution weights;
 *   - a pointer may be 0 ("none") only where marked nullable;
 *   - bad arguments trap the task: a region out of the memory, a negative or overflowing size, a
 *     misaligned pointer, a window larger than its (padded) input, stride < 1, an argmax index outside
 *     dx, or an output that overlaps an input (elementwise ops may write in place: out == input);
 *   - each call is charged to fuel by the work it does (multiply-adds and elements touched);
 *   - results are bit-identical on every machine and every code path: each output element is computed
 *     in the fixed order written below, with no fused multiply-add (every product is rounded to f32
 *     before it is added), exp/tanh/sigmoid are GAIA's own deterministic functions (computed in
 *     double precision, rounded once: within 1 ulp), not libm's, and every NaN an op writes is the
 *     canonical 0x7FC00000 (as with the engine's own float arithmetic).
 *
 * Output sizes: conv2d/im2col oh = (h + 2*pad - kh) / stride + 1, ow = (wd + 2*pad - kw) / stride + 1;
 * pooling (no padding) oh = (h - k) / stride + 1, ow = (wd - k) / stride + 1. */
#ifndef GAIA_TENSOR_H
#define GAIA_TENSOR_H

#define GT_IMPORT(name) __attribute__((import_module("gaia_tensor"), import_name(name)))

/* gt_gemm flags */
#define GT_TRANS_A 1    /* A is stored k x m */
#define GT_TRANS_B 2    /* B is stored n x k */
#define GT_ACCUMULATE 4 /* C += op(A).op(B) instead of C = op(A).op(B) */

/* C[m,n] = op(A)[m,k] . op(B)[k,n]. Each C[i,j]: acc = (ACCUMULATE ? C[i,j] : 0.0f), then
 * acc = acc + A[i,p]*B[p,j] for p = 0..k-1 ascending; C[i,j] = acc. */
GT_IMPORT("gemm")
void gt_gemm(const float *a, const float *b, float *c, int m, int n, int k, int flags);

/* y[n,oc,oh,ow] = 2-D cross-correlation of x[n,c,h,wd] with w[oc,c,kh,kw], zero padding `pad` on
 * every side. Each output: acc = 0.0f, then acc = acc + w[o,ci,ky,kx]*x_padded[..] over ci, ky, kx
 * ascending (ci outermost; padded positions contribute 0.0f*w), then y = acc + bias[o] when bias is
 * given. Bit-identical to gt_im2col followed by gt_gemm (W as oc x c*kh*kw) and adding the bias. */
GT_IMPORT("conv2d")
void gt_conv2d(const float *x, const float *w, const float *bias /* nullable */, float *y,
               int n, int c, int h, int wd, int oc, int kh, int kw, int stride, int pad);

/* cols[(ci*kh + ky)*kw + kx, oy*ow + ox] = x_padded[ci, oy*stride + ky - pad, ox*stride + kx - pad]
 * for one image x[c,h,wd]; cols is (c*kh*kw) x (oh*ow), padded positions are 0.0f. */
GT_IMPORT("im2col")
void gt_im2col(const float *x, float *cols, int c, int h, int wd, int kh, int kw, int stride, int pad);

/* The adjoint of gt_im2col: x[ci, iy, ix] += cols[row, col] for every in-image position, visiting
 * rows then cols ascending (x is not zeroed first). */
GT_IMPORT("col2im")
void gt_col2im(const float *cols, float *x, int c, int h, int wd, int kh, int kw, int stride, int pad);

/* y[n,c,oh,ow] = max of each k x k window of x[n,c,h,wd]: the window is scanned row-major and an
 * element replaces the best only when strictly greater (ties keep the first). argmax (nullable)
 * receives the flat index into x (over the whole n*c*h*wd tensor) of each chosen element. */
GT_IMPORT("maxpool2d")
void gt_maxpool2d(const float *x, float *y, int *argmax /* nullable */, int n, int c, int h, int wd, int k,
                  int stride);

/* dx[n,c,h,wd] is zeroed, then dx[argmax[i]] += dy[i] for i ascending over the n*c*oh*ow outputs. */
GT_IMPORT("maxpool2d_backward")
void gt_maxpool2d_backward(const float *dy, const int *argmax, float *dx, int n, int c, int h, int wd, int k,
                           int stride);

/* y = (sum of each k x k window, row-major from 0.0f) / (float)(k*k). */
GT_IMPORT("avgpool2d")
void gt_avgpool2d(const float *x, float *y, int n, int c, int h, int wd, int k, int stride);

/* out[i] = a[i] + b[i] */
GT_IMPORT("add")
void gt_add(const float *a, const float *b, float *out, int len);

/* out[i] = a[i] * b[i] */
GT_IMPORT("mul")
void gt_mul(const float *a, const float *b, float *out, int len);

/* y[i] = y[i] + alpha*x[i] (product rounded, then added) */
GT_IMPORT("axpy")
void gt_axpy(float alpha, const float *x, float *y, int len);

/* x[r,j] = x[r,j] + bias[j] */
GT_IMPORT("bias_add")
void gt_bias_add(float *x, const float *bias, int rows, int cols);

/* y[i] = x[i] > 0 ? x[i] : 0.0f */
GT_IMPORT("relu")
void gt_relu(const float *x, float *y, int len);

/* dx[i] = x[i] > 0 ? dy[i] : 0.0f */
GT_IMPORT("relu_backward")
void gt_relu_backward(const float *x, const float *dy, float *dx, int len);

/* y[i] = 1 / (1 + exp(-x[i])), GAIA's deterministic exp */
GT_IMPORT("sigmoid")
void gt_sigmoid(const float *x, float *y, int len);

/* y[i] = tanh(x[i]), GAIA's deterministic tanh */
GT_IMPORT("tanh")
void gt_tanh(const float *x, float *y, int len);

/* Per row: m = max (first element, then strictly greater); e[j] = exp(x[j] - m);
 * s = sum of e[j], j ascending from 0.0f; y[j] = e[j] / s. */
GT_IMPORT("softmax")
void gt_softmax(const float *x, float *y, int rows, int cols);

/* out[j] = sum over r ascending (from 0.0f) of x[r,j] */
GT_IMPORT("sum_rows")
void gt_sum_rows(const float *x, float *out, int rows, int cols);

/* out[r] = the first j with the largest x[r,j] (strictly greater replaces); cols >= 1 */
GT_IMPORT("argmax_rows")
void gt_argmax_rows(const float *x, int *out, int rows, int cols);

#endif
