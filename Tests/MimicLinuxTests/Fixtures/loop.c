/* bpf_loop: sums the squares of 0, 1, ... up to the rx queue index (at most 100 iterations) in
 * a callback that stops the loop itself, and stores the sum and iteration count in .bss. */
#include "../../../Examples/mimic_bpf.h"

struct loop_state {
    __u64 sum;
    __u32 last;
};

__u64 loop_sum;
__s64 loop_iterations;

static long add_square(__u32 index, void *context)
{
    struct loop_state *state = context;
    state->sum += (__u64)index * index;
    return index >= state->last; /* 1 stops the loop */
}

SEC("xdp")
int squares(struct xdp_md *ctx)
{
    struct loop_state state = { .sum = 0, .last = ctx->rx_queue_index };
    loop_iterations = bpf_loop(100, add_square, &state, 0);
    loop_sum = state.sum;
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
