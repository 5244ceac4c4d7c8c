/* Return values: for some program types the kernel checks R0's range at exit (cgroup_skb:
 * 0 or 1 on ingress). XDP's return value is not checked. Also division: the kernel defines
 * division by zero (the result is 0), so only a constant zero divisor is refused. */
#include "corpus.h"

/* Rejected: cgroup_skb programs return 0 (drop) or 1 (allow). */
SEC("cgroup_skb/ingress")
int retval_out_of_range(struct __sk_buff *skb)
{
    return 5;
}

/* Rejected: a value the verifier cannot bound. */
SEC("cgroup_skb/ingress")
int retval_unknown(struct __sk_buff *skb)
{
    return skb->len;
}

/* Accepted twin: 0 or 1. */
SEC("cgroup_skb/ingress")
int retval_in_range(struct __sk_buff *skb)
{
    return skb->len > 100;
}

/* Accepted: XDP returns are not range-checked (unknown actions act as XDP_ABORTED). */
SEC("xdp")
int retval_xdp_unchecked(struct xdp_md *ctx)
{
    return 1000;
}

/* Accepted: division by a register that may be zero (the result is then 0). */
SEC("xdp")
int div_by_register(struct xdp_md *ctx)
{
    __u32 divisor = ctx->rx_queue_index;
    asm volatile("" : "+r"(divisor));
    return (1000 / divisor) & 3;
}

/* Rejected: division by the constant 0 (an immediate divisor must not be zero). */
SEC("xdp")
__attribute__((naked)) int div_by_zero_immediate(void)
{
    asm volatile("r0 = 1000\n"
                 "r0 /= 0\n"
                 "exit\n");
}

/* Accepted: division by a register known to be zero. */
SEC("xdp")
__attribute__((naked)) int div_by_zero_register(void)
{
    asm volatile("r0 = 1000\n"
                 "r1 = 0\n"
                 "r0 /= r1\n"
                 "exit\n");
}
