/* Counts packets per IPv4 source in a 4-entry LRU hash: a new source evicts the least
 * recently seen one. */
#include "../../../Examples/mimic_bpf.h"

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 4);
    __type(key, __be32);
    __type(value, __u64);
} flows SEC(".maps");

SEC("xdp")
int track(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    __be32 source = ip->saddr;
    __u64 *packets = bpf_map_lookup_elem(&flows, &source);
    if (packets) {
        __sync_fetch_and_add(packets, 1);
    } else {
        __u64 one = 1;
        bpf_map_update_elem(&flows, &source, &one, BPF_NOEXIST);
    }
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
