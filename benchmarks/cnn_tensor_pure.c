/* The gaia_tensor functions cnn_task.c calls, in plain C: linked into the CNN module in place of the host
 * imports, they make the pure-WASM baseline of benchmarks/bench_cnn.py. Same fixed order per output element
 * as gaia_tensor.h documents; exp is wasi-libc's expf. Not shipped, not bounds-checked: benchmark input only. */
#include "gaia_tensor.h"

float expf(float);

void gt_gemm(const float *a, const float *b, float *c, int m, int n, int k, int flags) {
    if ((flags & GT_TRANS_B) && !(flags & GT_TRANS_A)) {  /* rows of A and B both contiguous: dot products */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                float acc = flags & GT_ACCUMULATE ? c[i * n + j] : 0.0f;
                for (int p = 0; p < k; p++) acc += a[i * k + p] * b[j * k + p];
                c[i * n + j] = acc;
            }
        return;
    }
    for (int i = 0; i < m; i++) {
        float *row = c + i * n;
        if (!(flags & GT_ACCUMULATE))
            for (int j = 0; j < n; j++) row[j] = 0.0f;
        for (int p = 0; p < k; p++) {
            const float aip = flags & GT_TRANS_A ? a[p * m + i] : a[i * k + p];
            if (flags & GT_TRANS_B)
                for (int j = 0; j < n; j++) row[j] += aip * b[j * k + p];
            else
                for (int j = 0; j < n; j++) row[j] += aip * b[p * n + j];
        }
    }
}

static float padded(const float *x, int h, int wd, int y, int xx) {
    return y < 0 || y >= h || xx < 0 || xx >= wd ? 0.0f : x[y * wd + xx];
}

void gt_conv2d(const float *x, const float *w, const float *bias, float *y, int n, int c, int h, int wd, int oc,
               int kh, int kw, int stride, int pad) {
    const int oh = (h + 2 * pad - kh) / stride + 1, ow = (wd + 2 * pad - kw) / stride + 1;
    for (int b = 0; b < n; b++)
        for (int o = 0; o < oc; o++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    float acc = 0.0f;
                    for (int ci = 0; ci < c; ci++)
                        for (int ky = 0; ky < kh; ky++)
                            for (int kx = 0; kx < kw; kx++)
                                acc += w[((o * c + ci) * kh + ky) * kw + kx] *
                                       padded(x + (b * c + ci) * h * wd, h, wd, oy * stride + ky - pad, ox * stride + kx - pad);
                    y[((b * oc + o) * oh + oy) * ow + ox] = bias ? acc + bias[o] : acc;
                }
}

void gt_im2col(const float *x, float *cols, int c, int h, int wd, int kh, int kw, int stride, int pad) {
    const int oh = (h + 2 * pad - kh) / stride + 1, ow = (wd + 2 * pad - kw) / stride + 1;
    for (int ci = 0; ci < c; ci++)
        for (int ky = 0; ky < kh; ky++)
            for (int kx = 0; kx < kw; kx++)
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++)
                        cols[((ci * kh + ky) * kw + kx) * oh * ow + oy * ow + ox] =
                            padded(x + ci * h * wd, h, wd, oy * stride + ky - pad, ox * stride + kx - pad);
}

void gt_maxpool2d(const float *x, float *y, int *argmax, int n, int c, int h, int wd, int k, int stride) {
    const int oh = (h - k) / stride + 1, ow = (wd - k) / stride + 1;
    for (int plane = 0; plane < n * c; plane++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                int best = plane * h * wd + oy * stride * wd + ox * stride;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        const int at = plane * h * wd + (oy * stride + ky) * wd + ox * stride + kx;
                        if (x[at] > x[best]) best = at;
                    }
                const int out = (plane * oh + oy) * ow + ox;
                y[out] = x[best];
                if (argmax) argmax[out] = best;
            }
}

void gt_maxpool2d_backward(const float *dy, const int *argmax, float *dx, int n, int c, int h, int wd, int k,
                           int stride) {
    const int outputs = n * c * ((h - k) / stride + 1) * ((wd - k) / stride + 1);
    for (int i = 0; i < n * c * h * wd; i++) dx[i] = 0.0f;
    for (int i = 0; i < outputs; i++) dx[argmax[i]] += dy[i];
}

void gt_axpy(float alpha, const float *x, float *y, int len) {
    for (int i = 0; i < len; i++) y[i] += alpha * x[i];
}

void gt_bias_add(float *x, const float *bias, int rows, int cols) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) x[r * cols + j] += bias[j];
}

void gt_relu(const float *x, float *y, int len) {
    for (int i = 0; i < len; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void gt_relu_backward(const float *x, const float *dy, float *dx, int len) {
    for (int i = 0; i < len; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

void gt_softmax(const float *x, float *y, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        const float *in = x + r * cols;
        float *out = y + r * cols, top = in[0], sum = 0.0f;
        for (int j = 1; j < cols; j++) top = in[j] > top ? in[j] : top;
        for (int j = 0; j < cols; j++) { out[j] = expf(in[j] - top); sum += out[j]; }
        for (int j = 0; j < cols; j++) out[j] /= sum;
    }
}

void gt_sum_rows(const float *x, float *out, int rows, int cols) {
    for (int j = 0; j < cols; j++) out[j] = 0.0f;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) out[j] += x[r * cols + j];
}
