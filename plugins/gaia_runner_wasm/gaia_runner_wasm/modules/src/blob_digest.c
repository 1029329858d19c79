/* Reads every blob the task names through the gaia_blob host API and returns, for each, its size and
 * 64-bit FNV-1a digest (u64 size, u64 digest, little-endian); the input is the read size per call
 * (u32; 0 or absent: 64 KiB). tests/test_blob_devnet.py checks it against the bytes it added. */
#include "gaia_abi.h"
#include "gaia_blob.h"

GAIA_EXPORT("digest") u64 digest(const unsigned char *in, u32 len) {
    u32 step = len >= 4 ? gaia_u32(in, 0) : 0;
    if (step == 0) step = 65536;
    if (step > (1u << 30)) return gaia_fail("read size over 1 GiB");
    int count = gb_count();
    unsigned char *buf = gaia_alloc_or_trap(step);
    u64 *out = gaia_alloc_or_trap((u32)count * 16);
    for (int b = 0; b < count; b++) {
        long long size = gb_size(b), offset = 0;
        u64 hash = 0xcbf29ce484222325ULL;
        int got;
        while ((got = gb_read(b, offset, buf, (int)step)) > 0) {
            for (int i = 0; i < got; i++) hash = (hash ^ buf[i]) * 0x100000001b3ULL;
            offset += got;
        }
        if (offset != size) return gaia_fail("a blob read ended before its size");
        out[2 * b] = (u64)size;
        out[2 * b + 1] = hash;
    }
    return gaia_output(out, (u32)count * 16);
}
