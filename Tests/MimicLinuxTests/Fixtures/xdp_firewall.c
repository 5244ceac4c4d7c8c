/* An XDP firewall: drops IPv4 packets whose source address is in `blocked` (filled by the
 * host), passes the rest, and counts verdicts per CPU in `verdicts`. Each blocked entry's
 * value counts the packets it dropped. */
#include "../../../Examples/mimic_bpf.h"

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __be32);  /* IPv4 source address, network byte order */
    __type(value, __u64); /* packets dropped */
} blocked SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 4); /* XDP_ABORTED ... XDP_TX */
    __type(key, __u32);
    __type(value, __u64);
} verdicts SEC(".maps");

static __always_inline int verdict(__u32 action)
{
    __u64 *count = bpf_map_lookup_elem(&verdicts, &action);
    if (count)
        *count += 1;
    return action;
}

SEC("xdp")
int firewall(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return verdict(XDP_ABORTED);
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return verdict(XDP_PASS);
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return verdict(XDP_ABORTED);
    __be32 source = ip->saddr;
    __u64 *dropped = bpf_map_lookup_elem(&blocked, &source);
    if (dropped) {
        __sync_fetch_and_add(dropped, 1);
        return verdict(XDP_DROP);
    }
    return verdict(XDP_PASS);
}

char _license[] SEC("license") = "GPL";
