/* The GAIA task ABI for freestanding C modules (docs/task-abi.md).
 *
 * A module exports its linear memory as "memory", an allocator "gaia_alloc(size) -> ptr" and one or
 * more entries "name(ptr, len) -> i64". The host allocates the input with gaia_alloc, copies it in and
 * calls the entry, which returns (out_ptr << 32) | out_len. A module refuses its input by returning
 * gaia_fail(message): out_len 0xFFFFFFFF and out_ptr pointing at [u32 length][UTF-8 message]. */
#ifndef GAIA_ABI_H
#define GAIA_ABI_H

typedef unsigned int u32;
typedef unsigned long long u64;

#define GAIA_EXPORT(name) __attribute__((export_name(name)))

/* Bump allocation from the heap, growing memory; 0 when the memory limit is reached. */
void *gaia_alloc(u32 size);

/* Like gaia_alloc, but traps when the memory limit is reached. */
void *gaia_alloc_or_trap(u32 size);

/* The packed return value of an entry for an output of `len` bytes at `ptr`. */
static inline u64 gaia_output(const void *ptr, u32 len) {
    return ((u64)(unsigned long)ptr << 32) | len;
}

/* The packed return value of an entry that refuses its input with `message`. */
u64 gaia_fail(const char *message);

/* Little-endian u32 at byte offset `i` of `p`. */
static inline u32 gaia_u32(const unsigned char *p, u32 i) {
    u32 v;
    __builtin_memcpy(&v, p + i, sizeof v);
    return v;
}

#endif
