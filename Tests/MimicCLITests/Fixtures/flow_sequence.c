/*
 * Per-flow sequence numbers, for `mimic run --pcap --workers N` (flow order kept): each IPv4
 * TCP or UDP packet gets its flow's count so far (a plain read-modify-write of a shared hash
 * map entry, which only stays right when one flow's packets run one after another) written
 * over its first 4 payload bytes; every third packet of a flow is dropped. Totals per verdict
 * in a shared array (atomic adds), packets per CPU in a per-CPU array.
 */
#include "mimic_bpf.h"

struct flow {
    __be32 saddr, daddr;
    __be16 sport, dport;
    __u32 proto;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, struct flow);
    __type(value, __u32);
    __uint(max_entries, 4096);
} flows SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 4);
} totals SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 1);
} per_cpu SEC(".maps");

static __always_inline int verdict(int action)
{
    __u32 key = action;
    __u64 *total = bpf_map_lookup_elem(&totals, &key);
    if (total)
        __sync_fetch_and_add(total, 1);
    __u32 zero = 0;
    __u64 *mine = bpf_map_lookup_elem(&per_cpu, &zero);
    if (mine)
        *mine += 1;
    return action;
}

SEC("xdp")
int flow_sequence(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return verdict(XDP_PASS);
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || ip->ihl != 5)
        return verdict(XDP_PASS);
    if (ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_TCP)
        return verdict(XDP_PASS);
    __be16 *ports = (void *)(ip + 1);
    if ((void *)(ports + 2) > data_end)
        return verdict(XDP_PASS);
    struct flow key = {
        .saddr = ip->saddr, .daddr = ip->daddr, .sport = ports[0], .dport = ports[1], .proto = ip->protocol,
    };
    __u32 count = 1;
    __u32 *seen = bpf_map_lookup_elem(&flows, &key);
    if (seen)
        count = *seen + 1;
    bpf_map_update_elem(&flows, &key, &count, BPF_ANY);
    /* The payload after an 8-byte UDP header or a 20-byte TCP header. */
    __u32 *payload = (void *)ports + (ip->protocol == IPPROTO_UDP ? 8 : 20);
    if ((void *)(payload + 1) <= data_end)
        *payload = count;
    return verdict(count % 3 == 0 ? XDP_DROP : XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
