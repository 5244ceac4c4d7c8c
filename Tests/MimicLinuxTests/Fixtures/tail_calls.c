/* Tail calls through a prog array whose slots are set in C: `dispatch` jumps to the slot its
 * packet's rx queue names; `stage_count` chains on to `stage_pass`. `hops` (.bss) records the
 * path: +1 in stage_pass, +10 in stage_count. */
#include "../../../Examples/mimic_bpf.h"

__u32 hops;

SEC("xdp")
int stage_pass(struct xdp_md *ctx)
{
    hops += 1;
    return XDP_PASS;
}

SEC("xdp")
int stage_count(struct xdp_md *ctx);

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 4);
    __uint(key_size, sizeof(__u32));
    __array(values, int(struct xdp_md *));
} jump_table SEC(".maps") = {
    .values = { [0] = &stage_pass, [1] = &stage_count },
};

SEC("xdp")
int stage_count(struct xdp_md *ctx)
{
    hops += 10;
    bpf_tail_call(ctx, &jump_table, 0);
    return XDP_ABORTED;
}

SEC("xdp")
int dispatch(struct xdp_md *ctx)
{
    bpf_tail_call(ctx, &jump_table, ctx->rx_queue_index);
    /* Only reached when the slot is empty or out of range. */
    return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
