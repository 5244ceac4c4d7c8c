/* Map values: a lookup returns a pointer or NULL, and the pointer reaches value_size bytes. */
#include "corpus.h"

struct slots {
    __u32 slot[16];
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct slots);
} tables SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u64);
} flows SEC(".maps");

/* Rejected: a hash map's value is used without the NULL check. */
SEC("xdp")
int map_null_unchecked(struct xdp_md *ctx)
{
    __u32 key = ctx->ingress_ifindex;
    __u64 *count = bpf_map_lookup_elem(&flows, &key);
    *count += 1;
    return XDP_PASS;
}

/* Accepted twin: checked first. */
SEC("xdp")
int map_null_checked(struct xdp_md *ctx)
{
    __u32 key = ctx->ingress_ifindex;
    __u64 *count = bpf_map_lookup_elem(&flows, &key);
    if (count)
        *count += 1;
    return XDP_PASS;
}

/* Accepted: no NULL check, but an array lookup with the key 0 (below max_entries) cannot fail,
 * and this kernel's verifier knows it (the result is a map value, not map value or NULL). */
SEC("xdp")
int map_array_constant_key_unchecked(struct xdp_md *ctx)
{
    __u32 key = 0;
    __u64 *count = bpf_map_lookup_elem(&counters, &key);
    *count += 1;
    return XDP_PASS;
}

/* Rejected: the same with the constant key 2 — this kernel knows a stored key of 0 (zeroed
 * stack), but not a 4-byte store of another constant, so the lookup may return NULL. */
SEC("xdp")
int map_array_key_two_unchecked(struct xdp_md *ctx)
{
    __u32 key = 2;
    __u64 *count = bpf_map_lookup_elem(&counters, &key);
    *count += 1;
    return XDP_PASS;
}

/* Rejected: the same array lookup with a key the verifier cannot bound may fail. */
SEC("xdp")
int map_array_variable_key_unchecked(struct xdp_md *ctx)
{
    __u32 key = ctx->rx_queue_index;
    __u64 *count = bpf_map_lookup_elem(&counters, &key);
    *count += 1;
    return XDP_PASS;
}

/* Rejected: reads the 8 bytes after an 8-byte value. */
SEC("xdp")
int map_value_past_end(struct xdp_md *ctx)
{
    __u32 key = 0;
    __u64 *count = bpf_map_lookup_elem(&counters, &key);
    if (!count)
        return XDP_PASS;
    return count[1] ? XDP_PASS : XDP_DROP;
}

/* Rejected: an index the verifier cannot bound (any u32) into a 16-slot value. */
SEC("xdp")
int map_value_index_unbounded(struct xdp_md *ctx)
{
    __u32 key = 0;
    struct slots *table = bpf_map_lookup_elem(&tables, &key);
    if (!table)
        return XDP_PASS;
    return table->slot[ctx->rx_queue_index] ? XDP_PASS : XDP_DROP;
}

/* Accepted twin: the index is masked to the 16 slots. */
SEC("xdp")
int map_value_index_masked(struct xdp_md *ctx)
{
    __u32 key = 0;
    struct slots *table = bpf_map_lookup_elem(&tables, &key);
    if (!table)
        return XDP_PASS;
    return table->slot[ctx->rx_queue_index & 15] ? XDP_PASS : XDP_DROP;
}
