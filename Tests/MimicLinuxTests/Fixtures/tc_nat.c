/* A tc destination NAT: rewrites IPv4 packets to 10.0.0.99 to 192.168.1.100, and their UDP or
 * TCP destination port to 8080, fixing the IP and L4 checksums with the checksum helpers. */
#include "../../../Examples/mimic_bpf.h"

#define MATCH_DADDR 0x0A000063 /* 10.0.0.99 */
#define NEW_DADDR 0xC0A80164   /* 192.168.1.100 */
#define NEW_DPORT 8080

#define IP_OFF ETH_HLEN
#define IP_CSUM_OFF (IP_OFF + offsetof(struct iphdr, check))
#define IP_DADDR_OFF (IP_OFF + offsetof(struct iphdr, daddr))
#define L4_OFF (IP_OFF + sizeof(struct iphdr))

SEC("tc")
int dnat(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return TC_ACT_OK;
    if (ip->ihl != 5 || ip->daddr != bpf_htonl(MATCH_DADDR))
        return TC_ACT_OK;

    __u32 csum_off, port_off;
    __u64 mangled = 0;
    if (ip->protocol == IPPROTO_UDP) {
        csum_off = L4_OFF + offsetof(struct udphdr, check);
        port_off = L4_OFF + offsetof(struct udphdr, dest);
        mangled = BPF_F_MARK_MANGLED_0;
    } else if (ip->protocol == IPPROTO_TCP) {
        csum_off = L4_OFF + offsetof(struct tcphdr, check);
        port_off = L4_OFF + offsetof(struct tcphdr, dest);
    } else {
        return TC_ACT_OK;
    }

    __be32 old_daddr = ip->daddr;
    __be32 new_daddr = bpf_htonl(NEW_DADDR);
    __be16 old_port;
    if (bpf_skb_load_bytes(skb, port_off, &old_port, sizeof(old_port)) < 0)
        return TC_ACT_SHOT;
    __be16 new_port = bpf_htons(NEW_DPORT);

    /* The L4 checksum covers the pseudo-header's address and the port. */
    bpf_l4_csum_replace(skb, csum_off, old_daddr, new_daddr, BPF_F_PSEUDO_HDR | mangled | sizeof(new_daddr));
    bpf_l4_csum_replace(skb, csum_off, old_port, new_port, mangled | sizeof(new_port));
    bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_daddr, new_daddr, sizeof(new_daddr));
    bpf_skb_store_bytes(skb, IP_DADDR_OFF, &new_daddr, sizeof(new_daddr), 0);
    bpf_skb_store_bytes(skb, port_off, &new_port, sizeof(new_port), 0);
    skb->mark = 0x4e4154; /* "NAT" */
    return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
