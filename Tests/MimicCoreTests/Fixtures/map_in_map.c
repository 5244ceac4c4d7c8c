/* A map-in-map with an inner map template and an initial value, and a prog array with initial values. */
#include "../../../Examples/mimic_bpf.h"

struct inner {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u32);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 4);
    __type(key, __u32);
    __array(values, struct inner);
} outer SEC(".maps") = {
    .values = { [0] = &inner_a, [3] = &inner_b },
};

SEC("xdp")
int tail_a(struct xdp_md *ctx)
{
    return XDP_PASS;
}

SEC("xdp")
int tail_b(struct xdp_md *ctx)
{
    return XDP_DROP;
}

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __array(values, int(void *));
} jump_table SEC(".maps") = {
    .values = { [1] = (void *)&tail_a, [5] = (void *)&tail_b },
};

SEC("xdp")
int dispatcher(struct xdp_md *ctx)
{
    __u32 key = 0;
    void *map = bpf_map_lookup_elem(&outer, &key);
    if (map) {
        __u32 *value = bpf_map_lookup_elem(map, &key);
        if (value)
            *value += 1;
    }
    bpf_tail_call(ctx, &jump_table, 1);
    return XDP_ABORTED;
}

char _license[] SEC("license") = "GPL";
