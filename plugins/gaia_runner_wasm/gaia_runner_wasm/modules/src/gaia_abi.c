/* The GAIA task ABI runtime for freestanding modules: a bump allocator and error returns. */
#include "gaia_abi.h"

extern unsigned char __heap_base;
static unsigned long heap_top;

GAIA_EXPORT("gaia_alloc") void *gaia_alloc(u32 size) {
    if (!heap_top) heap_top = (unsigned long)&__heap_base;
    const unsigned long start = (heap_top + 15) & ~15ul, end = start + size;
    const unsigned long have = __builtin_wasm_memory_size(0) * 65536ul;
    if (end > have) {
        const unsigned long pages = (end - have + 65535) / 65536;
        if (__builtin_wasm_memory_grow(0, pages) == (unsigned long)-1) return 0;
    }
    heap_top = end;
    return (void *)start;
}

void *gaia_alloc_or_trap(u32 size) {
    void *p = gaia_alloc(size);
    if (!p) __builtin_trap();
    return p;
}

u64 gaia_fail(const char *message) {
    u32 len = 0;
    while (message[len]) len++;
    unsigned char *out = gaia_alloc_or_trap(4 + len);
    __builtin_memcpy(out, &len, 4);
    __builtin_memcpy(out + 4, message, len);
    return ((u64)(unsigned long)out << 32) | 0xFFFFFFFFu;
}
