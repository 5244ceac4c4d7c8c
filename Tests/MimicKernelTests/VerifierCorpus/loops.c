/* Loops: the verifier walks every iteration (bounded loops, Linux 5.3+), so the bound must be
 * known and the walk must stay under one million instructions. */
#include "corpus.h"

/* Rejected: the bound is any u32, so the walk never ends ("BPF program is too large"). */
SEC("xdp")
int loop_unbounded(struct xdp_md *ctx)
{
    __u32 sum = 0;
    for (__u32 i = 0; i < ctx->rx_queue_index; i++) {
        sum += i;
        asm volatile("" : "+r"(sum));
    }
    return sum & 3;
}

/* Accepted twin: the bound is masked to 63. */
SEC("xdp")
int loop_bounded(struct xdp_md *ctx)
{
    __u32 sum = 0;
    __u32 n = ctx->rx_queue_index & 63;
    for (__u32 i = 0; i < n; i++) {
        sum += i;
        asm volatile("" : "+r"(sum));
    }
    return sum & 3;
}

/* Rejected: a loop that never changes its state ("infinite loop detected"). */
SEC("xdp")
int loop_infinite(struct xdp_md *ctx)
{
    if (ctx->rx_queue_index == 7)
        for (;;)
            asm volatile("");
    return XDP_PASS;
}
