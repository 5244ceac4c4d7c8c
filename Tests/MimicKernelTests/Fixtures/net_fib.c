/* bpf_fib_lookup and bpf_check_mtu against a network namespace (NetworkNamespaceTests): each
 * entry of `queries` (flags and a struct bpf_fib_lookup; flags 0xFFFFFFFF ends the list) is
 * looked up and `answers` gets the result and the struct as the helper left it. `mtus` holds
 * bpf_check_mtu's results for the ifindexes 0..3. */
#include "net_lookup.h"

#define QUERIES 32

struct query {
    __u32 flags;
    __u32 unused;
    struct bpf_fib_lookup params;
};

struct answer {
    __s64 rc;
    struct bpf_fib_lookup params;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, QUERIES);
    __type(key, __u32);
    __type(value, struct query);
} queries SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, QUERIES);
    __type(key, __u32);
    __type(value, struct answer);
} answers SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __s64);
} mtus SEC(".maps");

static __always_inline void lookups(void *ctx)
{
    for (__u32 i = 0; i < QUERIES; i++) {
        __u32 key = i;
        struct query *query = bpf_map_lookup_elem(&queries, &key);
        if (!query || query->flags == 0xFFFFFFFF)
            break;
        struct answer answer = {};
        answer.params = query->params;
        answer.rc = bpf_fib_lookup(ctx, &answer.params, sizeof(answer.params), query->flags);
        bpf_map_update_elem(&answers, &key, &answer, BPF_ANY);
    }
    for (__u32 i = 0; i < 4; i++) {
        __u32 mtu = 0, key = 2 * i, value_key = 2 * i + 1;
        __s64 rc = bpf_check_mtu(ctx, i, &mtu, 0, 0);
        __s64 value = mtu;
        bpf_map_update_elem(&mtus, &key, &rc, BPF_ANY);
        bpf_map_update_elem(&mtus, &value_key, &value, BPF_ANY);
    }
}

SEC("xdp")
int xdp_fib(struct xdp_md *ctx)
{
    lookups(ctx);
    return XDP_PASS;
}

SEC("tc")
int tc_fib(struct __sk_buff *skb)
{
    lookups(skb);
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
