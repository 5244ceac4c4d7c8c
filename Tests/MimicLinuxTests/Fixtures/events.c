/* Reports each packet to user space twice: through a ring buffer (reserve + submit) and a
 * perf event array (bpf_perf_event_output on the current CPU). */
#include "../../../Examples/mimic_bpf.h"

struct event {
    __u32 cpu;
    __u32 length;
    __u64 sequence;
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} ring SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, sizeof(__u32));
} perf SEC(".maps");

__u64 sequence;

SEC("xdp")
int report(struct xdp_md *ctx)
{
    __u64 seq = __sync_fetch_and_add(&sequence, 1);
    __u32 cpu = bpf_get_smp_processor_id();
    __u32 length = ctx->data_end - ctx->data;

    struct event *reserved = bpf_ringbuf_reserve(&ring, sizeof(struct event), 0);
    if (!reserved)
        return XDP_ABORTED;
    reserved->cpu = cpu;
    reserved->length = length;
    reserved->sequence = seq;
    bpf_ringbuf_submit(reserved, 0);

    struct event copy = { .cpu = cpu, .length = length, .sequence = seq };
    if (bpf_perf_event_output(ctx, &perf, BPF_F_CURRENT_CPU, &copy, sizeof(copy)) < 0)
        return XDP_ABORTED;
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
