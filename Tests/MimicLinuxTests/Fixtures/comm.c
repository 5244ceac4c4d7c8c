/* A kprobe reporting which task opened a file: pid, tgid and comm to a ring buffer, and a
 * bpf_printk line. */
#include "../../../Examples/mimic_bpf.h"

struct open_event {
    __u32 pid;
    __u32 tgid;
    char comm[16];
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} opens SEC(".maps");

SEC("kprobe/do_sys_openat2")
int trace_open(struct pt_regs *ctx)
{
    struct open_event *event = bpf_ringbuf_reserve(&opens, sizeof(struct open_event), 0);
    if (!event)
        return 0;
    __u64 id = bpf_get_current_pid_tgid();
    event->pid = (__u32)id;
    event->tgid = id >> 32;
    bpf_get_current_comm(event->comm, sizeof(event->comm));
    bpf_printk_rodata("open by %s (pid %d, flags %lx)", event->comm, event->pid, ctx->si);
    bpf_ringbuf_submit(event, 0);
    return 0;
}

char _license[] SEC("license") = "GPL";
