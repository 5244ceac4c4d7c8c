/* Not a program: a stand-in for a kernel's BTF, with task_struct and pt_regs laid out
 * differently from tracing.c's view, for testing CO-RE relocations against a target. */
#define MIMIC_BPF_NO_PT_REGS /* its own pt_regs, laid out differently, below */
#include "../../../Examples/mimic_bpf.h"
struct task_struct {
    long state;
    void *stack;
    int tgid;
    int pid;
    unsigned long flags;
    char comm[32];
};

struct pt_regs {
    unsigned long r15;
    unsigned long si;
    unsigned long di;
};

struct task_struct kernel_task;
struct pt_regs kernel_regs;
