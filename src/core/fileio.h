/*
 * fileio.h — reading a small file whole (a JSON config, a sharded model's index), safely.
 *
 * Every JSON file wanrun reads goes through wr_read_small_file: model_index.json, the component
 * configs, the tokenizer's JSON files, a *.safetensors.index.json and the CLI's --config FILE.
 * Any of them may name something that is not a file: a FIFO would block the reader forever
 * (open(2) waits for a writer, read(2) for data), /dev/zero or /dev/urandom would be read until
 * memory runs out, a directory fails with a confusing error. So the reader
 *   - refuses anything but a regular file, by stat before opening (so a device is never even
 *     opened) and by fstat of what was opened (the name may have been swapped in between); the
 *     open is O_NONBLOCK, so a FIFO that slipped through still cannot block it;
 *   - refuses a file larger than the caller's cap before reading a byte (WR_CONFIG_MAX_BYTES,
 *     16 MiB, for configs and indexes: a Wan2.1 14B config is under 1 KiB, its sharded
 *     transformer's index about 100 KiB; the cap leaves two orders of magnitude);
 *   - reads exactly the st_size bytes fstat reported, and fails when the file turns out shorter
 *     (it shrank while being read) or longer (it grew, or it is a /proc-like file whose size is
 *     not known in advance): what is parsed is one consistent snapshot, never a torn one.
 *
 * No state; thread-safe.
 */
#ifndef WR_CORE_FILEIO_H
#define WR_CORE_FILEIO_H

#include <stddef.h>

#include "status.h"

/* The cap on a JSON config or index file read whole (see above). */
#define WR_CONFIG_MAX_BYTES ((size_t)16 << 20)

/*
 * Reads all of `path` (borrowed) into a new NUL-terminated buffer: *out (owned by the caller,
 * free()) holds *len bytes plus the NUL. The file must be a regular file of at most max_bytes
 * bytes; `what` (borrowed, e.g. "a config") names the kind of file in the size error.
 * Failures (each detail names the file): WR_ERR_NOT_FOUND (no such file), WR_ERR_IO ("not a
 * regular file (a FIFO)", cannot open or read, "changed size while being read"),
 * WR_ERR_FORMAT ("N bytes, larger than the 16 MiB limit for a config"), WR_ERR_OOM_HOST.
 * On failure *out is NULL and *len 0.
 */
wr_status wr_read_small_file(char **out, size_t *len, const char *path, size_t max_bytes,
                             const char *what);

/* "a FIFO", "a directory", "a character device", ... for a st_mode that is not S_ISREG;
 * "a regular file" for one that is. Static string. */
const char *wr_file_kind(unsigned mode);

#endif /* WR_CORE_FILEIO_H */
