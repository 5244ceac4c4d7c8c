/* An XDP router for `mimic run --pcap --out-dir` (issue 14, output per interface): by IPv4
 * destination, 10.0.2.0/24 leaves through ifindex 2 (bpf_redirect), 10.0.3.0/24 through the
 * devmap entry `ports[1]` (ifindex 3 in the test), both with the TTL decremented; 10.0.4.0/24
 * goes to CPU 1 (cpumap), 10.0.5.0/24 to the AF_XDP socket `xsks[0]`, 10.0.6.0/24 is broadcast to
 * every port but the ingress one, 10.0.7.0/24 asks for the missing `ports[9]` (falling back to
 * XDP_PASS), 10.0.8.0/24 returns XDP_REDIRECT with no target; 10.0.9.0/24 is sent back (XDP_TX)
 * with the MAC addresses swapped; 10.0.1.0/24 is passed to the stack. Other IPv4 and packets
 * whose TTL would expire are dropped, as is non-IPv4; a truncated IPv4 header aborts. */
#include "../../../Examples/mimic_bpf.h"

#define BPF_MAP_TYPE_DEVMAP 14
#define BPF_MAP_TYPE_CPUMAP 16
#define BPF_MAP_TYPE_XSKMAP 17
#define BPF_F_BROADCAST (1ULL << 3)
#define BPF_F_EXCLUDE_INGRESS (1ULL << 4)
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;

struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP);
    __type(key, __u32);
    __type(value, __u32);
    __uint(max_entries, 4);
} ports SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_CPUMAP);
    __type(key, __u32);
    __type(value, __u32);
    __uint(max_entries, 2);
} cpus SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __type(key, __u32);
    __type(value, __u32);
    __uint(max_entries, 1);
} xsks SEC(".maps");

/* Decrements the TTL, updating the header checksum incrementally, as ip_decrease_ttl does. */
static __always_inline void decrement_ttl(struct iphdr *ip)
{
    __u32 sum = (__u32)ip->check + (__u32)bpf_htons(0x0100);
    ip->check = (__u16)(sum + (sum >= 0xFFFF));
    ip->ttl -= 1;
}

SEC("xdp")
int xdp_router(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_DROP;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_ABORTED;

    __u32 destination = bpf_ntohl(ip->daddr);
    if ((destination >> 16) != 0x0a00)
        return XDP_DROP;
    __u32 subnet = (destination >> 8) & 0xff;
    switch (subnet) {
    case 1:
        return XDP_PASS;
    case 2:
    case 3:
        if (ip->ttl <= 1)
            return XDP_DROP;
        decrement_ttl(ip);
        return subnet == 2 ? bpf_redirect(2, 0) : bpf_redirect_map(&ports, 1, 0);
    case 4:
        return bpf_redirect_map(&cpus, 1, 0);
    case 5:
        return bpf_redirect_map(&xsks, 0, 0);
    case 6:
        return bpf_redirect_map(&ports, 0, BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS);
    case 7:
        return bpf_redirect_map(&ports, 9, XDP_PASS);
    case 8:
        return XDP_REDIRECT;
    case 9: {
        unsigned char mac[6];
        __builtin_memcpy(mac, eth->h_dest, 6);
        __builtin_memcpy(eth->h_dest, eth->h_source, 6);
        __builtin_memcpy(eth->h_source, mac, 6);
        return XDP_TX;
    }
    default:
        return XDP_DROP;
    }
}

char _license[] SEC("license") = "GPL";
