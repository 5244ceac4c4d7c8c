// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* fentry, fexit and fmod_ret programs on the kernel's own test functions, which
 * BPF_PROG_TEST_RUN calls for tracing programs (net/bpf/test_run.c): bpf_fentry_test1(1),
 * bpf_fentry_test2(2, 3), bpf_fentry_test3(4, 5, 6), bpf_fentry_test5(11, (void *)12, 13, 14, 15),
 * bpf_fentry_test6(16, (void *)17, 18, 19, (void *)20, 21) and bpf_modify_return_test(1, &b).
 * Each program leaves what it saw in .bss, for the differential test. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct fentry_seen {
	int t1_a;
	long t1_count;
	__u64 t3_sum;
	long t6_count;
	__u64 t6_args[6];
	long t6_arg_past_end;
	long t6_ret_error;
	int t2_ret;
	long t2_count;
	__u64 t2_ret_helper;
	long t2_ret_status;
	__u64 t5_mixed;
	int t5_ret;
	int fmod_a;
	int fmod_prev_ret;
	long fmod_count;
	int calls;
};

struct fentry_seen fentry_seen = {};

SEC("fentry/bpf_fentry_test1")
int BPF_PROG(on_test1, int a)
{
	fentry_seen.t1_a = a;
	fentry_seen.t1_count = bpf_get_func_arg_cnt(ctx);
	fentry_seen.calls++;
	return 0;
}

SEC("fentry/bpf_fentry_test3")
int BPF_PROG(on_test3, char a, int b, __u64 c)
{
	fentry_seen.t3_sum = a * 1000000 + b * 1000 + c;
	fentry_seen.calls++;
	return 0;
}

SEC("fentry/bpf_fentry_test6")
int BPF_PROG(on_test6, __u64 a, void *b, short c, int d, void *e, __u64 f)
{
	__u64 value = 0;
	int i;

	fentry_seen.t6_count = bpf_get_func_arg_cnt(ctx);
	for (i = 0; i < 6; i++) {
		bpf_get_func_arg(ctx, i, &value);
		fentry_seen.t6_args[i] = value;
	}
	fentry_seen.t6_arg_past_end = bpf_get_func_arg(ctx, 6, &value);
	fentry_seen.t6_ret_error = bpf_get_func_ret(ctx, &value);
	fentry_seen.calls++;
	return 0;
}

SEC("fexit/bpf_fentry_test2")
int BPF_PROG(on_test2_exit, int a, __u64 b, int ret)
{
	__u64 value = 0;

	fentry_seen.t2_ret = ret;
	fentry_seen.t2_count = bpf_get_func_arg_cnt(ctx);
	fentry_seen.t2_ret_status = bpf_get_func_ret(ctx, &value);
	fentry_seen.t2_ret_helper = value;
	fentry_seen.calls++;
	return 0;
}

SEC("fexit/bpf_fentry_test5")
int BPF_PROG(on_test5_exit, __u64 a, void *b, short c, int d, __u64 e, int ret)
{
	fentry_seen.t5_mixed = (a << 40) ^ ((__u64)b << 30) ^ ((__u64)c << 20) ^ ((__u64)d << 10) ^ e;
	fentry_seen.t5_ret = ret;
	fentry_seen.calls++;
	return 0;
}

/* Returning non-zero replaces bpf_modify_return_test's result (the function does not run);
 * 0 lets it run. The choice depends on .rodata, so one object covers both. */
const volatile int fmod_override = 0;

SEC("fmod_ret/bpf_modify_return_test")
int BPF_PROG(on_modify_return, int a, int *b, int ret)
{
	fentry_seen.fmod_a = a;
	fentry_seen.fmod_prev_ret = ret;
	fentry_seen.fmod_count = bpf_get_func_arg_cnt(ctx);
	fentry_seen.calls++;
	return fmod_override;
}
