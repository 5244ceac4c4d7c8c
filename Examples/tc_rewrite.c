/*
 * A tc classifier that rewrites the destination port of UDP and TCP packets from 8080 to 80
 * (a port map in the `ports` hash map can add more), fixing the L4 checksum with
 * bpf_l4_csum_replace, and counts rewrites.
 *
 *   mimic run Examples/tc_rewrite.o --context Examples/contexts/udp_8080.json
 */
#include "mimic_bpf.h"

/* Destination port rewrites (host byte order): old -> new. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, __u16);
    __type(value, __u16);
    __uint(max_entries, 64);
} ports SEC(".maps");

/* Packets rewritten. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 1);
} rewrites SEC(".maps");

#define ETH_HLEN 14

SEC("tc")
int tc_rewrite(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;

    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return TC_ACT_OK;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || ip->ihl != 5)
        return TC_ACT_OK;

    __u32 l4 = ETH_HLEN + sizeof(struct iphdr);
    __u32 check_offset;
    if (ip->protocol == IPPROTO_UDP)
        check_offset = l4 + __builtin_offsetof(struct udphdr, check);
    else if (ip->protocol == IPPROTO_TCP)
        check_offset = l4 + __builtin_offsetof(struct tcphdr, check);
    else
        return TC_ACT_OK;

    struct udphdr *ports_header = (void *)(ip + 1);   /* source and dest lead both headers */
    if ((void *)(ports_header + 1) > data_end)
        return TC_ACT_OK;

    __u16 old_port = bpf_ntohs(ports_header->dest);
    __u16 new_port = 0;
    __u16 *mapped = bpf_map_lookup_elem(&ports, &old_port);
    if (mapped)
        new_port = *mapped;
    else if (old_port == 8080)
        new_port = 80;
    else
        return TC_ACT_OK;

    __be16 old_be = bpf_htons(old_port);
    __be16 new_be = bpf_htons(new_port);
    bpf_l4_csum_replace(skb, check_offset, old_be, new_be, sizeof(new_be));
    bpf_skb_store_bytes(skb, l4 + __builtin_offsetof(struct udphdr, dest), &new_be, sizeof(new_be), 0);

    __u32 zero = 0;
    __u64 *count = bpf_map_lookup_elem(&rewrites, &zero);
    if (count)
        *count += 1;
    bpf_printk("rewrote port %d -> %d", old_port, new_port);
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
