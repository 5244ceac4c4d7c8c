/*
 * An XDP packet counter: packets and bytes per IP protocol in a per-CPU hash map, and totals
 * in a per-CPU array. Passes every packet; a BPF-to-BPF call does the parsing.
 *
 *   mimic run Examples/packet_counter.o --pcap Examples/traffic.pcap
 */
#include "mimic_bpf.h"

struct counters {
    __u64 packets;
    __u64 bytes;
};

/* Per IP protocol number (0 for non-IPv4 frames). */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __type(key, __u8);
    __type(value, struct counters);
    __uint(max_entries, 256);
} by_protocol SEC(".maps");

/* Index 0: every frame. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __type(key, __u32);
    __type(value, struct counters);
    __uint(max_entries, 1);
} totals SEC(".maps");

/* The IP protocol of an Ethernet frame, or 0 if it is not IPv4. */
static __attribute__((noinline)) int ip_protocol(void *data, void *data_end)
{
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return 0;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return 0;
    return ip->protocol;
}

static __always_inline void add(struct counters *counters, __u64 bytes)
{
    counters->packets += 1;
    counters->bytes += bytes;
}

SEC("xdp")
int count_packets(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u64 length = data_end - data;

    __u32 zero = 0;
    struct counters *total = bpf_map_lookup_elem(&totals, &zero);
    if (total)
        add(total, length);

    __u8 protocol = ip_protocol(data, data_end);
    struct counters *counters = bpf_map_lookup_elem(&by_protocol, &protocol);
    if (counters) {
        add(counters, length);
    } else {
        struct counters fresh = { 1, length };
        bpf_map_update_elem(&by_protocol, &protocol, &fresh, BPF_NOEXIST);
    }
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
