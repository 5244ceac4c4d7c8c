/* BPF-to-BPF calls: every sub-program must end in an exit (or a jump), and its return value is
 * R0. Clang always ends functions properly, so the broken one is written in assembly. */
#include "corpus.h"

/* Falls off its end: no exit after the last instruction. */
static __noinline __attribute__((naked)) int falls_off(int x)
{
    asm volatile("r0 = r1\n"
                 "r0 += 1\n");
}

/* The twin ends in exit. */
static __noinline __attribute__((naked)) int returns(int x)
{
    asm volatile("r0 = r1\n"
                 "r0 += 1\n"
                 "exit\n");
}

/* Rejected: calls a sub-program that falls off its end. */
SEC("xdp")
int subprog_falls_off(struct xdp_md *ctx)
{
    return falls_off(ctx->rx_queue_index & 1);
}

/* Accepted twin: the sub-program returns. */
SEC("xdp")
int subprog_returns(struct xdp_md *ctx)
{
    return returns(ctx->rx_queue_index & 1);
}
