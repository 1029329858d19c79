/* Task module "cnn": a small convolutional classifier on the tensor host API (gaia_tensor.h).
 *
 * conv (FILTERS × KERNEL×KERNEL, stride 1, "same" zero padding KERNEL/2) -> ReLU -> 2×2 max-pool (stride 2)
 * -> dense -> softmax, for one-channel HEIGHT × WIDTH images (NCHW, N×1×H×W).
 *
 * Both entries start with the model header u32 height, width, filters, kernel, classes, then the parameters
 * Wc[filters×kernel×kernel], bc[filters], Wd[features×classes], bd[classes] as little-endian f32, where
 * features = filters·(height/2)·(width/2) in NCHW order (filter, row, column).
 *
 * "infer":  header, params, u32 batch, X[batch×height×width] f32  ->  probabilities[batch×classes] f32
 * "train":  header, params, u32 n, u32 epochs, u32 batch_size, f32 learning_rate, u32 seed,
 *           X[n×height×width] f32, y[n] u32  ->  updated params (same layout), f32 loss (mean cross-entropy
 *           of the last epoch). Minibatch SGD; samples shuffled each epoch by xorshift32 from `seed`.
 *
 * Every tensor operation is a gaia_tensor call, so two honest nodes compute the same bits. */
#include "gaia_abi.h"
#include "gaia_tensor.h"
#include "shuffle.h"

float logf(float);  /* wasi-libc's (musl) logf: exact IEEE arithmetic, the same on every node */

#define MAX_SIDE 32u
#define MAX_FILTERS 64u
#define MAX_KERNEL 7u
#define MAX_CLASSES 256u
#define MAX_BATCH 256u  /* bounds every buffer below 2^31 bytes (host API sizes are i32) */
#define HEADER 20u

typedef struct {
    u32 h, w, filters, k, classes, feat, count;
    float *params, *wc, *bc, *wd, *bd;
} cnn_t;

/* Buffers for a forward (and backward) pass over up to `rows` samples. */
typedef struct { float *x, *conv, *act, *pooled, *logits, *probs; int *argmax; } pass_t;

static float *floats(u32 count) { return gaia_alloc_or_trap(4 * count); }

/* Read and check the header, copy the parameters to aligned memory; returns the bytes consumed or 0. */
static u32 read_model(const unsigned char *in, u32 len, cnn_t *m) {
    if (len < HEADER) return 0;
    m->h = gaia_u32(in, 0); m->w = gaia_u32(in, 4); m->filters = gaia_u32(in, 8);
    m->k = gaia_u32(in, 12); m->classes = gaia_u32(in, 16);
    if (m->h < 2 || m->h > MAX_SIDE || m->h % 2 || m->w < 2 || m->w > MAX_SIDE || m->w % 2) return 0;
    if (!m->filters || m->filters > MAX_FILTERS || m->k % 2 == 0 || m->k > MAX_KERNEL) return 0;
    if (m->classes < 2 || m->classes > MAX_CLASSES) return 0;
    m->feat = m->filters * (m->h / 2) * (m->w / 2);
    m->count = m->filters * m->k * m->k + m->filters + m->feat * m->classes + m->classes;
    if ((u64)HEADER + 4ull * m->count > len) return 0;
    m->params = floats(m->count + 1);  /* + 1: room for the loss after a training run */
    __builtin_memcpy(m->params, in + HEADER, 4 * m->count);
    m->wc = m->params;
    m->bc = m->wc + m->filters * m->k * m->k;
    m->wd = m->bc + m->filters;
    m->bd = m->wd + m->feat * m->classes;
    return HEADER + 4 * m->count;
}

static pass_t alloc_pass(const cnn_t *m, u32 rows) {
    const u32 plane = rows * m->filters * m->h * m->w;
    pass_t p = {floats(rows * m->h * m->w), floats(plane), floats(plane), floats(rows * m->feat),
                floats(rows * m->classes), floats(rows * m->classes), 0};
    p.argmax = gaia_alloc_or_trap(4 * rows * m->feat);
    return p;
}

/* probs = softmax(dense(maxpool(relu(conv(x))))) for the `rows` images in p->x. */
static void forward(const cnn_t *m, const pass_t *p, u32 rows) {
    const int r = (int)rows, f = (int)m->filters, h = (int)m->h, w = (int)m->w, k = (int)m->k;
    gt_conv2d(p->x, m->wc, m->bc, p->conv, r, 1, h, w, f, k, k, 1, k / 2);
    gt_relu(p->conv, p->act, r * f * h * w);
    gt_maxpool2d(p->act, p->pooled, p->argmax, r, f, h, w, 2, 2);
    gt_gemm(p->pooled, m->wd, p->logits, r, (int)m->classes, (int)m->feat, 0);
    gt_bias_add(p->logits, m->bd, r, (int)m->classes);
    gt_softmax(p->logits, p->probs, r, (int)m->classes);
}

GAIA_EXPORT("infer") u64 infer_entry(const unsigned char *in, u32 len) {
    cnn_t m;
    u32 at = read_model(in, len, &m);
    if (!at || at + 4 > len) return gaia_fail("infer: bad model header or parameters");
    const u32 batch = gaia_u32(in, at), pixels = m.h * m.w;
    at += 4;
    if ((u64)at + 4ull * batch * pixels != len) return gaia_fail("infer: input size does not match batch × height × width");
    if ((u64)batch * m.classes > (1u << 28)) return gaia_fail("infer: batch × classes is over 2^28 outputs; send fewer images");
    float *out = floats(batch * m.classes);
    const pass_t p = alloc_pass(&m, batch < MAX_BATCH ? batch : MAX_BATCH);
    for (u32 start = 0; start < batch; start += MAX_BATCH) {
        const u32 rows = batch - start < MAX_BATCH ? batch - start : MAX_BATCH;
        __builtin_memcpy(p.x, in + at + 4 * start * pixels, 4 * rows * pixels);
        forward(&m, &p, rows);
        __builtin_memcpy(out + start * m.classes, p.probs, 4 * rows * m.classes);
    }
    return gaia_output(out, 4 * batch * m.classes);
}

/* Scratch for a backward pass over up to `rows` samples. */
typedef struct { float *dpool, *cols, *cols_t, *ones; } scratch_t;

static scratch_t alloc_scratch(const cnn_t *m, u32 rows) {
    const u32 pixels = m->h * m->w, cols = rows * m->k * m->k * pixels;
    scratch_t t = {floats(rows * m->feat), floats(cols), floats(cols), floats(rows * pixels)};
    for (u32 i = 0; i < rows * pixels; i++) t.ones[i] = 1.0f;
    return t;
}

/* dst[b, a, :] = src[a, b, :] for an (outer × inner) grid of `len`-float rows: data movement only. */
static void swap_axes(const float *src, float *dst, u32 outer, u32 inner, u32 len) {
    for (u32 a = 0; a < outer; a++)
        for (u32 b = 0; b < inner; b++)
            __builtin_memcpy(dst + (b * outer + a) * len, src + (a * inner + b) * len, 4 * len);
}

/* Gradients of the summed loss over the `rows` samples in p (after forward) into g (the params' layout).
 * p->probs becomes d loss / d logits; p->conv, p->act and the scratch are overwritten. The convolution's
 * gradients are one gemm each over every (sample, position) pair: the batch is moved to the middle axis. */
static void backward(const cnn_t *m, const pass_t *p, const u32 *labels, u32 rows, float *g, const scratch_t *t) {
    const int r = (int)rows, f = (int)m->filters, h = (int)m->h, w = (int)m->w, k = (int)m->k;
    const int classes = (int)m->classes, feat = (int)m->feat, kk = k * k, hw = h * w;
    float *gwc = g, *gbc = gwc + kk * f, *gwd = gbc + f, *gbd = gwd + feat * classes;
    for (u32 s = 0; s < rows; s++) p->probs[s * m->classes + labels[s]] -= 1.0f;
    gt_gemm(p->pooled, p->probs, gwd, feat, classes, r, GT_TRANS_A);
    gt_sum_rows(p->probs, gbd, r, classes);
    gt_gemm(p->probs, m->wd, t->dpool, r, feat, classes, GT_TRANS_B);
    gt_maxpool2d_backward(t->dpool, p->argmax, p->act, r, f, h, w, 2, 2);  /* act: d loss / d relu out */
    gt_relu_backward(p->conv, p->act, p->conv, r * f * hw);                  /* conv: d loss / d conv out */
    swap_axes(p->conv, p->act, rows, m->filters, (u32)hw);                   /* act: [filter, sample, pos] */
    gt_gemm(p->act, t->ones, gbc, f, 1, r * hw, 0);
    gt_im2col(p->x, t->cols, r, h, w, k, k, 1, k / 2);  /* the batch as channels: [sample, kk, pos] */
    swap_axes(t->cols, t->cols_t, rows, (u32)kk, (u32)hw);                   /* [kk, sample, pos] */
    gt_gemm(p->act, t->cols_t, gwc, f, kk, r * hw, GT_TRANS_B);
}

GAIA_EXPORT("train") u64 train_entry(const unsigned char *in, u32 len) {
    cnn_t m;
    u32 at = read_model(in, len, &m);
    if (!at || at + 20 > len) return gaia_fail("train: bad model header or parameters");
    const u32 n = gaia_u32(in, at), epochs = gaia_u32(in, at + 4), pixels = m.h * m.w;
    u32 batch = gaia_u32(in, at + 8);
    float lr;
    __builtin_memcpy(&lr, in + at + 12, 4);
    u32 state = gaia_u32(in, at + 16);
    at += 20;
    if ((u64)at + 4ull * n * pixels + 4ull * n != len) return gaia_fail("train: input size does not match n × (height × width + 1)");
    if (!n) return gaia_fail("train: no samples");
    if (!(lr > 0.0f && lr < 100.0f)) return gaia_fail("train: learning rate must be in (0, 100)");
    if (batch == 0 || batch > MAX_BATCH) return gaia_fail("train: batch size must be in 1..256");
    const float *X = (const float *)(in + at);  /* gaia_alloc aligns the input to 16 bytes */
    u32 *y = gaia_alloc_or_trap(4 * n), *perm = gaia_alloc_or_trap(4 * n), *labels = gaia_alloc_or_trap(4 * batch);
    __builtin_memcpy(y, in + at + 4 * n * pixels, 4 * n);
    for (u32 i = 0; i < n; i++) {
        if (y[i] >= m.classes) return gaia_fail("train: a label is not below classes");
        perm[i] = i;
    }
    const pass_t p = alloc_pass(&m, batch);
    const scratch_t scratch = alloc_scratch(&m, batch);
    float *g = floats(m.count);
    if (!state) state = 0x9e3779b9u;
    float loss = 0.0f;
    for (u32 epoch = 0; epoch < epochs; epoch++) {
        state = shuffle(perm, n, state);
        loss = 0.0f;
        for (u32 start = 0; start < n; start += batch) {
            const u32 rows = n - start < batch ? n - start : batch;
            for (u32 s = 0; s < rows; s++) {
                __builtin_memcpy(p.x + s * pixels, X + perm[start + s] * pixels, 4 * pixels);
                labels[s] = y[perm[start + s]];
            }
            forward(&m, &p, rows);
            for (u32 s = 0; s < rows; s++) {
                const float q = p.probs[s * m.classes + labels[s]];
                loss -= logf(q > 1e-30f ? q : 1e-30f);
            }
            backward(&m, &p, labels, rows, g, &scratch);
            gt_axpy(-lr / (float)rows, g, m.params, (int)m.count);
        }
        loss /= (float)n;
    }
    m.params[m.count] = loss;
    return gaia_output(m.params, 4 * m.count + 4);
}
