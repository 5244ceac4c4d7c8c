/* Static and global sub-programs in .text, called from two programs (and from each other). */
#include "../../../Examples/mimic_bpf.h"

static __noinline __u32 mix(__u32 a, __u32 b)
{
    return (a * 31) ^ b;
}

static __noinline __u32 fold(const __u8 *bytes, __u32 count)
{
    __u32 acc = 17;
#pragma clang loop unroll(disable)
    for (__u32 i = 0; i < count && i < 16; i++)
        acc = mix(acc, bytes[i]);
    return acc;
}

__noinline int global_twice(int x)
{
    return x * 2;
}

/* R1 points to the input bytes, R2 holds their length (the MemoryContext convention). */
SEC("socket")
int hash_input(const __u8 *bytes, __u32 length)
{
    return fold(bytes, length);
}

SEC("socket")
int twice_first(const __u8 *bytes, __u32 length)
{
    if (length < 1)
        return -1;
    return global_twice(bytes[0]) + mix(1, 2);
}

char _license[] SEC("license") = "GPL";
