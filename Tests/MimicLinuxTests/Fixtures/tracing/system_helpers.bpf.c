// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* The helpers that read the emulated system through the current task: namespaces, cgroups,
 * d_path of an open file, user memory read and written, the task's user registers
 * (bpf_task_pt_regs). A kprobe stores what it saw in .bss. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

struct bpf_dynptr {
	__u64 __opaque[2];
} __attribute__((aligned(8)));

extern int bpf_get_file_xattr(struct file *file, const char *name__str, struct bpf_dynptr *value_p) __ksym;

const volatile __u64 ns_dev = 0;
const volatile __u64 ns_ino = 0;

struct seen {
	long ns_ret;
	struct bpf_pidns_info ns;
	long ns_bad_ret;
	__u64 cgroup_id;
	__u64 ancestor[4];
	long path_len;
	char path[32];
	long user_len;
	char user[32];
	long user_fault;
	long write_ret;
	long write_ro_ret;
	long copy_ret;
	char copied[8];
	__u32 leader_pid;
	__u32 cred_gid;
	__u64 user_ip;
	__u64 user_sp;
	__u64 user_di;
	long xattr_len;
	char xattr[12];
	long xattr_small;
	long xattr_missing;
	long xattr_denied;
};

char xattr_buffer[12];
char xattr_tiny[2];

struct seen seen = {};

SEC("kprobe/do_sys_openat2")
int BPF_KPROBE(observe, int dfd, const char *user_path)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file *file;
	struct fdtable *fdt;
	struct file **fds;
	char patch[4] = "TMP";
	int i;

	seen.ns_ret = bpf_get_ns_current_pid_tgid(ns_dev, ns_ino, &seen.ns, sizeof(seen.ns));
	seen.ns_bad_ret = bpf_get_ns_current_pid_tgid(ns_dev, ns_ino + 1, &seen.ns, sizeof(seen.ns));
	if (seen.ns_bad_ret == 0)
		return 1;
	seen.ns_ret = bpf_get_ns_current_pid_tgid(ns_dev, ns_ino, &seen.ns, sizeof(seen.ns));
	seen.cgroup_id = bpf_get_current_cgroup_id();
	for (i = 0; i < 4; i++)
		seen.ancestor[i] = bpf_get_current_ancestor_cgroup_id(i);

	fdt = BPF_CORE_READ(task, files, fdt);
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&file, sizeof(file), fds + 3);
	seen.path_len = bpf_d_path(&file->f_path, seen.path, sizeof(seen.path));

	/* The file's extended attributes, into local dynptrs. */
	struct bpf_dynptr value, tiny;
	bpf_dynptr_from_mem(xattr_buffer, sizeof(xattr_buffer), 0, &value);
	bpf_dynptr_from_mem(xattr_tiny, sizeof(xattr_tiny), 0, &tiny);
	seen.xattr_len = bpf_get_file_xattr(file, "user.kind", &value);
	__builtin_memcpy(seen.xattr, xattr_buffer, sizeof(seen.xattr));
	seen.xattr_small = bpf_get_file_xattr(file, "user.kind", &tiny);
	seen.xattr_missing = bpf_get_file_xattr(file, "user.none", &value);
	seen.xattr_denied = bpf_get_file_xattr(file, "trusted.kind", &value);

	seen.user_len = bpf_probe_read_user_str(seen.user, sizeof(seen.user), user_path);
	seen.user_fault = bpf_probe_read_user(seen.copied, sizeof(seen.copied), (void *)0x1000);
	seen.write_ret = bpf_probe_write_user((void *)user_path + 1, patch, 3);
	seen.write_ro_ret = bpf_probe_write_user((void *)0x7ffe0000, patch, 3);
	seen.copy_ret = bpf_probe_read_user(seen.copied, sizeof(seen.copied), user_path);

	seen.leader_pid = BPF_CORE_READ(task, group_leader, pid);
	BPF_CORE_READ_INTO(&seen.cred_gid, task, real_cred, gid.val);

	/* The user registers saved at the top of the task's kernel stack. */
	struct pt_regs *user = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	seen.user_ip = PT_REGS_IP_CORE(user);
	seen.user_sp = PT_REGS_SP_CORE(user);
	seen.user_di = BPF_CORE_READ(user, di);
	return 0;
}
