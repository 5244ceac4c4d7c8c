// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* Tracing programs the kernel can run through BPF_PROG_TEST_RUN with ctx_in, for the
 * differential test: a raw tracepoint program reads its u64 arguments (BPF_PROG), a syscall
 * program its context struct (which it also writes: ctx_out). Both leave what they computed in
 * .bss and return a value derived from it. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct raw_seen {
	__u64 a;
	__s64 b;
	__u32 c;
	__s64 quotient;
	__u64 mixed;
	int calls;
};

struct raw_seen raw_seen = {};

SEC("raw_tp")
int BPF_PROG(on_args, __u64 a, __s64 b, __u32 c)
{
	raw_seen.a = a;
	raw_seen.b = b;
	raw_seen.c = c;
	raw_seen.quotient = (__s64)((__u64)b % 1000003);
	raw_seen.mixed = (a >> 3) ^ ((__u64)c << 17) ^ (__u64)b;
	raw_seen.calls++;
	return (int)(raw_seen.mixed & 0x7fffffff);
}

struct syscall_args {
	int fd;
	unsigned int flags;
	__u64 cookie;
	char name[16];
};

struct syscall_seen {
	int fd;
	unsigned int flags;
	__u64 cookie;
	char name[16];
	long name_cmp;
};

struct syscall_seen syscall_seen = {};

SEC("syscall")
int on_syscall(struct syscall_args *ctx)
{
	syscall_seen.fd = ctx->fd;
	syscall_seen.flags = ctx->flags;
	syscall_seen.cookie = ctx->cookie;
	__builtin_memcpy(syscall_seen.name, ctx->name, sizeof(syscall_seen.name));
	syscall_seen.name_cmp = bpf_strncmp(syscall_seen.name, sizeof(syscall_seen.name), "mimic");
	ctx->cookie = ctx->cookie * 3 + 1;
	return ctx->fd + (int)ctx->flags;
}
