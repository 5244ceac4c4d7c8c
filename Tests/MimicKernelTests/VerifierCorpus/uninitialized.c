/* Uninitialized registers and stack. Only R1 (the context) and R10 (the frame pointer) hold
 * values when a program starts; root may read stack bytes nothing wrote (allow_uninit_stack). */
#include "corpus.h"

/* Rejected: R2 is read before anything wrote it (inline assembly: clang never does this). */
SEC("xdp")
__attribute__((naked)) int uninit_register(void)
{
    asm volatile("r0 = r2\n"
                 "exit\n");
}

/* Accepted twin: R2 is set first. */
SEC("xdp")
__attribute__((naked)) int uninit_register_set(void)
{
    asm volatile("r2 = 2\n"
                 "r0 = r2\n"
                 "exit\n");
}

/* Rejected: R0 is not set at exit (a program must return a value). */
SEC("xdp")
__attribute__((naked)) int uninit_return_value(void)
{
    asm volatile("r1 = 1\n"
                 "exit\n");
}

/* Accepted as root (CAP_PERFMON allows reading uninitialized stack; unprivileged loaders get
 * "invalid read from stack"): reads 8 stack bytes nothing wrote. */
SEC("xdp")
__attribute__((naked)) int uninit_stack_read(void)
{
    asm volatile("r0 = *(u64 *)(r10 - 8)\n"
                 "r0 &= 3\n"
                 "exit\n");
}

/* Rejected: reads above the frame (R10 + 8), which is not the program's stack. */
SEC("xdp")
__attribute__((naked)) int stack_read_above_frame(void)
{
    asm volatile("r0 = *(u64 *)(r10 + 8)\n"
                 "exit\n");
}
