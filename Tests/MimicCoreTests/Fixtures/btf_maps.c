/* BTF-defined maps in ".maps". */
#include "../../../Examples/mimic_bpf.h"

struct flow_key {
    __u32 saddr;
    __u32 daddr;
    __u16 sport;
    __u16 dport;
    __u8 protocol;
};

enum verdict { VERDICT_PASS = 1, VERDICT_DROP = 2, VERDICT_REDIRECT = 7 };

struct flow_stats {
    __u64 packets;
    __u64 bytes;
    enum verdict verdict;
    char label[8];
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, struct flow_key);
    __type(value, struct flow_stats);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 4);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, sizeof(__u64));
} counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} events SEC(".maps");

SEC("xdp")
int track(struct xdp_md *ctx)
{
    struct flow_key key = {};
    key.protocol = ctx->rx_queue_index;
    struct flow_stats *stats = bpf_map_lookup_elem(&flows, &key);
    if (stats) {
        stats->packets++;
        return XDP_PASS;
    }
    __u32 index = 0;
    __u64 *count = bpf_map_lookup_elem(&counters, &index);
    if (count)
        *count += 1;
    __u64 *event = bpf_ringbuf_reserve(&events, 8, 0);
    if (event) {
        *event = 42;
        bpf_ringbuf_submit(event, 0);
    }
    return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
