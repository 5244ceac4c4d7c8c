/* Netfilter programs (SEC("netfilter")): the context is struct bpf_nf_ctx, two read-only
 * pointers (nf_is_valid_access in net/netfilter/nf_bpf_link.c), and the program returns
 * NF_DROP (0) or NF_ACCEPT (1). */
#include "corpus.h"

struct nf_hook_state;
struct sk_buff;

struct bpf_nf_ctx {
    const struct nf_hook_state *state;
    struct sk_buff *skb;
};

#define NF_DROP 0
#define NF_ACCEPT 1

/* Rejected: offset 16 is past struct bpf_nf_ctx. */
SEC("netfilter")
int nf_ctx_past_end(struct bpf_nf_ctx *ctx)
{
    return *(__u64 *)((char *)ctx + 16) != 0;
}

/* Rejected: the fields are 8-byte pointers; a 4-byte read of one is refused. */
SEC("netfilter")
int nf_ctx_short_read(struct bpf_nf_ctx *ctx)
{
    return *(__u32 *)ctx != 0;
}

/* Rejected: the context is read-only. */
SEC("netfilter")
int nf_ctx_write(struct bpf_nf_ctx *ctx)
{
    ctx->skb = (struct sk_buff *)ctx->state;
    return NF_ACCEPT;
}

/* Rejected: 2 is neither NF_DROP nor NF_ACCEPT. */
SEC("netfilter")
int nf_return_two(struct bpf_nf_ctx *ctx)
{
    return 2;
}

/* Accepted twin: both pointers read whole, and a verdict of NF_DROP or NF_ACCEPT. */
SEC("netfilter")
int nf_ctx_pointers(struct bpf_nf_ctx *ctx)
{
    return ctx->skb && ctx->state ? NF_ACCEPT : NF_DROP;
}
