/* Longest-prefix-match routing: looks the IPv4 destination up in an LPM trie of routes and
 * redirects the packet to the route's interface; no route drops it. */
#include "../../../Examples/mimic_bpf.h"

struct route_key {
    __u32 prefixlen;
    __be32 address;
};

struct route {
    __u32 ifindex;
    __u32 metric;
};

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 64);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct route_key);
    __type(value, struct route);
} routes SEC(".maps");

SEC("xdp")
int route(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct route_key key = { .prefixlen = 32, .address = ip->daddr };
    struct route *found = bpf_map_lookup_elem(&routes, &key);
    if (!found)
        return XDP_DROP;
    return bpf_redirect(found->ifindex, 0);
}

char _license[] SEC("license") = "GPL";
