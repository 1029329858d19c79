/* A plain WASI command (stdin -> stdout): upper-cases ASCII letters. Shows that off-the-shelf WASI
 * programs run as GAIA tasks with entry "_start". */
#include <stdio.h>

int main(void) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
        for (size_t i = 0; i < n; i++)
            if (buf[i] >= 'a' && buf[i] <= 'z') buf[i] -= 32;
        fwrite(buf, 1, n, stdout);
    }
    return 0;
}
