/* Compiled with -target bpfeb: a big-endian object with a map, globals and a call. */
#include "../../../Examples/mimic_bpf.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} be_values SEC(".maps");

__u32 be_global = 0x01020304;

static __noinline int add_seven(int x)
{
    return x + 7;
}

SEC("tc")
int be_prog(struct __sk_buff *skb)
{
    __u32 key = 1;
    __u64 *value = bpf_map_lookup_elem(&be_values, &key);
    if (value)
        *value += be_global;
    return add_seven(35);
}

char _license[] SEC("license") = "GPL";
