/* Several programs in one object, two of them in the same section. */
#include "../../../Examples/mimic_bpf.h"

SEC("xdp")
int xdp_first(struct xdp_md *ctx)
{
    return XDP_PASS;
}

SEC("xdp")
int xdp_second(struct xdp_md *ctx)
{
    return ctx->ingress_ifindex == 3 ? XDP_DROP : XDP_TX;
}

SEC("tc")
int tc_mark(struct __sk_buff *skb)
{
    return skb->mark * 2 + 1;
}

SEC("classifier/egress")
int classify(struct __sk_buff *skb)
{
    return skb->protocol & 0xff;
}

SEC("kprobe/do_sys_open")
int probe_open(void *ctx)
{
    return 7;
}

char _license[] SEC("license") = "GPL";
