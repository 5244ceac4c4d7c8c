// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* A task iterator in the manner of libbpf-bootstrap's task_iter and the kernel's
 * selftests/bpf/progs/bpf_iter_task.c: one line per task of the system, read through CO-RE
 * from task_struct, written with BPF_SEQ_PRINTF. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

int tasks_seen = 0;

SEC("iter/task")
int dump_task(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;

	if (task == (void *)0) {
		BPF_SEQ_PRINTF(seq, "%d tasks\n", tasks_seen);
		return 0;
	}

	if (ctx->meta->seq_num == 0)
		BPF_SEQ_PRINTF(seq, "    tgid      pid     ppid      uid comm\n");

	tasks_seen++;
	BPF_SEQ_PRINTF(seq, "%8d %8d %8d %8d %s\n", task->tgid, task->pid, task->real_parent->tgid,
		       task->cred->uid.val, task->comm);
	return 0;
}
