/*
 * A tracing program for execve: reads the current command name and pid, prints them with
 * bpf_printk, counts execs per command in a hash map and sends an event to a ring buffer.
 * The command name and pid come from a captured context that recorded those helper calls.
 *
 *   mimic run Examples/trace_exec.o --context Examples/contexts/exec_captured.json
 */
#include "mimic_bpf.h"

struct exec_event {
    __u32 pid;
    __u32 tgid;
    char comm[16];
};

/* Execs per command name. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, char[16]);
    __type(value, __u64);
    __uint(max_entries, 256);
} exec_count SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} events SEC(".maps");

/* Fills in who is calling (a BPF-to-BPF call, so its type is in the object's BTF). */
static __attribute__((noinline)) int fill_event(struct exec_event *event)
{
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    event->pid = (__u32)pid_tgid;
    event->tgid = pid_tgid >> 32;
    return bpf_get_current_comm(event->comm, sizeof(event->comm));
}

SEC("tracepoint/syscalls/sys_enter_execve")
int trace_exec(void *ctx)
{
    struct exec_event event = {};
    if (fill_event(&event) != 0)
        return 0;

    bpf_printk("exec %s pid %d", event.comm, event.tgid);

    __u64 one = 1;
    __u64 *count = bpf_map_lookup_elem(&exec_count, event.comm);
    if (count)
        *count += 1;
    else
        bpf_map_update_elem(&exec_count, event.comm, &one, BPF_NOEXIST);

    bpf_ringbuf_output(&events, &event, sizeof(event), 0);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
