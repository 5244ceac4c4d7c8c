/* Context access: each program type allows reads and writes of certain fields only. */
#include "corpus.h"

/* Rejected: offset 64 is past struct xdp_md. */
SEC("xdp")
int ctx_read_out_of_range(struct xdp_md *ctx)
{
    return *(__u32 *)((char *)ctx + 64) & 3;
}

/* Accepted twin: a field of struct xdp_md. */
SEC("xdp")
int ctx_read_in_range(struct xdp_md *ctx)
{
    return ctx->ingress_ifindex & 3;
}

/* Rejected: XDP's context is read-only. */
SEC("xdp")
int ctx_write_xdp(struct xdp_md *ctx)
{
    ctx->rx_queue_index = 0;
    return XDP_PASS;
}

/* Rejected: skb->len is read-only for tc programs. */
SEC("tc")
int ctx_write_readonly_field(struct __sk_buff *skb)
{
    skb->len = 0;
    return TC_ACT_OK;
}

/* Accepted twin: skb->mark is writable by tc programs. */
SEC("tc")
int ctx_write_mark(struct __sk_buff *skb)
{
    skb->mark = 1;
    return TC_ACT_OK;
}

/* Rejected: a misaligned (offset 2) read of a 4-byte field. */
SEC("xdp")
int ctx_read_misaligned(struct xdp_md *ctx)
{
    return *(__u32 *)((char *)ctx + 2) & 3;
}

/* Rejected: the context pointer moved by an unknown amount before the read. */
SEC("xdp")
int ctx_variable_offset(struct xdp_md *ctx)
{
    __u32 offset = ctx->rx_queue_index & 4;
    return *(__u32 *)((char *)ctx + offset) & 3;
}
