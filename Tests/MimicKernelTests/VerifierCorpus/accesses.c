/* Memory accesses the kernel checks beyond their bounds: stack accesses must be aligned (its
 * spill tracking relies on it), and one load or store instruction must not go through the
 * context on one path and another kind of pointer on another (it rewrites context accesses).
 * And a copy with a constant added stays linked to its source (BPF_ADD_CONST). Written in
 * assembly so that the compiler keeps the accesses as they are. */
#include "corpus.h"

/* Reads 4 bytes at fp-14: not a multiple of 4 from the frame pointer. Rejected. */
SEC("xdp")
__attribute__((naked)) int stack_misaligned_read(void)
{
    asm volatile("*(u64 *)(r10 - 16) = 0\n"
                 "r0 = *(u32 *)(r10 - 14)\n"
                 "r0 = 2\n"
                 "exit\n");
}
/* Accepted twin: 4 bytes at fp-12. */
SEC("xdp")
__attribute__((naked)) int stack_aligned_read(void)
{
    asm volatile("*(u64 *)(r10 - 16) = 0\n"
                 "r0 = *(u32 *)(r10 - 12)\n"
                 "r0 = 2\n"
                 "exit\n");
}
/* Reads 8 bytes at fp-32 plus 0..15 from the context: the variable offset may be odd. Rejected. */
SEC("xdp")
__attribute__((naked)) int stack_misaligned_variable_read(void)
{
    asm volatile("r2 = *(u32 *)(r1 + 16)\n"
                 "r2 &= 15\n"
                 "*(u64 *)(r10 - 8) = 0\n"
                 "*(u64 *)(r10 - 16) = 0\n"
                 "*(u64 *)(r10 - 24) = 0\n"
                 "*(u64 *)(r10 - 32) = 0\n"
                 "r1 = r10\n"
                 "r1 += -32\n"
                 "r1 += r2\n"
                 "r0 = *(u64 *)(r1 + 0)\n"
                 "r0 = 2\n"
                 "exit\n");
}
/* Accepted twin: the offset is 0 or 8 (masked with 8). */
SEC("xdp")
__attribute__((naked)) int stack_aligned_variable_read(void)
{
    asm volatile("r2 = *(u32 *)(r1 + 16)\n"
                 "r2 &= 8\n"
                 "*(u64 *)(r10 - 8) = 0\n"
                 "*(u64 *)(r10 - 16) = 0\n"
                 "*(u64 *)(r10 - 24) = 0\n"
                 "*(u64 *)(r10 - 32) = 0\n"
                 "r1 = r10\n"
                 "r1 += -32\n"
                 "r1 += r2\n"
                 "r0 = *(u64 *)(r1 + 0)\n"
                 "r0 = 2\n"
                 "exit\n");
}
/* One load reads through the context on one path and through the stack on the other. Rejected. */
SEC("xdp")
__attribute__((naked)) int same_load_context_and_stack(void)
{
    asm volatile("r6 = r1\n"
                 "*(u64 *)(r10 - 8) = 0\n"
                 "call 7\n"
                 "r2 = r6\n"
                 "if r0 == 0 goto 1f\n"
                 "r2 = r10\n"
                 "r2 += -8\n"
                 "1:\n"
                 "r0 = *(u32 *)(r2 + 0)\n"
                 "r0 = 2\n"
                 "exit\n");
}
/* Accepted twin: the stack on one path, another stack slot on the other. */
SEC("xdp")
__attribute__((naked)) int same_load_two_stack_slots(void)
{
    asm volatile("r6 = r1\n"
                 "*(u64 *)(r10 - 8) = 0\n"
                 "*(u64 *)(r10 - 16) = 0\n"
                 "call 7\n"
                 "r2 = r10\n"
                 "r2 += -16\n"
                 "if r0 == 0 goto 1f\n"
                 "r2 = r10\n"
                 "r2 += -8\n"
                 "1:\n"
                 "r0 = *(u32 *)(r2 + 0)\n"
                 "r0 = 2\n"
                 "exit\n");
}
/* r4 = r7 + 8; a bound of 15 on r7 bounds r4 to 23, and r4 indexes 32 bytes. Accepted. */
SEC("xdp")
__attribute__((naked)) int linked_copy_plus_constant(void)
{
    asm volatile("*(u64 *)(r10 - 8) = 0\n"
                 "*(u64 *)(r10 - 16) = 0\n"
                 "*(u64 *)(r10 - 24) = 0\n"
                 "*(u64 *)(r10 - 32) = 0\n"
                 "r7 = *(u32 *)(r1 + 16)\n"
                 "r7 &= 255\n"
                 "r4 = r7\n"
                 "r4 += 8\n"
                 "if r7 > 15 goto 1f\n"
                 "r1 = r10\n"
                 "r1 += -32\n"
                 "r1 += r4\n"
                 "r0 = *(u8 *)(r1 + 0)\n"
                 "1:\n"
                 "r0 = 2\n"
                 "exit\n");
}
/* Rejected twin: copying r4 (r7 + 8) into r5 unlinks r4 from r7, so the bound on r7 no longer
 * bounds r4, which may be 263. */
SEC("xdp")
__attribute__((naked)) int linked_copy_of_linked_copy(void)
{
    asm volatile("*(u64 *)(r10 - 8) = 0\n"
                 "*(u64 *)(r10 - 16) = 0\n"
                 "*(u64 *)(r10 - 24) = 0\n"
                 "*(u64 *)(r10 - 32) = 0\n"
                 "r7 = *(u32 *)(r1 + 16)\n"
                 "r7 &= 255\n"
                 "r4 = r7\n"
                 "r4 += 8\n"
                 "r5 = r4\n"
                 "if r7 > 15 goto 1f\n"
                 "r1 = r10\n"
                 "r1 += -32\n"
                 "r1 += r4\n"
                 "r0 = *(u8 *)(r1 + 0)\n"
                 "1:\n"
                 "r0 = 2\n"
                 "exit\n");
}

char LICENSE[] SEC("license") = "GPL";
