// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* libbpf-bootstrap's minimal example: a tracepoint on write(2) that prints when the process
 * the loader names (my_pid) writes. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

int my_pid = 0;

SEC("tp/syscalls/sys_enter_write")
int handle_tp(void *ctx)
{
	int pid = bpf_get_current_pid_tgid() >> 32;

	if (pid != my_pid)
		return 0;

	bpf_printk("BPF triggered from PID %d.\n", pid);

	return 0;
}
