/* GAIA compute kernels (see kernels.h). Vectors use the GCC/Clang vector extension, which clang lowers
 * to WASM SIMD128 (-msimd128) and gcc to SSE2, so the WASM module and the native baseline share one
 * source. No fused multiply-add (-ffp-contract=off): results are bit-identical on every node. */
#include "kernels.h"
#include "shuffle.h"

typedef float v4f __attribute__((vector_size(16)));

static inline v4f load4(const float *p) { v4f v; __builtin_memcpy(&v, p, sizeof v); return v; }
static inline void store4(float *p, v4f v) { __builtin_memcpy(p, &v, sizeof v); }

static inline v4f splat(float a) { const v4f v = {a, a, a, a}; return v; }

/* One row of C from column j on: c[j..N) = sum over k of A[i,k]·B[k,j..N), k ascending. */
static void matmul_row(const float *a, const float *B, float *c, u32 K, u32 N, u32 j0) {
    for (u32 j = j0; j < N; j++) c[j] = 0.0f;
    for (u32 k = 0; k < K; k++) {
        const float ak = a[k];
        const v4f av = splat(ak);
        const float *b = B + (unsigned long)k * N;
        u32 j = j0;
        for (; j + 4 <= N; j += 4) store4(c + j, load4(c + j) + av * load4(b + j));
        for (; j < N; j++) c[j] += ak * b[j];
    }
}

/* C = A·B. Blocks of 4 rows × 8 columns stay in eight vector registers while k runs; every C[i,j]
 * is summed in the same order (k ascending) on every path, so the result does not depend on M, N. */
void matmul(const float *A, const float *B, float *C, u32 M, u32 K, u32 N) {
    u32 i = 0;
    for (; i + 4 <= M; i += 4) {
        const float *a0 = A + (unsigned long)i * K, *a1 = a0 + K, *a2 = a1 + K, *a3 = a2 + K;
        u32 j = 0;
        for (; j + 8 <= N; j += 8) {
            v4f c00 = splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
            for (u32 k = 0; k < K; k++) {
                const float *b = B + (unsigned long)k * N + j;
                const v4f b0 = load4(b), b1 = load4(b + 4);
                v4f a = splat(a0[k]); c00 += a * b0; c01 += a * b1;
                a = splat(a1[k]); c10 += a * b0; c11 += a * b1;
                a = splat(a2[k]); c20 += a * b0; c21 += a * b1;
                a = splat(a3[k]); c30 += a * b0; c31 += a * b1;
            }
            float *c = C + (unsigned long)i * N + j;
            store4(c, c00); store4(c + 4, c01);
            store4(c + N, c10); store4(c + N + 4, c11);
            store4(c + 2 * N, c20); store4(c + 2 * N + 4, c21);
            store4(c + 3 * N, c30); store4(c + 3 * N + 4, c31);
        }
        if (j < N)
            for (u32 r = 0; r < 4; r++) matmul_row(A + (unsigned long)(i + r) * K, B, C + (unsigned long)(i + r) * N, K, N, j);
    }
    for (; i < M; i++) matmul_row(A + (unsigned long)i * K, B, C + (unsigned long)i * N, K, N, 0);
}

/* exp(x) by range reduction to r in [-ln2/2, ln2/2] and a degree-6 polynomial (rel. error < 2e-7). */
static float k_expf(float x) {
    if (x < -87.0f) return 0.0f;
    if (x > 88.0f) x = 88.0f;
    const float kf = x * 1.44269504f;
    const int k = (int)(kf + (kf >= 0.0f ? 0.5f : -0.5f));
    const float r = x - (float)k * 0.693145751953125f - (float)k * 1.428606765330187e-06f;
    const float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666679f +
                    r * (0.00833333377f + r * 0.00138888892f)))));
    union { float f; u32 u; } s;
    s.u = (u32)(k + 127) << 23;
    return p * s.f;
}

/* log(x) for x > 0: x = m·2^e with m in [1,2), log m by the atanh series. */
static float k_logf(float x) {
    if (x < 1e-30f) x = 1e-30f;
    union { float f; u32 u; } v = {x};
    const int e = (int)((v.u >> 23) & 0xff) - 127;
    v.u = (v.u & 0x007fffff) | 0x3f800000;
    const float s = (v.f - 1.0f) / (v.f + 1.0f), s2 = s * s;
    const float lm = 2.0f * s * (1.0f + s2 * (0.333333343f + s2 * (0.2f + s2 * (0.142857149f +
                     s2 * (0.111111112f + s2 * 0.0909090936f)))));
    return lm + (float)e * 0.693147182f;
}

u32 mlp_param_count(u32 n_in, u32 n_h, u32 n_out) { return n_in * n_h + n_h + n_h * n_out + n_out; }

/* One row: hidden = relu(x·W1 + b1), probs = softmax(hidden·W2 + b2). */
static void forward_row(const float *params, const float *x, u32 n_in, u32 n_h, u32 n_out,
                        float *hidden, float *probs) {
    const float *W1 = params, *b1 = W1 + n_in * n_h, *W2 = b1 + n_h, *b2 = W2 + n_h * n_out;
    for (u32 j = 0; j < n_h; j++) hidden[j] = b1[j];
    for (u32 i = 0; i < n_in; i++) {
        const float xi = x[i];
        if (xi == 0.0f) continue;
        const float *w = W1 + i * n_h;
        for (u32 j = 0; j < n_h; j++) hidden[j] += xi * w[j];
    }
    for (u32 j = 0; j < n_h; j++) hidden[j] = hidden[j] > 0.0f ? hidden[j] : 0.0f;
    for (u32 k = 0; k < n_out; k++) probs[k] = b2[k];
    for (u32 j = 0; j < n_h; j++) {
        const float h = hidden[j];
        const float *w = W2 + j * n_out;
        for (u32 k = 0; k < n_out; k++) probs[k] += h * w[k];
    }
    float top = probs[0], sum = 0.0f;
    for (u32 k = 1; k < n_out; k++) top = probs[k] > top ? probs[k] : top;
    for (u32 k = 0; k < n_out; k++) { probs[k] = k_expf(probs[k] - top); sum += probs[k]; }
    for (u32 k = 0; k < n_out; k++) probs[k] /= sum;
}

void mlp_forward(const float *params, const float *X, u32 batch, u32 n_in, u32 n_h, u32 n_out,
                 float *probs, float *hidden) {
    for (u32 r = 0; r < batch; r++)
        forward_row(params, X + (unsigned long)r * n_in, n_in, n_h, n_out, hidden, probs + (unsigned long)r * n_out);
}

u32 sgd_workspace_floats(u32 n_in, u32 n_h, u32 n_out) {
    return mlp_param_count(n_in, n_h, n_out) + 2 * n_h + n_out;
}

float sgd_train(float *params, const float *X, const u32 *y, u32 n, u32 n_in, u32 n_h, u32 n_out,
                u32 epochs, u32 batch, float lr, u32 seed, float *ws, u32 *perm) {
    const u32 count = mlp_param_count(n_in, n_h, n_out);
    float *grad = ws, *hidden = ws + count, *dhidden = hidden + n_h, *probs = dhidden + n_h;
    float *gW1 = grad, *gb1 = gW1 + n_in * n_h, *gW2 = gb1 + n_h, *gb2 = gW2 + n_h * n_out;
    const float *W2 = params + n_in * n_h + n_h;
    u32 state = seed ? seed : 0x9e3779b9u;
    float loss = 0.0f;
    if (batch == 0) batch = 1;
    for (u32 i = 0; i < n; i++) perm[i] = i;
    for (u32 epoch = 0; epoch < epochs; epoch++) {
        state = shuffle(perm, n, state);
        loss = 0.0f;
        for (u32 start = 0; start < n; start += batch) {
            const u32 end = start + batch < n ? start + batch : n;
            for (u32 p = 0; p < count; p++) grad[p] = 0.0f;
            for (u32 s = start; s < end; s++) {
                const float *x = X + (unsigned long)perm[s] * n_in;
                const u32 label = y[perm[s]];
                forward_row(params, x, n_in, n_h, n_out, hidden, probs);
                loss -= k_logf(probs[label]);
                probs[label] -= 1.0f;  /* d loss / d logits */
                for (u32 j = 0; j < n_h; j++) {
                    const float h = hidden[j];
                    const float *w = W2 + j * n_out;
                    float *g = gW2 + j * n_out, d = 0.0f;
                    for (u32 k = 0; k < n_out; k++) { g[k] += h * probs[k]; d += w[k] * probs[k]; }
                    dhidden[j] = h > 0.0f ? d : 0.0f;
                }
                for (u32 k = 0; k < n_out; k++) gb2[k] += probs[k];
                for (u32 j = 0; j < n_h; j++) gb1[j] += dhidden[j];
                for (u32 i = 0; i < n_in; i++) {
                    const float xi = x[i];
                    if (xi == 0.0f) continue;
                    float *g = gW1 + i * n_h;
                    for (u32 j = 0; j < n_h; j++) g[j] += xi * dhidden[j];
                }
            }
            const float step = lr / (float)(end - start);
            for (u32 p = 0; p < count; p++) params[p] -= step * grad[p];
        }
        loss /= (float)(n ? n : 1);
    }
    return loss;
}
