/* XDP programs that leave different traces of a run, for the reset's quick path
 * (`Process.reset(context:)`, `ProcessRearmTests`): each must be followed by a reset that reads
 * exactly as the general path's. Every program first looks at `probe` (.bss): when the test set
 * it, the program loads a byte from that address (a pointer kept from a previous packet) and
 * returns it, so the test can check that the address faults. Every program dirties its stack
 * with the packet's bytes. */
#include "../../../Examples/mimic_bpf.h"

static long (*bpf_xdp_adjust_head)(struct xdp_md *xdp_md, int delta) = (void *)44;
static long (*bpf_xdp_adjust_meta)(struct xdp_md *xdp_md, int delta) = (void *)54;
static long (*bpf_xdp_adjust_tail)(struct xdp_md *xdp_md, int delta) = (void *)65;
static long (*bpf_for_each_map_elem)(void *map, void *callback_fn, void *callback_ctx, __u64 flags) = (void *)164;

__u64 probe;
__u64 total;

struct locked {
    struct bpf_spin_lock lock;
    __u64 count;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct locked);
} locks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} events SEC(".maps");

/* Loads the probed byte when `probe` is set (the caller returns it). */
#define PROBE()                                          \
    do {                                                 \
        __u64 address = probe;                           \
        if (address)                                     \
            return *(volatile __u8 *)(unsigned long)address; \
    } while (0)

/* Writes the packet's first bytes all over a stack buffer and folds them into `total`. */
static __always_inline int dirty_stack(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    volatile __u8 buffer[64];
    if (data + 4 > data_end)
        return -1;
    for (int i = 0; i < 64; i++)
        buffer[i] = ((__u8 *)data)[i & 3] + i;
    total += buffer[ctx->rx_queue_index & 63];
    return 0;
}

SEC("xdp")
int plain(struct xdp_md *ctx)
{
    PROBE();
    if (dirty_stack(ctx))
        return XDP_ABORTED;
    void *data = (void *)(long)ctx->data;
    *(__u8 *)data = 0xAA;
    return XDP_PASS;
}

SEC("xdp")
int headroom(struct xdp_md *ctx)
{
    PROBE();
    if (dirty_stack(ctx))
        return XDP_ABORTED;
    /* Below data and past data_end, inside the buffer's region: no helper involved. */
    volatile __u8 *data = (void *)(long)ctx->data;
    volatile __u8 *data_end = (void *)(long)ctx->data_end;
    data[-16] = 0x55;
    data[-200] = 0x56;
    data_end[2] = 0x57;
    return XDP_PASS;
}

SEC("xdp")
int adjust(struct xdp_md *ctx)
{
    PROBE();
    if (bpf_xdp_adjust_head(ctx, -14))
        return XDP_ABORTED;
    if (bpf_xdp_adjust_meta(ctx, -8))
        return XDP_ABORTED;
    if (bpf_xdp_adjust_tail(ctx, 4))
        return XDP_ABORTED;
    __u8 *meta = (void *)(long)ctx->data_meta;
    __u8 *data = (void *)(long)ctx->data;
    __u8 *data_end = (void *)(long)ctx->data_end;
    if ((void *)meta + 8 > (void *)data || (void *)data + 18 > (void *)data_end)
        return XDP_ABORTED;
    for (int i = 0; i < 8; i++)
        meta[i] = 0x60 + i;
    for (int i = 0; i < 14; i++)
        data[i] = 0x70 + i;
    data_end[-1] = 0x7F;
    return XDP_PASS;
}

SEC("xdp")
int ring(struct xdp_md *ctx)
{
    PROBE();
    if (dirty_stack(ctx))
        return XDP_ABORTED;
    __u64 *record = bpf_ringbuf_reserve(&events, 16, 0);
    if (!record)
        return XDP_DROP;
    record[0] = ctx->data_end - ctx->data;
    record[1] = ctx->ingress_ifindex;
    bpf_ringbuf_submit(record, 0);
    return XDP_PASS;
}

static long add_count(void *map, __u32 *key, __u64 *value, void *context)
{
    *(__u64 *)context += *value + *key;
    return 0;
}

SEC("xdp")
int for_each(struct xdp_md *ctx)
{
    PROBE();
    __u64 sum = 0;
    bpf_for_each_map_elem(&counts, add_count, &sum, 0);
    total += sum;
    return XDP_PASS;
}

static long stack_writer(__u32 index, void *context)
{
    volatile __u8 deep[32];
    for (int i = 0; i < 32; i++)
        deep[i] = index + i + 1;
    *(__u64 *)context += deep[index & 31];
    return 0;
}

SEC("xdp")
int looping(struct xdp_md *ctx)
{
    PROBE();
    __u64 sum = 0;
    bpf_loop(4, stack_writer, &sum, 0);
    total += sum;
    return XDP_PASS;
}

SEC("xdp")
int tail_target(struct xdp_md *ctx)
{
    volatile __u8 other[128];
    for (int i = 0; i < 128; i++)
        other[i] = i ^ 0x5A;
    total += other[ctx->rx_queue_index & 127];
    return XDP_TX;
}

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __uint(key_size, sizeof(__u32));
    __array(values, int(struct xdp_md *));
} jumps SEC(".maps") = {
    .values = { [0] = &tail_target },
};

SEC("xdp")
int tail(struct xdp_md *ctx)
{
    PROBE();
    if (dirty_stack(ctx))
        return XDP_ABORTED;
    bpf_tail_call(ctx, &jumps, 0);
    return XDP_ABORTED;
}

/* Reads the clock: a plain value of the Linux state (`clockReads`) the reset must clear. */
SEC("xdp")
int clock(struct xdp_md *ctx)
{
    PROBE();
    if (dirty_stack(ctx))
        return XDP_ABORTED;
    total += bpf_ktime_get_ns() & 1;
    return XDP_PASS;
}

SEC("xdp")
int redirect(struct xdp_md *ctx)
{
    PROBE();
    return bpf_redirect(2, 0);
}

SEC("xdp")
int traced(struct xdp_md *ctx)
{
    PROBE();
    bpf_printk("packet %u", ctx->data_end - ctx->data);
    return XDP_PASS;
}

SEC("xdp")
int spin(struct xdp_md *ctx)
{
    PROBE();
    __u32 key = 0;
    struct locked *value = bpf_map_lookup_elem(&locks, &key);
    if (!value)
        return XDP_ABORTED;
    bpf_spin_lock(&value->lock);
    value->count += 1;
    bpf_spin_unlock(&value->lock);
    return XDP_PASS;
}

/* Exits holding the lock (the kernel's verifier would refuse it; the emulator releases it when
 * the process is reset). */
SEC("xdp")
int spin_held(struct xdp_md *ctx)
{
    PROBE();
    __u32 key = 0;
    struct locked *value = bpf_map_lookup_elem(&locks, &key);
    if (!value)
        return XDP_ABORTED;
    bpf_spin_lock(&value->lock);
    value->count += 1;
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
