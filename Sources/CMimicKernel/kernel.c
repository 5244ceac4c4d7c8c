#define _GNU_SOURCE
#include "mimic_kernel.h"

#include <errno.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <sched.h>
#include <unistd.h>
#endif

long mimic_bpf(int cmd, void *attr, unsigned int size) {
#if defined(__linux__) && defined(SYS_bpf)
    return syscall(SYS_bpf, cmd, attr, size);
#else
    (void)cmd;
    (void)attr;
    (void)size;
    errno = ENOSYS;
    return -1;
#endif
}

int mimic_get_affinity(void *mask, unsigned long size) {
#if defined(__linux__)
    return sched_getaffinity(0, size, (cpu_set_t *)mask);
#else
    (void)mask;
    (void)size;
    errno = ENOSYS;
    return -1;
#endif
}

int mimic_set_affinity(const void *mask, unsigned long size) {
#if defined(__linux__)
    return sched_setaffinity(0, size, (const cpu_set_t *)mask);
#else
    (void)mask;
    (void)size;
    errno = ENOSYS;
    return -1;
#endif
}
