/* State pruning: the verifier skips a path when a state it has already proved safe at the same
 * instruction covers it. Scalars copied from one another share an id, and a comparison on one
 * bounds them all; so a stored state whose scalars are linked covers only current states with
 * the same links (the kernel's check_scalar_ids). Written in assembly so that the compiler keeps
 * the copies and the order of the paths. */
#include "corpus.h"

/* Two paths meet at the bounds check on r6: the first has r8 = r6 (linked: the check bounds
 * r8 too), the second r8 = r7 (not linked: r8 stays 0..255). The first path's state must not
 * cover the second, whose r8 indexes 16 bytes of stack out of bounds. Rejected. */
SEC("xdp")
__attribute__((naked)) int pruning_unlinked_copy(void)
{
    asm volatile("call 7\n"          /* bpf_get_prandom_u32 */
                 "r6 = r0\n"
                 "r6 &= 255\n"
                 "call 7\n"
                 "r7 = r0\n"
                 "r7 &= 255\n"
                 "r1 = 0\n"
                 "*(u64 *)(r10 - 16) = r1\n"
                 "*(u64 *)(r10 - 8) = r1\n"
                 "r9 = 0\n"
                 "call 7\n"
                 "if r0 == 0 goto 1f\n"
                 "r8 = r6\n"
                 "if r9 != 0 goto 2f\n"
                 "r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n"
                 "goto 2f\n"
                 "1:\n"
                 "r8 = r7\n"
                 "r9 = 0\n"
                 "2:\n"
                 "if r6 > 9 goto 3f\n"
                 "r1 = r10\n"
                 "r1 += -16\n"
                 "r1 += r8\n"
                 "r0 = *(u8 *)(r1 + 0)\n"
                 "3:\n"
                 "r0 = 2\n"
                 "exit\n");
}

/* Accepted twin: the check bounds r8 itself, on both paths. */
SEC("xdp")
__attribute__((naked)) int pruning_checked_copy(void)
{
    asm volatile("call 7\n"
                 "r6 = r0\n"
                 "r6 &= 255\n"
                 "call 7\n"
                 "r7 = r0\n"
                 "r7 &= 255\n"
                 "r1 = 0\n"
                 "*(u64 *)(r10 - 16) = r1\n"
                 "*(u64 *)(r10 - 8) = r1\n"
                 "r9 = 0\n"
                 "call 7\n"
                 "if r0 == 0 goto 1f\n"
                 "r8 = r6\n"
                 "if r9 != 0 goto 2f\n"
                 "r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n"
                 "goto 2f\n"
                 "1:\n"
                 "r8 = r7\n"
                 "r9 = 0\n"
                 "2:\n"
                 "if r8 > 9 goto 3f\n"
                 "r1 = r10\n"
                 "r1 += -16\n"
                 "r1 += r8\n"
                 "r0 = *(u8 *)(r1 + 0)\n"
                 "3:\n"
                 "r0 = 2\n"
                 "exit\n");
}

/* A byte is written through fp-16 + r6, r6 in 0..15 on one path, 0..7 on the other: only the
 * first may overwrite the context pointer spilled at fp-8; the second still loads it, and
 * multiplying a pointer is refused. A stack pointer covers only itself (regs_exact). Rejected. */
SEC("xdp")
__attribute__((naked)) int pruning_narrower_stack_pointer(void)
{
    asm volatile("*(u64 *)(r10 - 8) = r1\n"
                 "r1 = 0\n"
                 "*(u64 *)(r10 - 16) = r1\n"
                 "r9 = 0\n"
                 "call 7\n"
                 "r6 = r0\n"
                 "call 7\n"
                 "if r0 == 0 goto 1f\n"
                 "r6 &= 15\n"
                 "r1 = r10\n"
                 "r1 += -16\n"
                 "r1 += r6\n"
                 "if r9 != 0 goto 2f\n"
                 "r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n"
                 "goto 2f\n"
                 "1:\n"
                 "r6 &= 7\n"
                 "r1 = r10\n"
                 "r1 += -16\n"
                 "r1 += r6\n"
                 "r9 = 0\n"
                 "2:\n"
                 "r2 = 0\n"
                 "*(u8 *)(r1 + 0) = r2\n"
                 "r0 = *(u64 *)(r10 - 8)\n"
                 "r0 *= 3\n"
                 "r0 = 2\n"
                 "exit\n");
}

/* Accepted twin: both paths mask r6 to 0..15, so the write may reach fp-8 on both. */
SEC("xdp")
__attribute__((naked)) int pruning_same_stack_pointer(void)
{
    asm volatile("*(u64 *)(r10 - 8) = r1\n"
                 "r1 = 0\n"
                 "*(u64 *)(r10 - 16) = r1\n"
                 "r9 = 0\n"
                 "call 7\n"
                 "r6 = r0\n"
                 "call 7\n"
                 "if r0 == 0 goto 1f\n"
                 "r6 &= 15\n"
                 "r1 = r10\n"
                 "r1 += -16\n"
                 "r1 += r6\n"
                 "if r9 != 0 goto 2f\n"
                 "r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n"
                 "goto 2f\n"
                 "1:\n"
                 "r6 &= 15\n"
                 "r1 = r10\n"
                 "r1 += -16\n"
                 "r1 += r6\n"
                 "r9 = 0\n"
                 "2:\n"
                 "r2 = 0\n"
                 "*(u8 *)(r1 + 0) = r2\n"
                 "r0 = *(u64 *)(r10 - 8)\n"
                 "r0 *= 3\n"
                 "r0 = 2\n"
                 "exit\n");
}

/* fp-16 holds an 8-byte spill of 0..15 on one path, a 4-byte one on the other: the 8-byte fill
 * gives the bounds back only after the first. A 4-byte spill does not cover an 8-byte one, so
 * the second path is checked: its fill is unbounded. Rejected. */
SEC("xdp")
__attribute__((naked)) int pruning_spill_narrower(void)
{
    asm volatile("r6 = r1\n"
                 "*(u64 *)(r10 - 8) = 0\n"
                 "*(u64 *)(r10 - 16) = 0\n"
                 "r7 = *(u32 *)(r6 + 16)\n"
                 "r7 &= 255\n"
                 "r9 = 0\n"
                 "call 7\n"
                 "if r0 == 0 goto 1f\n"
                 "r3 = r7\n"
                 "r3 &= 15\n"
                 "*(u64 *)(r10 - 16) = r3\n"
                 "if r9 != 0 goto 2f\n"
                 "r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n"
                 "goto 2f\n"
                 "1:\n"
                 "r3 = r7\n"
                 "r3 &= 15\n"
                 "*(u32 *)(r10 - 16) = r3\n"
                 "r9 = 0\n"
                 "2:\n"
                 "r4 = *(u64 *)(r10 - 16)\n"
                 "r1 = r10\n"
                 "r1 += -16\n"
                 "r1 += r4\n"
                 "r0 = *(u8 *)(r1 + 0)\n"
                 "r0 = 2\n"
                 "exit\n");
}
/* Accepted twin: an 8-byte spill of 0..15 on both paths. */
SEC("xdp")
__attribute__((naked)) int pruning_spill_same_width(void)
{
    asm volatile("r6 = r1\n"
                 "*(u64 *)(r10 - 8) = 0\n"
                 "*(u64 *)(r10 - 16) = 0\n"
                 "r7 = *(u32 *)(r6 + 16)\n"
                 "r7 &= 255\n"
                 "r9 = 0\n"
                 "call 7\n"
                 "if r0 == 0 goto 1f\n"
                 "r3 = r7\n"
                 "r3 &= 15\n"
                 "*(u64 *)(r10 - 16) = r3\n"
                 "if r9 != 0 goto 2f\n"
                 "r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n"
                 "goto 2f\n"
                 "1:\n"
                 "r3 = r7\n"
                 "r3 &= 7\n"
                 "*(u64 *)(r10 - 16) = r3\n"
                 "r9 = 0\n"
                 "2:\n"
                 "r4 = *(u64 *)(r10 - 16)\n"
                 "r1 = r10\n"
                 "r1 += -16\n"
                 "r1 += r4\n"
                 "r0 = *(u8 *)(r1 + 0)\n"
                 "r0 = 2\n"
                 "exit\n");
}
/* For root, unknown stack bytes cover anything, a spilled pointer too: the first path's fp-16
 * (a byte written into it) covers the second's spilled context pointer, which the kernel never
 * checks, though multiplying it would be refused. Accepted. */
SEC("xdp")
__attribute__((naked)) int pruning_unknown_bytes_cover_pointer(void)
{
    asm volatile("r6 = r1\n"
                 "*(u64 *)(r10 - 8) = 0\n"
                 "*(u64 *)(r10 - 16) = 0\n"
                 "r7 = *(u32 *)(r6 + 16)\n"
                 "r7 &= 255\n"
                 "r9 = 0\n"
                 "call 7\n"
                 "if r0 == 0 goto 1f\n"
                 "*(u8 *)(r10 - 13) = r7\n"
                 "if r9 != 0 goto 2f\n"
                 "r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n"
                 "goto 2f\n"
                 "1:\n"
                 "*(u64 *)(r10 - 16) = r6\n"
                 "r9 = 0\n"
                 "2:\n"
                 "r4 = *(u64 *)(r10 - 16)\n"
                 "r4 *= 3\n"
                 "r0 = r4\n"
                 "r0 = 2\n"
                 "exit\n");
}
/* Rejected twin: the first path leaves fp-16 zero, which does not cover a pointer; the second
 * path is checked and multiplies the context pointer. */
SEC("xdp")
__attribute__((naked)) int pruning_zero_bytes_do_not_cover_pointer(void)
{
    asm volatile("r6 = r1\n"
                 "*(u64 *)(r10 - 8) = 0\n"
                 "*(u64 *)(r10 - 16) = 0\n"
                 "r7 = *(u32 *)(r6 + 16)\n"
                 "r7 &= 255\n"
                 "r9 = 0\n"
                 "call 7\n"
                 "if r0 == 0 goto 1f\n"
                 "r3 = 0\n"
                 "if r9 != 0 goto 2f\n"
                 "r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n"
                 "goto 2f\n"
                 "1:\n"
                 "*(u64 *)(r10 - 16) = r6\n"
                 "r9 = 0\n"
                 "2:\n"
                 "r4 = *(u64 *)(r10 - 16)\n"
                 "r4 *= 3\n"
                 "r0 = r4\n"
                 "r0 = 2\n"
                 "exit\n");
}

/* The paths leave R5 as 0 and as 0..255; no instruction after the meeting point needs R5's
 * value (it is copied to R0, then R0 is overwritten), so the first state covers the second and
 * its fp-16 (the context pointer, multiplied) is never checked (precision tracking). Accepted. */
SEC("xdp")
__attribute__((naked)) int precision_unneeded_scalar(void)
{
    asm volatile("r6 = r1\n"
                 "*(u64 *)(r10 - 8) = 0\n"
                 "*(u64 *)(r10 - 16) = 0\n"
                 "*(u64 *)(r10 - 24) = 0\n"
                 "*(u64 *)(r10 - 32) = 0\n"
                 "r7 = *(u32 *)(r6 + 16)\n"
                 "r7 &= 255\n"
                 "r9 = 0\n"
                 "call 7\n"
                 "if r0 == 0 goto 1f\n"
                 "*(u8 *)(r10 - 13) = r7\n"
                 "r5 = 0\n"
                 "if r9 != 0 goto 2f\n"
                 "r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n"
                 "goto 2f\n"
                 "1:\n"
                 "*(u64 *)(r10 - 16) = r6\n"
                 "r5 = r7\n"
                 "r9 = 0\n"
                 "2:\n"
                 "r4 = *(u64 *)(r10 - 16)\n"
                 "r4 *= 3\n"
                 "r0 = r5\n"
                 "r0 = 2\n"
                 "exit\n");
}
/* Rejected twin: R5 indexes the stack after the meeting point, so its value matters, the
 * states differ, and the second path is checked and multiplies the context pointer. */
SEC("xdp")
__attribute__((naked)) int precision_needed_scalar(void)
{
    asm volatile("r6 = r1\n"
                 "*(u64 *)(r10 - 8) = 0\n"
                 "*(u64 *)(r10 - 16) = 0\n"
                 "*(u64 *)(r10 - 24) = 0\n"
                 "*(u64 *)(r10 - 32) = 0\n"
                 "r7 = *(u32 *)(r6 + 16)\n"
                 "r7 &= 255\n"
                 "r9 = 0\n"
                 "call 7\n"
                 "if r0 == 0 goto 1f\n"
                 "*(u8 *)(r10 - 13) = r7\n"
                 "r5 = 0\n"
                 "if r9 != 0 goto 2f\n"
                 "r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n r9 = 0\n"
                 "goto 2f\n"
                 "1:\n"
                 "*(u64 *)(r10 - 16) = r6\n"
                 "r5 = r7\n"
                 "r5 &= 15\n"
                 "r9 = 0\n"
                 "2:\n"
                 "r1 = r10\n"
                 "r1 += -32\n"
                 "r1 += r5\n"
                 "r0 = *(u8 *)(r1 + 0)\n"
                 "r4 = *(u64 *)(r10 - 16)\n"
                 "r4 *= 3\n"
                 "r0 = r4\n"
                 "r0 = 2\n"
                 "exit\n");
}

char LICENSE[] SEC("license") = "GPL";
