/* An XDP program that only reads the packet: passes IPv4 TCP, drops the rest. */
#define MIMIC_BPF_NO_PACKET_HEADERS /* its own ethhdr (packed) and iphdr below */
#include "../../../Examples/mimic_bpf.h"
struct ethhdr {
    __u8 h_dest[6];
    __u8 h_source[6];
    __u16 h_proto;
} __attribute__((packed));

struct iphdr {
    __u8 ihl_version;
    __u8 tos;
    __u16 tot_len;
    __u16 id;
    __u16 frag_off;
    __u8 ttl;
    __u8 protocol;
    __u16 check;
    __u32 saddr;
    __u32 daddr;
};

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_ABORTED;
    if (eth->h_proto != __builtin_bswap16(0x0800))
        return XDP_DROP;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_ABORTED;
    if (ip->protocol != 6)
        return XDP_DROP;
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
