/* A kprobe that calls bpf_get_stackid, a helper the Linux emulator cannot emulate: running it
 * without a captured context must fail with a clear message. Build: ./build.sh */
#include "../../../Examples/mimic_bpf.h"

SEC("kprobe/do_sys_open")
int stack_of_open(void *ctx)
{
    return bpf_get_stackid(ctx, NULL, 0);
}

char LICENSE[] SEC("license") = "GPL";
