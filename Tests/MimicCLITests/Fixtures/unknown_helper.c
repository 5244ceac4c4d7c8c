/* A kprobe that calls helper #212, which Linux 6.18 does not define: running it must fail
 * with a clear message. Build: ./build.sh */
#include "../../../Examples/mimic_bpf.h"
static long (*unknown_helper)(void *ctx) = (void *)212;

SEC("kprobe/do_sys_open")
int stack_of_open(void *ctx)
{
    return unknown_helper(ctx);
}

char LICENSE[] SEC("license") = "GPL";
