/*
 * An XDP firewall: drops IPv4 packets whose source address is in the `blocklist` hash map
 * (counting hits per address), passes everything else, and counts verdicts per CPU.
 *
 *   mimic run Examples/xdp_firewall.o --pcap Examples/traffic.pcap \
 *       --map blocklist=Examples/blocklist.json --out passed.pcap
 */
#include "mimic_bpf.h"

/* Blocked source addresses (network byte order, as in the IP header) -> packets dropped. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, __be32);
    __type(value, __u64);
    __uint(max_entries, 1024);
} blocklist SEC(".maps");

/* Packets per verdict (index: enum xdp_action), per CPU. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 5);
} verdicts SEC(".maps");

static __always_inline int count(__u32 action)
{
    __u64 *counter = bpf_map_lookup_elem(&verdicts, &action);
    if (counter)
        *counter += 1;
    return action;
}

SEC("xdp")
int xdp_firewall(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;

    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return count(XDP_DROP);             /* runt frame */
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return count(XDP_PASS);             /* not IPv4: not our business */

    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return count(XDP_DROP);             /* truncated IP header */

    __be32 source = ip->saddr;
    __u64 *hits = bpf_map_lookup_elem(&blocklist, &source);
    if (hits) {
        __sync_fetch_and_add(hits, 1);
        return count(XDP_DROP);
    }
    return count(XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
