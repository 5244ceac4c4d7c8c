/* Large maps, few entries touched (the shape of Katran's balancer): a preallocated hash map
 * and an array of 2^24 (16,777,216) entries each. Each IPv4 packet counts itself in the array
 * at index (source address & 0xFFFFFF) and in the hash map under its destination address,
 * and bumps the array's last element; other packets touch nothing. Compared by
 * Tests/MimicKernelTests/LargeMapComparisonTests.swift and measured in Docs/Performance.md. */
#include "../../../Examples/mimic_bpf.h"

#define BIG (1 << 24)

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, BIG);
#ifdef BIG_MAPS_NO_PREALLOC /* a variant for measurements: the hash map charged as it fills */
    __uint(map_flags, BPF_F_NO_PREALLOC);
#endif
    __type(key, __u32);
    __type(value, __u64);
} flows SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, BIG);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

SEC("xdp")
int count_big(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || eth->h_proto != __builtin_bswap16(ETH_P_IP))
        return XDP_PASS;
    __u32 index = __builtin_bswap32(ip->saddr) & (BIG - 1);
    __u64 *count = bpf_map_lookup_elem(&counters, &index);
    if (count)
        __sync_fetch_and_add(count, 1);
    __u32 last = BIG - 1;
    count = bpf_map_lookup_elem(&counters, &last);
    if (count)
        *count += 2;
    __u32 destination = ip->daddr;
    __u64 *seen = bpf_map_lookup_elem(&flows, &destination);
    if (seen) {
        __sync_fetch_and_add(seen, 1);
    } else {
        __u64 one = 1;
        bpf_map_update_elem(&flows, &destination, &one, BPF_NOEXIST);
    }
    return XDP_TX;
}

char _license[] SEC("license") = "GPL";
