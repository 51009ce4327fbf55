/*
 * stream.h — a model's blocks in device memory (DESIGN.md §4's weight states): blocks
 * [0, resident) stay resident, the others pass through two slots of the largest block's size,
 * the next one copied on the pool's copy thread while the current one computes.
 *
 * A model describes its blocks as an array of structs whose weights are wr_tensors; `tensors`
 * lists the tensor fields of one struct (absent ones have data NULL). acquire(i) returns a
 * struct like blocks[i] whose tensors point into device memory. Blocks are acquired in order
 * 0, 1, ..., n-1 (a forward), then again from the start; another order still works, only
 * without the prefetch.
 *
 * The blocks' tensors are host memory (the mapped checkpoint, or host buffers the loader
 * converted into). On a backend whose ops read host memory (be->host_visible: the plain CPU
 * backend), resident blocks are the model's own tensors used in place and only counted
 * (weights-resident); elsewhere (the strict CPU device mode, CUDA) they are device copies in
 * the weights-resident category, uploaded when the streamer is made. Streamed blocks are
 * always copied (weights-streaming). The streamed blocks are counted as host memory
 * (pageable) unless the pool does disk offload, where they are read from the files each time.
 *
 * Stream order (backend.h's events; nothing on a synchronous backend): the ops a caller issues
 * for block i between acquire(i) and release(i) (or the next acquire) run on the compute
 * stream; acquire makes that stream wait for the block's copies, and a slot is refilled only
 * behind an event recorded on the compute stream when the block it held was released. So the
 * caller issues every op that reads block i's weights before it releases block i, and never
 * reads them on the host (they are device memory).
 */
#ifndef WR_VRAM_STREAM_H
#define WR_VRAM_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "vram/vram.h"

#define WR_STREAM_MAX_TENSORS 32

/* Fills out[] with pointers to the tensor fields of *block; returns how many. */
typedef int (*wr_block_tensors_fn)(void *block, wr_tensor **out);

typedef struct wr_streamer wr_streamer;

/* resident < 0 or >= n: all resident. blocks (n structs of struct_size bytes) are borrowed and
 * must outlive the streamer. WR_ERR_OOM_DEVICE when the pool's limit refuses the memory. */
wr_status wr_streamer_create(wr_streamer **out, wr_vram *v, void *blocks, size_t struct_size,
                             int64_t n, wr_block_tensors_fn tensors, int64_t resident);
/* Waits for every copy and for the backend (every stream: the ops that read the slots), gives
 * the memory back to the pool. NULL is a no-op. */
void wr_streamer_free(wr_streamer *s);
/* Block i's struct, its tensors in device memory; the compute stream waits for their copies
 * (the host only for the copy thread to have issued them). Implies the release of the block
 * acquired before, if it was not released. Fails with the copy's error, a failed event call,
 * or WR_ERR_OOM_HOST when a copy cannot be queued; the streamer stays usable. */
wr_status wr_streamer_acquire(wr_streamer *s, int64_t i, const void **block);
/* DESIGN.md §4's weight states of a block: offload (in the checkpoint files: streamed under disk
 * offload), onload (in host memory, ready to copy), preparing (in device memory in its storage
 * dtype: resident, or in a slot, copied or being copied), computation (acquired and not yet
 * released). */
typedef enum wr_weight_state {
    WR_WEIGHTS_OFFLOAD = 0,
    WR_WEIGHTS_ONLOAD,
    WR_WEIGHTS_PREPARING,
    WR_WEIGHTS_COMPUTATION
} wr_weight_state;
wr_weight_state wr_streamer_state(const wr_streamer *s, int64_t i);
const char *wr_weight_state_name(wr_weight_state st);

/* Block i's ops are all issued: an event recorded behind them on the compute stream lets its
 * slot be refilled once they ran (and the timeline event). The next acquire implies it too; a
 * failed record is returned by the next acquire. */
void wr_streamer_release(wr_streamer *s, int64_t i);
/* The model's name in the block timeline (static storage; default "blocks"). */
void wr_streamer_set_name(wr_streamer *s, const char *name);

/*
 * The hand-over (Wan2.2's two experts swapped while the first one's last forward runs): every
 * block of s resident as device copies (not in place), `blocks` a second model's structs laid
 * out alike (the same tensors with the same byte sizes: WR_ERR_UNSUPPORTED otherwise, and
 * nothing changes). Armed, s's next pass must acquire its blocks in order 0 .. n-1 once: as
 * each block is released (or the next acquired), an event is recorded behind its ops on the
 * compute stream and the same-index block of `blocks` is copied into its place, the copy stream
 * waiting for that event; so the copies overlap the rest of the pass, and never overwrite
 * weights an op still reads. Acquiring a block already handed over fails (WR_ERR_INTERNAL).
 * The staging buffers are held for the copies (where the pool wants them).
 */
wr_status wr_streamer_handoff(wr_streamer *s, void *blocks, size_t struct_size);
/* After the armed pass: *out, a streamer of `blocks` (all resident) in s's device memory, once
 * the remaining copies arrived (the host waits for them). s keeps nothing but its bookkeeping:
 * free it next (the memory is *out's; the accounting moves with it). WR_ERR_INTERNAL when the
 * pass did not hand every block over. */
wr_status wr_streamer_adopt(wr_streamer **out, wr_streamer *s, void *blocks);

/* One block's device bytes (the largest; 64-byte aligned tensors), from the structs alone. */
size_t wr_blocks_max_bytes(void *blocks, size_t struct_size, int64_t n, wr_block_tensors_fn fn);

#endif /* WR_VRAM_STREAM_H */
