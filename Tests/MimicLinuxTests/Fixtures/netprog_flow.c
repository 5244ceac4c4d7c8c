/*
 * A flow dissector for Ethernet + IPv4/IPv6 + TCP/UDP, filling struct bpf_flow_keys as the
 * kernel's selftest bpf_flow.c does (BPF_OK), refusing other protocols (BPF_DROP). It starts
 * where the kernel says: flow_keys->nhoff, with n_proto set from the Ethernet header.
 */
#include "netprogs.h"

SEC("flow_dissector")
int dissect(struct __sk_buff *skb) {
    struct bpf_flow_keys *keys = skb->flow_keys;
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    __u32 nhoff = keys->nhoff;
    if (nhoff > 128) return BPF_DROP; /* bounded, for the verifier */
    __u8 *l3 = data + nhoff;
    if (keys->n_proto == bswap16(ETH_P_IP)) {
        if ((void *)(l3 + 20) > data_end) return BPF_DROP;
        __u32 ihl = (l3[0] & 0xf) * 4;
        if (ihl < 20) return BPF_DROP;
        keys->addr_proto = ETH_P_IP;
        keys->ipv4_src = *(__u32 *)(l3 + 12);
        keys->ipv4_dst = *(__u32 *)(l3 + 16);
        keys->ip_proto = l3[9];
        keys->thoff = keys->nhoff + ihl;
        __u16 frag = (l3[6] << 8) | l3[7];
        if (frag & 0x3fff) {
            keys->is_frag = 1;
            if (!(frag & 0x1fff)) keys->is_first_frag = 1;
            else return BPF_OK;
        }
    } else if (keys->n_proto == bswap16(ETH_P_IPV6)) {
        if ((void *)(l3 + 40) > data_end) return BPF_DROP;
        keys->addr_proto = ETH_P_IPV6;
        __builtin_memcpy(keys->ipv6_src, l3 + 8, 16);
        __builtin_memcpy(keys->ipv6_dst, l3 + 24, 16);
        keys->ip_proto = l3[6];
        keys->flow_label = *(__u32 *)l3 & bswap32(0x000fffff);
        keys->thoff = keys->nhoff + 40;
    } else {
        return BPF_DROP;
    }
    if (keys->ip_proto == IPPROTO_TCP || keys->ip_proto == IPPROTO_UDP) {
        __u32 thoff = keys->thoff;
        if (thoff > 256) return BPF_DROP;
        __u16 *ports = data + thoff;
        if ((void *)(ports + 2) > data_end) return BPF_DROP;
        keys->sport = ports[0];
        keys->dport = ports[1];
        /* Without an sk_buff behind the dissection (the test run) this fails with -EFAULT. */
        __u16 copy[2] = {1, 1};
        long err = bpf_skb_load_bytes(skb, thoff, copy, 4);
        keys->is_encap = err == -14 && copy[0] == 0 ? 1 : (err == 0 ? 2 : 3);
    }
    return BPF_OK;
}
