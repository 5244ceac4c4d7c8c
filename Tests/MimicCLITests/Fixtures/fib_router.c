/* An XDP router that asks the kernel's FIB (issue 14, the emulated network): bpf_fib_lookup on
 * the IPv4 destination from the ingress device; on success the TTL is decremented, the MAC
 * addresses come from the lookup (the neighbour and the output device) and the packet leaves by
 * bpf_redirect to the device the route names. Blackhole, unreachable and prohibit routes drop;
 * everything else (local destinations, no neighbour yet, too big for the route's MTU, no
 * route) goes to the stack, as the kernel's xdp_fwd sample does. Non-IPv4 passes. The lookup's
 * result is counted in `results[rc]`. Run with `--net router_net.json --ctx ingress_ifindex=2`. */
#include "../../../Examples/mimic_bpf.h"

#define AF_INET 2
struct bpf_fib_lookup {
    __u8 family;
    __u8 l4_protocol;
    __be16 sport;
    __be16 dport;
    __u16 tot_len;
    __u32 ifindex;
    union {
        __u8 tos;
        __be32 flowinfo;
        __u32 rt_metric;
    };
    union {
        __be32 ipv4_src;
        __u32 ipv6_src[4];
    };
    union {
        __be32 ipv4_dst;
        __u32 ipv6_dst[4];
    };
    union {
        struct {
            __be16 h_vlan_proto;
            __be16 h_vlan_TCI;
        };
        __u32 tbid;
    };
    union {
        struct {
            __u32 mark;
        };
        struct {
            __u8 smac[6];
            __u8 dmac[6];
        };
    };
};
static long (*bpf_fib_lookup)(void *ctx, struct bpf_fib_lookup *params, int plen, __u32 flags) = (void *)69;

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 10);
    __type(key, __u32);
    __type(value, __u64);
} results SEC(".maps");

static __always_inline void decrement_ttl(struct iphdr *ip)
{
    __u32 sum = (__u32)ip->check + (__u32)bpf_htons(0x0100);
    ip->check = (__u16)(sum + (sum >= 0xFFFF));
    ip->ttl -= 1;
}

SEC("xdp")
int fib_router(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_DROP;
    if (ip->ttl <= 1)
        return XDP_PASS; /* the stack sends the ICMP time-exceeded */

    struct bpf_fib_lookup fib = {};
    fib.family = AF_INET;
    fib.tos = ip->tos;
    fib.l4_protocol = ip->protocol;
    fib.tot_len = bpf_ntohs(ip->tot_len);
    fib.ipv4_src = ip->saddr;
    fib.ipv4_dst = ip->daddr;
    fib.ifindex = ctx->ingress_ifindex;

    long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
    __u32 slot = rc >= 0 && rc < 10 ? (__u32)rc : 9;
    __u64 *count = bpf_map_lookup_elem(&results, &slot);
    if (count)
        __sync_fetch_and_add(count, 1);
    switch (rc) {
    case 0: /* BPF_FIB_LKUP_RET_SUCCESS */
        decrement_ttl(ip);
        __builtin_memcpy(eth->h_dest, fib.dmac, 6);
        __builtin_memcpy(eth->h_source, fib.smac, 6);
        return bpf_redirect(fib.ifindex, 0);
    case 1: /* BLACKHOLE */
    case 2: /* UNREACHABLE */
    case 3: /* PROHIBIT */
        return XDP_DROP;
    default:
        return XDP_PASS;
    }
}

char LICENSE[] SEC("license") = "GPL";
