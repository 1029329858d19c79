/* The training tasks' sample order: a xorshift32 stream and the Fisher-Yates shuffle it drives, shared by
 * kernels.c and cnn_task.c so every path shuffles alike. Header-only (static inline), no libc. */
#ifndef GAIA_SHUFFLE_H
#define GAIA_SHUFFLE_H

typedef unsigned int u32;

/* The next value of the xorshift32 stream in `*state` (never 0 unless seeded with 0). */
static inline u32 xorshift32(u32 *state) {
    u32 x = *state;
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    return *state = x;
}

/* Shuffle perm[0..n) in place, drawing from the stream at `state`; returns the stream's state after. */
static inline u32 shuffle(u32 *perm, u32 n, u32 state) {
    for (u32 i = n; i > 1; i--) {  /* Fisher-Yates */
        const u32 j = xorshift32(&state) % i, t = perm[i - 1];
        perm[i - 1] = perm[j]; perm[j] = t;
    }
    return state;
}

#endif
