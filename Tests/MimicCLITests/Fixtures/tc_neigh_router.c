/* A tc router on the emulated network (issue 14): bpf_fib_lookup with BPF_FIB_LOOKUP_SKIP_NEIGH
 * finds the output device, and bpf_redirect_neigh leaves the MAC addresses to the kernel's
 * neighbour table when the packet is sent; 10.0.3.200 goes to the fixed next hop 10.0.3.7
 * instead (struct bpf_redir_neigh). Packets to 10.0.99.0/24 go into the peer of ifindex 3
 * (bpf_redirect_peer). Failed lookups pass, non-IPv4 passes. Run with --net router_net.json. */
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

struct bpf_redir_neigh {
    __u32 nh_family;
    union {
        __be32 ipv4_nh;
        __u32 ipv6_nh[4];
    };
};

static long (*bpf_fib_lookup)(void *ctx, struct bpf_fib_lookup *params, int plen, __u32 flags) = (void *)69;
static long (*bpf_redirect_neigh)(__u32 ifindex, struct bpf_redir_neigh *params, int plen, __u64 flags) = (void *)152;
static long (*bpf_redirect_peer)(__u32 ifindex, __u64 flags) = (void *)155;

#define BPF_FIB_LOOKUP_SKIP_NEIGH 4
#define TC_ACT_REDIRECT 7

SEC("tc")
int tc_neigh_router(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return TC_ACT_OK;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return TC_ACT_OK;
    if ((bpf_ntohl(ip->daddr) & 0xFFFFFF00) == 0x0A006300) /* 10.0.99.0/24 */
        return bpf_redirect_peer(3, 0);
    if (bpf_ntohl(ip->daddr) == 0x0A0003C8) { /* 10.0.3.200 */
        struct bpf_redir_neigh nh = {AF_INET, {bpf_htonl(0x0A000307)}};
        return bpf_redirect_neigh(3, &nh, sizeof(nh), 0);
    }
    struct bpf_fib_lookup fib = {};
    fib.family = AF_INET;
    fib.ipv4_src = ip->saddr;
    fib.ipv4_dst = ip->daddr;
    fib.ifindex = skb->ingress_ifindex;
    if (bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH) != 0)
        return TC_ACT_OK;
    return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
}

char LICENSE[] SEC("license") = "GPL";
