/* An array of maps with an initial value set in C, whose inner arrays hold values guarded by a
 * bpf_spin_lock (found through the value's BTF type). */
#include "../../../Examples/mimic_bpf.h"

struct counter {
    __u64 value;
    struct bpf_spin_lock lock;
};

struct inner {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct counter);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 2);
    __type(key, __u32);
    __array(values, struct inner);
} outer SEC(".maps") = {
    .values = { [1] = &inner_b },
};

SEC("xdp")
int bump(struct xdp_md *ctx)
{
    __u32 slot = ctx->rx_queue_index;
    void *inner = bpf_map_lookup_elem(&outer, &slot);
    if (!inner)
        return XDP_ABORTED;
    __u32 zero = 0;
    struct counter *counter = bpf_map_lookup_elem(inner, &zero);
    if (!counter)
        return XDP_ABORTED;
    bpf_spin_lock(&counter->lock);
    counter->value += 1;
    bpf_spin_unlock(&counter->lock);
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
