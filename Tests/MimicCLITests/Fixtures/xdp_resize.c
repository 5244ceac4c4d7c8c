/*
 * Packets that change size, for `mimic run --pcap --out` (issue 17: the output capture has one
 * slot per packet, as large as the packet unchanged): by its source port's low byte modulo 4, an
 * IPv4 TCP or UDP packet grows by 4 bytes at its front (0xAB each), loses its last 2 bytes, is
 * dropped, or passes unchanged; other packets pass unchanged.
 */
#include "mimic_bpf.h"

static long (*bpf_xdp_adjust_head)(struct xdp_md *ctx, int delta) = (void *)44;
static long (*bpf_xdp_adjust_tail)(struct xdp_md *ctx, int delta) = (void *)65;

SEC("xdp")
int xdp_resize(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u8 *bytes = data;
    if (data + 38 > data_end || bytes[12] != 0x08 || bytes[13] != 0x00) return XDP_PASS;
    if (bytes[23] != 6 && bytes[23] != 17) return XDP_PASS;
    switch (bytes[35] % 4) {
    case 0:
        if (bpf_xdp_adjust_head(ctx, -4)) return XDP_ABORTED;
        data = (void *)(long)ctx->data;
        data_end = (void *)(long)ctx->data_end;
        if (data + 4 > data_end) return XDP_ABORTED;
        __builtin_memset(data, 0xAB, 4);
        return XDP_PASS;
    case 1:
        if (bpf_xdp_adjust_tail(ctx, -2)) return XDP_ABORTED;
        return XDP_PASS;
    case 2:
        return XDP_DROP;
    default:
        return XDP_PASS;
    }
}

char LICENSE[] SEC("license") = "GPL";
