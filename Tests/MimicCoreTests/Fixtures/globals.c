/* Global data in .data, .rodata, .bss, custom .data.* / .rodata.* sections, and string literals. */
#include "../../../Examples/mimic_bpf.h"

int counter = 5;                                   /* .data */
const volatile __u32 threshold = 1000;             /* .rodata */
const char banner[] = "mimic";                     /* .rodata */
__u64 total;                                       /* .bss */
__u32 scratch[4];                                  /* .bss */
int tuned SEC(".data.tuning") = 0x1234;            /* .data.tuning */
const volatile __u16 ports[3] SEC(".rodata.ports") = {80, 443, 8080};


SEC("socket")
int read_globals(const __u8 *bytes, __u32 length)
{
    counter += 1;
    total += length;
    scratch[1] = tuned;
    if (length > threshold)
        return -1;
    return counter + banner[0] + ports[1] + tuned;
}

/* String literals land in .rodata.str1.1; indexing one at run time keeps it in memory. */
SEC("socket")
int literal_char(const __u8 *bytes, __u32 length)
{
    const char *text = "literal!";
    bpf_trace_printk("length %d\n", sizeof("length %d\n"), length);
    return text[length & 7];
}

char _license[] SEC("license") = "GPL";
