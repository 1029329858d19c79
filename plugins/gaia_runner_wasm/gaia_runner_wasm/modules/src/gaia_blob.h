/* The GAIA blob host API for WASM tasks (docs/task-abi.md, "Blobs").
 *
 * A module that includes this header imports these functions from the import module "gaia_blob"
 * (import name = the function name without "gb_"). They read the blobs the task names (Task.blobs),
 * by their position in that list; the blobs are complete and verified before the task starts, and
 * read-only. Bad arguments trap the task: an index that names no blob, an offset past the end of the
 * blob, a destination outside the module's memory. Each read is charged to fuel by the bytes copied. */
#ifndef GAIA_BLOB_H
#define GAIA_BLOB_H

#define GB_IMPORT(name) __attribute__((import_module("gaia_blob"), import_name(name)))

/* How many blobs the task names. */
GB_IMPORT("count") int gb_count(void);

/* The size in bytes of blob `index` (0 <= index < gb_count()). */
GB_IMPORT("size") long long gb_size(int index);

/* Copy up to `len` bytes of blob `index`, from byte `offset` (0 <= offset <= size), to `dest`;
 * the bytes copied: fewer than `len` only at the end of the blob, 0 at its end. At most 1 GiB per call. */
GB_IMPORT("read") int gb_read(int index, long long offset, void *dest, int len);

#endif
