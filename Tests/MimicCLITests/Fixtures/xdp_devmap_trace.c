/* Devmap and cpumap entry programs whose trace lines and failures `mimic run --pcap` reports.
 *
 * xdp_send sends each IPv4 frame by destination subnet:
 *   10.0.2.0/24  ports[0] (egress_trace: bpf_printk of the egress ifindex and the frame's last
 *                destination byte, XDP_PASS),
 *   10.0.3.0/24  ports[1] (egress_fault: reads far past the frame, a fault at run time),
 *   10.0.4.0/24  cpus[1]  (cpu_trace: bpf_printk of the destination byte, XDP_PASS),
 *   anything else passes; non-IPv4 drops. xdp_send itself prints one line per frame. */
#include "../../../Examples/mimic_bpf.h"

#define BPF_MAP_TYPE_DEVMAP 14
#define BPF_MAP_TYPE_CPUMAP 16
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;

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

/* The last byte of the IPv4 destination, or -1. */
static __always_inline int destination_host(struct xdp_md *ctx, int *subnet)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return -1;
    __u32 destination = bpf_ntohl(ip->daddr);
    *subnet = (destination >> 8) & 0xff;
    return destination & 0xff;
}

SEC("xdp")
int xdp_send(struct xdp_md *ctx)
{
    int subnet = 0;
    int host = destination_host(ctx, &subnet);
    if (host < 0)
        return XDP_DROP;
    bpf_printk("send %d.%d", subnet, host);
    switch (subnet) {
    case 2:
        return bpf_redirect_map(&ports, 0, 0);
    case 3:
        return bpf_redirect_map(&ports, 1, 0);
    case 4:
        return bpf_redirect_map(&cpus, 1, 0);
    default:
        return XDP_PASS;
    }
}

SEC("xdp/devmap")
int egress_trace(struct xdp_md *ctx)
{
    int subnet = 0;
    int host = destination_host(ctx, &subnet);
    bpf_printk("egress %d host %d", ctx->egress_ifindex, host);
    return XDP_PASS;
}

SEC("xdp/devmap")
int egress_fault(struct xdp_md *ctx)
{
    /* No bounds check: the kernel's verifier refuses this, Mimic faults at run time. */
    volatile __u8 *data = (void *)(long)ctx->data;
    return data[4000] == 1 ? XDP_DROP : XDP_PASS;
}

SEC("xdp/cpumap")
int cpu_trace(struct xdp_md *ctx)
{
    int subnet = 0;
    int host = destination_host(ctx, &subnet);
    bpf_printk("cpu host %d", host);
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
