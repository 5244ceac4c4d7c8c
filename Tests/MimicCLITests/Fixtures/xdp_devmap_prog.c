/* Redirects into devmap and cpumap entries that carry their own program (issue 14): the kernel
 * runs an entry's program on the frame before it leaves, and its verdict decides.
 *
 * xdp_forward tags each IPv4 frame with 4 bytes of metadata (bpf_xdp_adjust_meta: the last byte
 * of the destination address) and sends it by destination subnet:
 *   10.0.2.0/24  ports[0] (ifindex 2 in the test, program egress_mark),
 *   10.0.3.0/24  ports[1] (ifindex 3, no program),
 *   10.0.4.0/24  cpus[1]  (program cpu_steer),
 *   10.0.5.0/24  every port but the ingress one (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS),
 *   anything else passes; non-IPv4 drops.
 * egress_mark (xdp/devmap) writes egress_ifindex into the source MAC's last byte, records what
 * its xdp_md showed in `seen[egress_ifindex]`, and drops frames to UDP port 9 (XDP_DROP).
 * cpu_steer (xdp/cpumap) passes frames to 10.0.4.1 to its CPU's stack and redirects the others
 * into ports[0] (so egress_mark runs on them too). */
#include "../../../Examples/mimic_bpf.h"

#define BPF_MAP_TYPE_DEVMAP 14
#define BPF_MAP_TYPE_CPUMAP 16
#define BPF_F_BROADCAST (1ULL << 3)
#define BPF_F_EXCLUDE_INGRESS (1ULL << 4)
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;
static long (*bpf_xdp_adjust_meta)(struct xdp_md *xdp_md, int delta) = (void *)54;

struct bpf_devmap_val {
    __u32 ifindex;
    union {
        int fd;
        __u32 id;
    } bpf_prog;
};

struct bpf_cpumap_val {
    __u32 qsize;
    union {
        int fd;
        __u32 id;
    } bpf_prog;
};

struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP);
    __type(key, __u32);
    __type(value, struct bpf_devmap_val);
    __uint(max_entries, 4);
} ports SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_CPUMAP);
    __type(key, __u32);
    __type(value, struct bpf_cpumap_val);
    __uint(max_entries, 2);
} cpus SEC(".maps");

/* What egress_mark saw, by egress ifindex. */
struct seen {
    __u32 ingress_ifindex;
    __u32 rx_queue_index;
    __u32 egress_ifindex;
    __u32 metadata;
    __u32 frames;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, struct seen);
    __uint(max_entries, 8);
} seen SEC(".maps");

SEC("xdp")
int xdp_forward(struct xdp_md *ctx)
{
    if (bpf_xdp_adjust_meta(ctx, -4))
        return XDP_ABORTED;
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u32 *meta = (void *)(long)ctx->data_meta;
    if ((void *)(meta + 1) > data)
        return XDP_ABORTED;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_DROP;
    __u32 destination = bpf_ntohl(ip->daddr);
    *meta = destination & 0xff;
    switch ((destination >> 8) & 0xff) {
    case 2:
        return bpf_redirect_map(&ports, 0, 0);
    case 3:
        return bpf_redirect_map(&ports, 1, 0);
    case 4:
        return bpf_redirect_map(&cpus, 1, 0);
    case 5:
        return bpf_redirect_map(&ports, 0, BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS);
    default:
        return XDP_PASS;
    }
}

SEC("xdp/devmap")
int egress_mark(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u32 *meta = (void *)(long)ctx->data_meta;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    struct udphdr *udp = (void *)(ip + 1);
    if ((void *)(udp + 1) > data_end)
        return XDP_DROP;
    __u32 key = ctx->egress_ifindex;
    struct seen *entry = bpf_map_lookup_elem(&seen, &key);
    if (entry) {
        entry->ingress_ifindex = ctx->ingress_ifindex;
        entry->rx_queue_index = ctx->rx_queue_index;
        entry->egress_ifindex = ctx->egress_ifindex;
        entry->metadata = (void *)(meta + 1) <= data ? *meta : 0xffffffff;
        entry->frames += 1;
    }
    eth->h_source[5] = (__u8)ctx->egress_ifindex;
    if (udp->dest == bpf_htons(9))
        return XDP_DROP;
    return XDP_PASS;
}

SEC("xdp/cpumap")
int cpu_steer(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_DROP;
    if (ip->daddr == bpf_htonl(0x0a000401))
        return XDP_PASS;
    return bpf_redirect_map(&ports, 0, 0);
}

char _license[] SEC("license") = "GPL";
