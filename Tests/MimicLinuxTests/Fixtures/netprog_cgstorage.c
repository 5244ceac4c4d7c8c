/*
 * cgroup_skb with cgroup storage: each run counts packets and bytes in its cgroup's storage
 * (shared and per-CPU) and shows the counts in skb->mark and skb->cb[0], which ctx_out gives
 * back. The kernel's test run gives every run a fresh storage; an attached program (and
 * Mimic) keeps it from packet to packet.
 */
#include "netprogs.h"

struct {
    __uint(type, BPF_MAP_TYPE_CGROUP_STORAGE);
    __type(key, struct bpf_cgroup_storage_key);
    __type(value, __u64[2]);
} totals SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE);
    __type(key, struct bpf_cgroup_storage_key);
    __type(value, __u32);
} per_cpu SEC(".maps");

SEC("cgroup_skb/egress")
int count_egress(struct __sk_buff *skb) {
    __u64 *total = bpf_get_local_storage(&totals, 0);
    __u32 *mine = bpf_get_local_storage(&per_cpu, 0);
    __sync_fetch_and_add(&total[0], 1);
    __sync_fetch_and_add(&total[1], skb->len);
    *mine += 1;
    skb->mark = 100 + (__u32)total[0];
    skb->cb[0] = (__u32)total[1];
    skb->cb[1] = *mine;
    return 1;
}
