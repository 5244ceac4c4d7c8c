/* Global variables in .data, .bss and .rodata, which libbpf turns into single-element array
 * maps; the host reads what the program wrote through those maps. */
#include "../../../Examples/mimic_bpf.h"

__u64 packets;                  /* .bss */
__u32 last_length;              /* .bss */
__u32 generation = 7;           /* .data */
char label[8] = "mimic";        /* .data */
const volatile __u32 step = 3;  /* .rodata */

SEC("xdp")
int count_globals(struct xdp_md *ctx)
{
    packets += 1;
    last_length = ctx->data_end - ctx->data;
    generation += step;
    label[0] = 'M';
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
