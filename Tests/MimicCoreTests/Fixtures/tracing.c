/* Tracing section names and CO-RE relocations against a locally declared kernel struct. */
#define MIMIC_BPF_NO_PT_REGS /* its own pt_regs, with preserve_access_index, below */
#include "../../../Examples/mimic_bpf.h"
struct task_struct {
    int pid;
    int tgid;
    unsigned long flags;
    char comm[16];
} __attribute__((preserve_access_index));

struct pt_regs {
    unsigned long di;
    unsigned long si;
} __attribute__((preserve_access_index));

SEC("kprobe/do_exit")
int on_exit(struct pt_regs *regs)
{
    struct task_struct *task = (void *)regs->di;
    int pid = 0;
    bpf_probe_read_kernel(&pid, sizeof(pid), &task->pid);
    return pid;
}

SEC("kretprobe/do_fork")
int on_fork_return(void *ctx)
{
    return __builtin_preserve_field_info(((struct task_struct *)0)->comm, 2 /* FIELD_EXISTS */)
         + __builtin_preserve_field_info(((struct task_struct *)0)->comm, 1 /* FIELD_BYTE_SIZE */);
}

SEC("tracepoint/syscalls/sys_enter_openat")
int on_openat(void *ctx)
{
    return __builtin_preserve_type_info(*(struct task_struct *)0, 1 /* TYPE_SIZE */)
         + __builtin_preserve_type_info(*(struct task_struct *)0, 0 /* TYPE_EXISTS */);
}

SEC("raw_tp/sched_switch")
int on_switch(void *ctx)
{
    return 1;
}

SEC("perf_event")
int on_sample(void *ctx)
{
    return 0;
}

SEC("cgroup_skb/ingress")
int cgroup_in(struct __sk_buff *skb)
{
    return 1;
}

SEC("lwt_xmit")
int lwt(struct __sk_buff *skb)
{
    return 0;
}

SEC("sk_msg")
int msg_verdict(void *msg)
{
    return 1;
}

char _license[] SEC("license") = "GPL";
