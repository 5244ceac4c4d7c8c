// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* A map element iterator in the manner of the kernel's selftests/bpf/progs/bpf_iter_bpf_hash_map.c:
 * a tracepoint counts write() calls per process in a hash map; an iter/bpf_map_elem program
 * attached to that map prints each element with BPF_SEQ_PRINTF and resets its count through the
 * value pointer, which points into the map. A per-CPU array counts them per CPU; its iterator
 * gets every CPU's value, each padded to 8 bytes (bpf_iter_bpf_percpu_array_map.c). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, u32);
	__type(value, u64);
} writes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, u32);
	__type(value, u32);
} cpu_writes SEC(".maps");

u64 total = 0;
/* Set before load to the possible CPUs, as the selftests do. */
const volatile u32 num_cpus = 1;

SEC("tp/syscalls/sys_enter_write")
int count_write(void *ctx)
{
	u32 pid = bpf_get_current_pid_tgid() >> 32;
	u64 one = 1, *count;

	count = bpf_map_lookup_elem(&writes, &pid);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&writes, &pid, &one, BPF_NOEXIST);

	u32 zero = 0, *on_cpu = bpf_map_lookup_elem(&cpu_writes, &zero);
	if (on_cpu)
		*on_cpu += 1;
	return 0;
}

SEC("iter/bpf_map_elem")
int dump_writes(struct bpf_iter__bpf_map_elem *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	u32 *pid = ctx->key;
	u64 *count = ctx->value;

	if (!pid || !count) {
		BPF_SEQ_PRINTF(seq, "%llu writes\n", total);
		return 0;
	}
	if (ctx->meta->seq_num == 0)
		BPF_SEQ_PRINTF(seq, "  pid writes\n");
	BPF_SEQ_PRINTF(seq, "%5u %6llu\n", *pid, *count);
	total += *count;
	*count = 0;
	return 0;
}

SEC("iter/bpf_map_elem")
int dump_cpu_writes(struct bpf_iter__bpf_map_elem *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	u32 *index = ctx->key;
	void *values = ctx->value;

	if (!index || !values)
		return 0;
	for (u32 cpu = 0; cpu < num_cpus && cpu < 8; cpu++)
		BPF_SEQ_PRINTF(seq, "[%u] cpu %u: %u\n", *index, cpu, *(u32 *)(values + cpu * 8));
	return 0;
}
