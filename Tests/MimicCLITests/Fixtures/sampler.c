/* An XDP sampler: passes a packet when bpf_get_prandom_u32() is odd. With a fixed --seed the
 * verdicts repeat from run to run; every packet draws a new value. Build: ./build.sh */
#include "../../../Examples/mimic_bpf.h"

static __u32 (*bpf_get_prandom_u32)(void) = (void *)7;

SEC("xdp")
int sampler(struct xdp_md *ctx)
{
    return (bpf_get_prandom_u32() & 1) ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
