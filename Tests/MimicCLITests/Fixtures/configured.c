/* A firewall configured before load, as a libbpf skeleton configures it: `.rodata` constants
 * (the blocked UDP port, a mode enum, an enable flag, a tag string, a struct of limits) and a
 * map declared with max_entries 0, which the loader sizes (`--map-size hits=N`). */
#include "../../../Examples/mimic_bpf.h"

enum mode { MODE_PASS = 0, MODE_DROP = 1, MODE_TX = 3 };

struct limits {
    __u16 low;
    __u16 high;
    __u8 flags[2];
};

const volatile __u16 blocked_port = 0;
const volatile enum mode mode = MODE_PASS;
const volatile _Bool enabled = 0;
const volatile char tag[8] = "none";
const volatile struct limits limits = { .low = 0, .high = 0xffff };
__u64 matched = 0;          /* .bss */
__s32 adjust = -1;          /* .data */

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 0); /* sized by the loader */
    __type(key, __u16);
    __type(value, __u64);
} hits SEC(".maps");

SEC("xdp")
int configured(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_UDP)
        return XDP_PASS;
    struct udphdr *udp = (void *)(ip + 1);
    if ((void *)(udp + 1) > data_end)
        return XDP_PASS;
    __u16 port = bpf_ntohs(udp->dest);
    if (!enabled || port < limits.low || port > limits.high)
        return XDP_PASS;
    if (port != blocked_port && !(tag[0] == 'a' && tag[1] == 'l' && tag[2] == 'l'))
        return XDP_PASS;
    matched += 1;
    adjust += limits.flags[1];
    __u64 one = 1, *count = bpf_map_lookup_elem(&hits, &port);
    if (count)
        __sync_fetch_and_add(count, 1);
    else
        bpf_map_update_elem(&hits, &port, &one, BPF_ANY);
    return mode == MODE_DROP ? XDP_DROP : mode == MODE_TX ? XDP_TX : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
