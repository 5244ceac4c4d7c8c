/* Maps defined the legacy way, in the "maps" section. */
#include "../../../Examples/mimic_bpf.h"

struct bpf_map_def SEC("maps") packet_counts = {
    .type = BPF_MAP_TYPE_ARRAY,
    .key_size = sizeof(__u32),
    .value_size = sizeof(__u64),
    .max_entries = 256,
};

struct bpf_map_def SEC("maps") flow_table = {
    .type = BPF_MAP_TYPE_HASH,
    .key_size = 8,
    .value_size = 16,
    .max_entries = 1024,
    .map_flags = BPF_F_NO_PREALLOC,
};

SEC("xdp")
int count_packets(struct xdp_md *ctx)
{
    __u32 key = ctx->ingress_ifindex & 0xff;
    __u64 *value = bpf_map_lookup_elem(&packet_counts, &key);
    if (value)
        __sync_fetch_and_add(value, 1);
    __u64 flow = key;
    bpf_map_delete_elem(&flow_table, &flow);
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
