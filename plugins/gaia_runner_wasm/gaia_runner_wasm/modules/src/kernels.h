/* GAIA compute kernels: portable C shared by the WASM task modules and the native benchmark baseline.
 * No libc: every helper is defined here so the same arithmetic runs in WebAssembly and natively. */
#ifndef GAIA_KERNELS_H
#define GAIA_KERNELS_H

typedef unsigned int u32;

/* C[M×N] = A[M×K] · B[K×N], row-major f32. */
void matmul(const float *A, const float *B, float *C, u32 M, u32 K, u32 N);

/* Parameters of the 2-layer MLP, in this order: W1[n_in×n_h], b1[n_h], W2[n_h×n_out], b2[n_out]. */
u32 mlp_param_count(u32 n_in, u32 n_h, u32 n_out);

/* Class probabilities (softmax) for `batch` rows of X; `hidden` is scratch of n_h floats. */
void mlp_forward(const float *params, const float *X, u32 batch, u32 n_in, u32 n_h, u32 n_out,
                 float *probs, float *hidden);

/* Floats of scratch sgd_train needs (gradients, activations). */
u32 sgd_workspace_floats(u32 n_in, u32 n_h, u32 n_out);

/* `epochs` of minibatch SGD (cross-entropy) on X[n×n_in], labels y[n]; updates params in place and
 * returns the mean loss of the last epoch. `ws` holds sgd_workspace_floats floats, `perm` n u32.
 * Sample order is shuffled each epoch with a xorshift32 stream seeded by `seed`. */
float sgd_train(float *params, const float *X, const u32 *y, u32 n, u32 n_in, u32 n_h, u32 n_out,
                u32 epochs, u32 batch, float lr, u32 seed, float *ws, u32 *perm);

#endif
