// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* What the kernel's verifier allows through BTF-typed pointers and contexts (btf_ctx_access,
 * btf_struct_access in kernel/bpf/btf.c): each rejected program has an accepted twin or an
 * accepted fixture beside it (exec_btf, task_iter). MimicVerifier's verdicts are compared with
 * the kernel's on every program (FixtureAgreementTests). The tp_btf programs stand for fentry,
 * fexit and LSM programs too: their contexts are typed the same way, from the attach target's
 * prototype, and this kernel refuses to load those. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct linux_binprm;

long seen[8] = {};

/* Accepted: two pointers followed, a field of each read. */
SEC("tp_btf/sched_process_exec")
int chase(u64 *ctx)
{
	struct task_struct *p = (void *)ctx[0];

	seen[0] = p->real_parent->real_parent->tgid;
	seen[1] = p->cred->uid.val;
	return 0;
}

/* Rejected: kernel objects are read-only. */
SEC("tp_btf/sched_process_exec")
int write_field(u64 *ctx)
{
	struct task_struct *p = (void *)ctx[0];

	p->exit_code = 1;
	return 0;
}

/* Rejected: the read is past the end of struct task_struct. */
SEC("tp_btf/sched_process_exec")
int beyond_struct(u64 *ctx)
{
	char *p = (void *)ctx[0];

	seen[0] = *(volatile long *)(p + 65536);
	return 0;
}

/* Rejected: a negative offset from a BTF pointer. */
SEC("tp_btf/sched_process_exec")
int negative_offset(u64 *ctx)
{
	char *p = (void *)ctx[0];

	seen[0] = *(volatile int *)(p - 8);
	return 0;
}

/* Rejected: a variable offset from a BTF pointer. */
SEC("tp_btf/sched_process_exec")
int variable_offset(u64 *ctx)
{
	char *p = (void *)ctx[0];
	u64 index = ctx[1] & 8;

	seen[0] = *(volatile int *)(p + index);
	return 0;
}

/* Rejected: the second argument, old_pid, is an integer, not a pointer. */
SEC("tp_btf/sched_process_exec")
int integer_argument(u64 *ctx)
{
	int *old_pid = (void *)ctx[1];

	seen[0] = *old_pid;
	return 0;
}

/* Rejected: sched_process_exec has three arguments; there is no fourth. */
SEC("tp_btf/sched_process_exec")
int past_arguments(u64 *ctx)
{
	seen[0] = ctx[3];
	return 0;
}

/* Accepted: the low half of an integer argument, a 4-byte read. */
SEC("tp_btf/sched_process_exec")
int short_argument(u64 *ctx)
{
	seen[0] = *(volatile u32 *)&ctx[1];
	return 0;
}

/* Rejected: a 4-byte read of a pointer argument. */
SEC("tp_btf/sched_process_exec")
int short_pointer(u64 *ctx)
{
	seen[0] = *(volatile u32 *)&ctx[0];
	return 0;
}

/* Rejected: the context is read-only. */
SEC("tp_btf/sched_process_exec")
int write_context(u64 *ctx)
{
	ctx[1] = 0;
	return 0;
}

/* Accepted: a read inside an array member (comm) at a constant index. */
SEC("tp_btf/sched_process_exec")
int array_member(u64 *ctx)
{
	struct task_struct *p = (void *)ctx[0];

	seen[0] = p->comm[3];
	return 0;
}

/* Rejected: a field of a struct pointer read as a pointer when it is a number. */
SEC("tp_btf/sched_process_exec")
int number_as_pointer(u64 *ctx)
{
	struct task_struct *p = (void *)ctx[0];
	int *start = (int *)p->start_time;

	seen[0] = *start;
	return 0;
}

/* Rejected: an iterator's task is NULL after the last task; it must be checked first. */
SEC("iter/task")
int task_unchecked(struct bpf_iter__task *ctx)
{
	seen[0] = ctx->task->pid;
	return 0;
}

/* Accepted: the same read after the check; the meta pointer is never NULL. */
SEC("iter/task")
int task_checked(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;

	seen[1] = ctx->meta->seq_num;
	if (task)
		seen[0] = task->pid;
	return 0;
}

/* Rejected: the iterator's context has two pointers, meta and task; nothing after them. */
SEC("iter/task")
int iter_past_context(struct bpf_iter__task *ctx)
{
	seen[0] = *(volatile u64 *)((char *)ctx + 16);
	return 0;
}

/* Accepted: bpf_get_current_task_btf gives a trusted task, followed like an argument. */
SEC("tp_btf/sched_process_exec")
int current_task(u64 *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();

	seen[0] = task->real_parent->pid;
	return 0;
}

/* A helper's kernel-pointer argument is matched by type: bpf_get_socket_cookie takes a socket
 * (a struct sock_common, or a struct that begins with one). */
struct sock_common {
	unsigned short skc_family;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

/* Rejected: a task is not a socket. */
SEC("tp_btf/sched_process_exec")
int cookie_of_task(u64 *ctx)
{
	seen[0] = bpf_get_socket_cookie((void *)ctx[0]);
	return 0;
}

/* Accepted: a struct sock begins with its struct sock_common. */
SEC("tp_btf/tcp_probe")
int cookie_of_sock(u64 *ctx)
{
	seen[0] = bpf_get_socket_cookie((void *)ctx[0]);
	return 0;
}

/* Accepted: the struct sock_common itself. */
SEC("tp_btf/tcp_probe")
int cookie_of_common(u64 *ctx)
{
	struct sock *sk = (void *)ctx[0];

	seen[0] = bpf_get_socket_cookie(&sk->__sk_common);
	return 0;
}

/* A socket cast gives the struct or NULL; the result must be checked. */
struct tcp_sock {
	unsigned int srtt_us;
} __attribute__((preserve_access_index));

/* Accepted: the cast's result read after the NULL check. */
SEC("tp_btf/tcp_probe")
int cast_checked(u64 *ctx)
{
	struct tcp_sock *ts = bpf_skc_to_tcp_sock((void *)ctx[0]);

	if (ts)
		seen[0] = ts->srtt_us;
	return 0;
}

/* Rejected: read before the NULL check. */
SEC("tp_btf/tcp_probe")
int cast_unchecked(u64 *ctx)
{
	struct tcp_sock *ts = bpf_skc_to_tcp_sock((void *)ctx[0]);

	seen[0] = ts->srtt_us;
	return 0;
}
