/* Task module "mlp": a 2-layer classifier (ReLU hidden layer, softmax output).
 *
 * Both entries start with the model header u32 n_in, n_hidden, n_out, then the parameters
 * W1[n_in×n_hidden], b1[n_hidden], W2[n_hidden×n_out], b2[n_out] as little-endian f32.
 *
 * "infer":  header, params, u32 batch, X[batch×n_in] f32  ->  probabilities[batch×n_out] f32
 *           (on the tensor host API: six calls per batch, native speed; mlp_wasm.wasm, built with
 *           -DGAIA_PURE_WASM, is the pure-WASM version the benchmarks compare with)
 * "train":  header, params, u32 n, u32 epochs, u32 batch_size, f32 learning_rate, u32 seed,
 *           X[n×n_in] f32, y[n] u32  ->  updated params (same layout as the input params), f32 loss
 *           (mean cross-entropy of the last epoch). Pure WASM (kernels.c): per minibatch the work is
 *           smaller than a dozen host calls cost. */
#include "gaia_abi.h"
#ifndef GAIA_PURE_WASM
#include "gaia_tensor.h"
#endif
#include "kernels.h"

#define MAX_DIM 4096u

typedef struct { u32 n_in, n_h, n_out, count; float *params; } model_t;

/* Read the header and copy the parameters to aligned memory; returns the bytes consumed or 0. */
static u32 read_model(const unsigned char *in, u32 len, model_t *m) {
    if (len < 12) return 0;
    m->n_in = gaia_u32(in, 0); m->n_h = gaia_u32(in, 4); m->n_out = gaia_u32(in, 8);
    if (!m->n_in || !m->n_h || !m->n_out || m->n_in > MAX_DIM || m->n_h > MAX_DIM || m->n_out > MAX_DIM) return 0;
    m->count = mlp_param_count(m->n_in, m->n_h, m->n_out);
    if ((u64)12 + 4ull * m->count > len) return 0;
    m->params = gaia_alloc_or_trap(4 * m->count + 4);
    __builtin_memcpy(m->params, in + 12, 4 * m->count);
    return 12 + 4 * m->count;
}

GAIA_EXPORT("infer") u64 infer_entry(const unsigned char *in, u32 len) {
    model_t m;
    u32 at = read_model(in, len, &m);
    if (!at || at + 4 > len) return gaia_fail("infer: bad model header or parameters");
    const u32 batch = gaia_u32(in, at);
    at += 4;
    if ((u64)at + 4ull * batch * m.n_in != len) return gaia_fail("infer: input size does not match batch × n_in");
    if ((u64)batch * (m.n_h > m.n_out ? m.n_h : m.n_out) > 0x1FFFFFFFu) return gaia_fail("infer: batch too large");
    float *X = gaia_alloc_or_trap(4 * batch * m.n_in);
    __builtin_memcpy(X, in + at, 4 * batch * m.n_in);
    float *probs = gaia_alloc_or_trap(4 * batch * m.n_out), *hidden = gaia_alloc_or_trap(4 * batch * m.n_h);
#ifdef GAIA_PURE_WASM
    mlp_forward(m.params, X, batch, m.n_in, m.n_h, m.n_out, probs, hidden);
#else
    /* The whole batch in six host calls: hidden = relu(X·W1 + b1), probs = softmax(hidden·W2 + b2). */
    const float *W1 = m.params, *b1 = W1 + m.n_in * m.n_h, *W2 = b1 + m.n_h, *b2 = W2 + m.n_h * m.n_out;
    const int B = (int)batch, I = (int)m.n_in, H = (int)m.n_h, O = (int)m.n_out;
    gt_gemm(X, W1, hidden, B, H, I, 0);
    gt_bias_add(hidden, b1, B, H);
    gt_relu(hidden, hidden, B * H);
    gt_gemm(hidden, W2, probs, B, O, H, 0);
    gt_bias_add(probs, b2, B, O);
    gt_softmax(probs, probs, B, O);
#endif
    return gaia_output(probs, 4 * batch * m.n_out);
}

GAIA_EXPORT("train") u64 train_entry(const unsigned char *in, u32 len) {
    model_t m;
    u32 at = read_model(in, len, &m);
    if (!at || at + 20 > len) return gaia_fail("train: bad model header or parameters");
    const u32 n = gaia_u32(in, at), epochs = gaia_u32(in, at + 4), batch = gaia_u32(in, at + 8);
    float lr;
    __builtin_memcpy(&lr, in + at + 12, 4);
    const u32 seed = gaia_u32(in, at + 16);
    at += 20;
    if ((u64)at + 4ull * n * m.n_in + 4ull * n != len) return gaia_fail("train: input size does not match n × (n_in + 1)");
    if (!(lr > 0.0f && lr < 100.0f)) return gaia_fail("train: learning rate must be in (0, 100)");
    float *X = gaia_alloc_or_trap(4 * n * m.n_in);
    __builtin_memcpy(X, in + at, 4 * n * m.n_in);
    u32 *y = gaia_alloc_or_trap(4 * n);
    __builtin_memcpy(y, in + at + 4 * n * m.n_in, 4 * n);
    for (u32 i = 0; i < n; i++)
        if (y[i] >= m.n_out) return gaia_fail("train: a label is not below n_out");
    float *ws = gaia_alloc_or_trap(4 * sgd_workspace_floats(m.n_in, m.n_h, m.n_out));
    u32 *perm = gaia_alloc_or_trap(4 * n);
    const float loss = sgd_train(m.params, X, y, n, m.n_in, m.n_h, m.n_out, epochs, batch, lr, seed, ws, perm);
    m.params[m.count] = loss;  /* read_model left room for it */
    return gaia_output(m.params, 4 * m.count + 4);
}
