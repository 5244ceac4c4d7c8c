/* Calls of kernel functions (kfuncs): libbpf binds them by BTF name (BPF_PSEUDO_KFUNC_CALL);
 * Mimic binds them by name through Emulator.kfunc(named:). */
#include "../../../Examples/mimic_bpf.h"

#define __ksym __attribute__((section(".ksyms")))

extern __u64 mimic_test_double(__u64 value) __ksym;
extern __u64 mimic_test_add(__u64 a, __u64 b) __ksym;

/* A tracepoint program, so the kernel comparison of socket and XDP fixtures leaves it alone; the
 * tests run it with a memory context (R1 = bytes, R2 = length). */
SEC("tracepoint/mimic/kfuncs")
int call_kfuncs(const __u8 *bytes, __u32 length)
{
    return mimic_test_add(mimic_test_double(length), mimic_test_double(1));
}
