/* An object that defines a map type Mimic does not emulate (an arena) beside socket maps, a
 * cgroup array and an array it does. It loads; `count` runs; `redirect_lookup` finds nothing in
 * the empty sockmap; `arena_lookup` stops at its lookup in the arena, naming it. (kprobes, so the
 * kernel comparison skips it.) */
#include "../../../Examples/mimic_bpf.h"

struct {
    __uint(type, 15); /* BPF_MAP_TYPE_SOCKMAP */
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} socks SEC(".maps");

struct {
    __uint(type, 18); /* BPF_MAP_TYPE_SOCKHASH */
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} sock_hash SEC(".maps");

struct {
    __uint(type, 8); /* BPF_MAP_TYPE_CGROUP_ARRAY */
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} cgroups SEC(".maps");

struct {
    __uint(type, 20); /* BPF_MAP_TYPE_REUSEPORT_SOCKARRAY */
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} reuse SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} calls SEC(".maps");

SEC("kprobe/count")
int count(struct pt_regs *ctx)
{
    __u32 zero = 0;
    __u64 *value = bpf_map_lookup_elem(&calls, &zero);
    if (value)
        *value += 1;
    return 0;
}

struct {
    __uint(type, 33); /* BPF_MAP_TYPE_ARENA */
    __uint(map_flags, 1 << 10); /* BPF_F_MMAPABLE */
    __uint(max_entries, 1);
} arena SEC(".maps");
SEC("kprobe/arena")
int arena_lookup(struct pt_regs *ctx)
{
    __u32 zero = 0;
    return bpf_map_lookup_elem(&arena, &zero) != 0;
}
SEC("kprobe/lookup")
int redirect_lookup(struct pt_regs *ctx)
{
    __u32 zero = 0;
    return bpf_map_lookup_elem(&socks, &zero) != 0;
}
