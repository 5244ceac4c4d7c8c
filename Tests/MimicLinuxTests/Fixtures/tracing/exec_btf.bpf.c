// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* A BTF-enabled raw tracepoint on sched_process_exec: its arguments come by name from the
 * kernel's btf_trace_sched_process_exec prototype, and the task_struct pointer is read
 * directly (a BTF pointer), not through bpf_probe_read_kernel. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct linux_binprm;

struct exec_seen {
	int pid;
	int ppid;
	int old_pid;
	unsigned int uid;
	char comm[16];
};

struct exec_seen exec_seen = {};

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	exec_seen.pid = p->pid;
	exec_seen.ppid = p->real_parent->tgid;
	exec_seen.old_pid = old_pid;
	exec_seen.uid = p->cred->uid.val;
	__builtin_memcpy(exec_seen.comm, p->comm, sizeof(exec_seen.comm));
	return 0;
}
