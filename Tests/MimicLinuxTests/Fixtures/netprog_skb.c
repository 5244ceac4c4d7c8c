/*
 * cgroup_skb and lwt programs on an IPv4 packet whose data starts at the network header (as
 * the kernel's BPF_PROG_TEST_RUN gives them): each reads the packet directly and through
 * bpf_skb_load_bytes, writes the __sk_buff fields its type may write (mark, priority, cb),
 * counts in a map, and decides by the UDP destination port.
 */
#include "netprogs.h"

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u64);
} seen SEC(".maps");

static __attribute__((always_inline)) int classify(struct __sk_buff *skb, __u32 tag) {
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    __u8 *ip = data;
    if ((void *)(ip + 20) > data_end) return -1;
    if ((ip[0] >> 4) != 4) return -2;
    __u8 header[4];
    __u32 ihl = (ip[0] & 0xf) * 4;
    if (bpf_skb_load_bytes(skb, ihl, header, 4) < 0) return -3;
    __u16 dport = (header[2] << 8) | header[3];
    __u32 key = ip[9] | (tag << 8);
    __u64 one = 1, *count = bpf_map_lookup_elem(&seen, &key);
    if (count) __sync_fetch_and_add(count, 1);
    else bpf_map_update_elem(&seen, &key, &one, 0);
    skb->mark = skb->len * 0x100 + ip[9];
    skb->priority = dport;
    skb->cb[0] = skb->protocol;
    skb->cb[1] = skb->pkt_type + (skb->ifindex << 8) + (skb->ingress_ifindex << 16);
    skb->cb[2] = skb->cb[3] + 1;
    return dport;
}

SEC("cgroup_skb/ingress")
int cg_ingress(struct __sk_buff *skb) {
    int dport = classify(skb, 1);
    if (dport < 0) return 1;
    return dport == 53 ? 0 : 1;
}

SEC("cgroup_skb/egress")
int cg_egress(struct __sk_buff *skb) {
    int dport = classify(skb, 2);
    return dport == 9 ? 0 : 1;
}

SEC("lwt_in")
int lwt_input(struct __sk_buff *skb) {
    int dport = classify(skb, 3);
    return dport == 53 ? BPF_DROP : BPF_OK;
}

SEC("lwt_out")
int lwt_output(struct __sk_buff *skb) {
    int dport = classify(skb, 4);
    return dport == 53 ? BPF_DROP : BPF_OK;
}

/* lwt_xmit may change the packet: it lowers the TTL and fixes the IPv4 checksum. */
SEC("lwt_xmit")
int lwt_transmit(struct __sk_buff *skb) {
    int dport = classify(skb, 5);
    __u8 ttl;
    if (bpf_skb_load_bytes(skb, 8, &ttl, 1) < 0) return BPF_DROP;
    __u8 lowered = ttl - 1;
    __u16 old_word = bswap16((__u16)ttl << 8), new_word = bswap16((__u16)lowered << 8);
    bpf_l3_csum_replace(skb, 10, old_word, new_word, 2);
    bpf_skb_store_bytes(skb, 8, &lowered, 1, 0);
    return dport == 53 ? BPF_DROP : BPF_OK;
}
