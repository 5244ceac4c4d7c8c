/* Direct packet access: every read must follow a comparison with data_end that covers it. */
#include "corpus.h"

/* Rejected: reads the EtherType with no check against data_end. */
SEC("xdp")
int pkt_read_unchecked(struct xdp_md *ctx)
{
    PACKET_BOUNDS(ctx, data, data_end);
    struct ethhdr *eth = data;
    return eth->h_proto == bpf_htons(ETH_P_IP) ? XDP_PASS : XDP_DROP;
}

/* Accepted twin: the Ethernet header is checked first. */
SEC("xdp")
int pkt_read_checked(struct xdp_md *ctx)
{
    PACKET_BOUNDS(ctx, data, data_end);
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    return eth->h_proto == bpf_htons(ETH_P_IP) ? XDP_PASS : XDP_DROP;
}

/* Rejected: the check covers the Ethernet header, but the read is of the IPv4 header after it
 * (the pointer was advanced past what was checked). */
SEC("xdp")
int pkt_check_then_advance(struct xdp_md *ctx)
{
    PACKET_BOUNDS(ctx, data, data_end);
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    struct iphdr *ip = (void *)(eth + 1);
    return ip->protocol == IPPROTO_TCP ? XDP_PASS : XDP_DROP;
}

/* Accepted twin: the check covers the IPv4 header too. */
SEC("xdp")
int pkt_advance_checked(struct xdp_md *ctx)
{
    PACKET_BOUNDS(ctx, data, data_end);
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_DROP;
    return ip->protocol == IPPROTO_TCP ? XDP_PASS : XDP_DROP;
}

/* Rejected: off by one — the check covers 14 bytes, the read is of bytes 13..14. */
SEC("xdp")
int pkt_off_by_one(struct xdp_md *ctx)
{
    PACKET_BOUNDS(ctx, data, data_end);
    __u8 *bytes = data;
    if (data + 14 > data_end)
        return XDP_DROP;
    return *(__u16 *)(bytes + 13) & 0xff;
}

/* Rejected: a socket filter may not read the packet directly (it uses bpf_skb_load_bytes). */
SEC("socket")
int pkt_socket_direct(struct __sk_buff *skb)
{
    PACKET_BOUNDS(skb, data, data_end);
    if (data + 1 > data_end)
        return 0;
    return *(__u8 *)data;
}
