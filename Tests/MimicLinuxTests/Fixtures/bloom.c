/* A bloom filter (BPF_MAP_TYPE_BLOOM_FILTER, 3 hash functions from map_extra), compared with
 * the kernel: each packet's IPv4 source address is tested, then added; `results` counts the
 * packets whose source was (possibly) seen before and sums the helpers' results.
 * (The verifier refuses bpf_map_pop_elem on a bloom filter.) */
#include "../../../Examples/mimic_bpf.h"

static long (*bpf_map_push_elem)(void *map, const void *value, __u64 flags) = (void *)87;
static long (*bpf_map_peek_elem)(void *map, void *value) = (void *)89;

struct {
    __uint(type, 30); /* BPF_MAP_TYPE_BLOOM_FILTER */
    __uint(max_entries, 64);
    __type(value, __u32);
    __uint(map_extra, 3);
} sources SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __s64);
} results SEC(".maps");

static __always_inline void add(__u32 index, __s64 value)
{
    __s64 *slot = bpf_map_lookup_elem(&results, &index);
    if (slot)
        *slot += value;
}

SEC("xdp")
int bloom(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    __u32 source = ip->saddr;
    long found = bpf_map_peek_elem(&sources, &source);
    add(0, found == 0);                                  /* seen before */
    add(1, found);                                       /* -ENOENT when absent */
    add(2, bpf_map_push_elem(&sources, &source, 0));
    add(3, bpf_map_peek_elem(&sources, &source));         /* 0: no false negatives */
    add(4, bpf_map_push_elem(&sources, &source, 2));      /* BPF_EXIST: -EINVAL */
    __u32 other = 0xFFFFFFFF;
    add(6, bpf_map_peek_elem(&sources, &other) == 0);     /* 255.255.255.255 never pushed */
    return XDP_PASS;
}
