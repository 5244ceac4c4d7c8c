/* Ring buffer reservations are references: each must be submitted or discarded, and written
 * only after the NULL check. */
#include "corpus.h"

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} events SEC(".maps");

/* Rejected: reserved but never submitted. */
SEC("xdp")
int ringbuf_not_submitted(struct xdp_md *ctx)
{
    __u64 *event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
    if (!event)
        return XDP_PASS;
    *event = ctx->ingress_ifindex;
    return XDP_PASS;
}

/* Accepted twin: submitted. */
SEC("xdp")
int ringbuf_submitted(struct xdp_md *ctx)
{
    __u64 *event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
    if (!event)
        return XDP_PASS;
    *event = ctx->ingress_ifindex;
    bpf_ringbuf_submit(event, 0);
    return XDP_PASS;
}

/* Accepted: discarded on one path, submitted on the other. */
SEC("xdp")
int ringbuf_discarded(struct xdp_md *ctx)
{
    __u64 *event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
    if (!event)
        return XDP_PASS;
    *event = ctx->ingress_ifindex;
    if (ctx->rx_queue_index)
        bpf_ringbuf_discard(event, 0);
    else
        bpf_ringbuf_submit(event, 0);
    return XDP_PASS;
}

/* Rejected: written without the NULL check. */
SEC("xdp")
int ringbuf_unchecked(struct xdp_md *ctx)
{
    __u64 *event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
    *event = ctx->ingress_ifindex;
    bpf_ringbuf_submit(event, 0);
    return XDP_PASS;
}

/* Rejected: writes past the 8 bytes reserved. */
SEC("xdp")
int ringbuf_write_past_reservation(struct xdp_md *ctx)
{
    __u64 *event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
    if (!event)
        return XDP_PASS;
    event[1] = ctx->ingress_ifindex;
    bpf_ringbuf_submit(event, 0);
    return XDP_PASS;
}
