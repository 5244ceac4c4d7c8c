// The bpf(2) system call and CPU affinity, for the kernel oracle (MimicKernel's `KernelBPF`).
//
// Swift cannot call the variadic `syscall(2)` of the C library, so this one fixed-signature
// wrapper exists. On systems without bpf(2) it fails with ENOSYS.
#ifndef MIMIC_KERNEL_H
#define MIMIC_KERNEL_H

/// Calls bpf(cmd, attr, size). Returns the system call's result (a file descriptor, 0, or -1
/// with errno set).
long mimic_bpf(int cmd, void *attr, unsigned int size);

/// sched_getaffinity / sched_setaffinity of the calling thread with a raw CPU mask of `size`
/// bytes (these need _GNU_SOURCE, which Swift's Glibc module does not define). 0 or -1 + errno.
int mimic_get_affinity(void *mask, unsigned long size);
int mimic_set_affinity(const void *mask, unsigned long size);

#endif
