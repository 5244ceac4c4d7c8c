/* Bounded loops over the input bytes. */
#include "../../../Examples/mimic_bpf.h"

SEC("socket")
int sum_bytes(const __u8 *bytes, __u32 length)
{
    __u32 sum = 0;
#pragma clang loop unroll(disable)
    for (__u32 i = 0; i < length && i < 64; i++)
        sum += bytes[i];
    return sum;
}

SEC("socket")
int count_zeros(const __u8 *bytes, __u32 length)
{
    int zeros = 0;
    __u32 i = 0;
#pragma clang loop unroll(disable)
    while (i < length && i < 128) {
        if (bytes[i] == 0)
            zeros++;
        i++;
    }
    return zeros;
}

char _license[] SEC("license") = "GPL";
