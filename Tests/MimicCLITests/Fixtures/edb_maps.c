/* Map definitions as edb's example objects write them, which the kernel refuses: a queue with
 * key_size 4, a perf event array with value_size 8 and a map of maps without an inner map.
 * The Go mimic loads them; Mimic does with --compat go-mimic. Build: ./build.sh */
#include "../../../Examples/mimic_bpf.h"

#define BPF_MAP_TYPE_QUEUE 22

static long (*bpf_map_push_elem)(void *map, const void *value, __u64 flags) = (void *)87;

struct {
    __uint(type, BPF_MAP_TYPE_QUEUE);
    __uint(key_size, 4);
    __uint(value_size, 4);
    __uint(max_entries, 8);
} events_queue SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
    __uint(key_size, 4);
    __uint(value_size, 8);
} perf_out SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(key_size, 4);
    __uint(value_size, 4);
    __uint(max_entries, 2);
} outer SEC(".maps");

SEC("xdp")
int push_ifindex(struct xdp_md *ctx)
{
    __u32 value = ctx->ingress_ifindex;
    return bpf_map_push_elem(&events_queue, &value, 0) == 0 ? XDP_PASS : XDP_ABORTED;
}

char LICENSE[] SEC("license") = "GPL";
