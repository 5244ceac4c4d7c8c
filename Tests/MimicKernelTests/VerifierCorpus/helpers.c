/* Helper calls: each argument must have the type and size of the helper's prototype, and the
 * helper must be allowed for the program type. */
#include "corpus.h"

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u64);
} table SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} records SEC(".maps");

/* Rejected: the context where the map should be. */
SEC("xdp")
int helper_wrong_map_argument(struct xdp_md *ctx)
{
    __u32 key = 0;
    return bpf_map_lookup_elem(ctx, &key) ? XDP_PASS : XDP_DROP;
}

/* Rejected: a scalar (not a pointer) as the key. */
SEC("xdp")
int helper_scalar_key(struct xdp_md *ctx)
{
    return bpf_map_lookup_elem(&table, (void *)(long)ctx->ingress_ifindex) ? XDP_PASS : XDP_DROP;
}

/* Rejected: the size argument (600) reaches past the 8-byte stack buffer and the 512-byte stack. */
SEC("xdp")
int helper_size_past_stack(struct xdp_md *ctx)
{
    __u64 value = ctx->ingress_ifindex;
    bpf_ringbuf_output(&records, &value, 600, 0);
    return XDP_PASS;
}

/* Accepted twin: the size is the buffer's. */
SEC("xdp")
int helper_size_fits(struct xdp_md *ctx)
{
    __u64 value = ctx->ingress_ifindex;
    bpf_ringbuf_output(&records, &value, sizeof(value), 0);
    return XDP_PASS;
}

/* Rejected: a size the verifier cannot bound. */
SEC("xdp")
int helper_size_unbounded(struct xdp_md *ctx)
{
    __u64 value = ctx->ingress_ifindex;
    bpf_ringbuf_output(&records, &value, ctx->rx_queue_index, 0);
    return XDP_PASS;
}

/* Rejected: bpf_skb_store_bytes works on socket buffers, and is not a helper of XDP. */
SEC("xdp")
int helper_not_allowed(struct xdp_md *ctx)
{
    __u8 byte = 0;
    bpf_skb_store_bytes((void *)ctx, 0, &byte, 1, 0);
    return XDP_PASS;
}

/* Accepted by this kernel: bpf_get_current_comm is offered to XDP programs too (for a loader
 * with CAP_PERFMON), although an XDP program has no meaningful current task. */
SEC("xdp")
int helper_current_comm_in_xdp(struct xdp_md *ctx)
{
    char comm[16];
    bpf_get_current_comm(comm, sizeof(comm));
    return comm[0] & 3;
}
