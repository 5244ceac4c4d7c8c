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

/* Returns without setting R0, as clang compiles a static function whose constant return value
 * it has moved into its callers (libbpf-tools' softirqs.bpf.c): the kernel hands the caller
 * whatever R0 holds. */
static __noinline __attribute__((naked)) int leaves_r0(int x)
{
    asm volatile("r1 += 1\n"
                 "exit\n");
}

/* Accepted: the caller sets R0 itself after the call. */
SEC("xdp")
int subprog_leaves_r0(struct xdp_md *ctx)
{
    leaves_r0(ctx->rx_queue_index & 1);
    return XDP_PASS;
}

/* Rejected: the caller returns the R0 the sub-program never set. */
SEC("xdp")
int subprog_leaves_r0_used(struct xdp_md *ctx)
{
    return leaves_r0(ctx->rx_queue_index & 1);
}
