/* An XDP program in a section libbpf gives no type (xdp-tutorial's SEC("xdp_vlan01")): it runs
 * with `--type xdp`. It drops VLAN-tagged frames and counts the others in .bss. */
#include "../../../Examples/mimic_bpf.h"

__u32 untagged = 0;

SEC("xdp_vlan01")
int xdp_vlan_filter(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_ABORTED;
    if (eth->h_proto == bpf_htons(0x8100) || eth->h_proto == bpf_htons(0x88A8))
        return XDP_DROP;
    untagged += 1;
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
