/* Programs calling MimicLinux helpers that need only registers and VM memory: run with the
 * Linux emulator linked statically and loaded as a plugin, they must give the same results.
 * Each takes a byte buffer (MemoryContext: R1 = pointer, R2 = length). Build: ./build.sh */
typedef unsigned long long u64;
typedef unsigned int u32;
typedef long long s64;

#define SEC(name) __attribute__((section(name), used))

static long (*bpf_probe_read_kernel)(void *dst, u32 size, const void *src) = (void *)113;
static long (*bpf_probe_read_kernel_str)(void *dst, u32 size, const void *src) = (void *)115;
static u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static long (*bpf_trace_printk)(const char *fmt, u32 fmt_size, ...) = (void *)6;
static u32 (*bpf_get_smp_processor_id)(void) = (void *)8;
static u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static long (*bpf_get_current_comm)(void *buf, u32 size) = (void *)16;
static s64 (*bpf_csum_diff)(u32 *from, u32 from_size, u32 *to, u32 to_size, u32 seed) = (void *)28;
static long (*bpf_strtol)(const char *buf, unsigned long len, u64 flags, long *res) = (void *)105;
static long (*bpf_strtoul)(const char *buf, unsigned long len, u64 flags, unsigned long *res) = (void *)106;
static long (*bpf_snprintf)(char *out, u32 out_size, const char *fmt, u64 *data, u32 data_len) = (void *)165;

/* The CPU and parsed numbers, packed into one value. */
SEC("socket")
int numbers(void *ctx)
{
    char negative[] = "-123";
    char hex[] = "0x1f";
    long a = 0;
    unsigned long b = 0;
    long parsed = bpf_strtol(negative, sizeof(negative) - 1, 10, &a);
    long parsed_hex = bpf_strtoul(hex, sizeof(hex) - 1, 0, &b);
    return (int)(bpf_get_smp_processor_id() * 1000000 + (-a) * 1000 + b * 10 + parsed + parsed_hex);
}

/* Trace output and bpf_snprintf. */
SEC("socket")
int printing(void *ctx)
{
    char fmt[] = "value %d from %s\n";
    char who[] = "plugin";
    bpf_trace_printk(fmt, sizeof(fmt), 42, who);
    char out[32] = {};
    char sfmt[] = "%d-%d";
    u64 args[2] = {7, 99};
    long n = bpf_snprintf(out, sizeof(out), sfmt, args, sizeof(args));
    return (int)(n * 100 + out[0] * 1 + (out[2] == '9' ? 10000 : 0));
}

/* Reads the input buffer with probe reads (and a bad address: -EFAULT) and checksums it. */
SEC("socket")
int memory(unsigned char *data, u64 length)
{
    u32 words[2] = {};
    char text[8] = {};
    long ok = bpf_probe_read_kernel(words, sizeof(words), data);
    long bad = bpf_probe_read_kernel(words, 4, (void *)0x40);
    long str = bpf_probe_read_kernel_str(text, sizeof(text), data + 8);
    s64 sum = bpf_csum_diff(0, 0, words, sizeof(words), 0);
    return (int)((ok == 0 ? 1 : 0) + (bad == -14 ? 10 : 0) + str * 100 + (sum & 0xffff) * 1000);
}

/* Task identity and the clock. */
SEC("socket")
int task(void *ctx)
{
    char comm[16] = {};
    u64 t1 = bpf_ktime_get_ns();
    u64 t2 = bpf_ktime_get_ns();
    bpf_get_current_comm(comm, sizeof(comm));
    return (int)((t2 >= t1 && t1 > 0 ? 1 : 0) + (bpf_get_current_pid_tgid() & 0xffff) * 10 + comm[0] * 1000000);
}

/* A format string at an address nobody mapped: the helper faults and the program stops. */
SEC("socket")
int fault(void *ctx)
{
    return bpf_trace_printk((const char *)0x50, 8);
}

char LICENSE[] SEC("license") = "GPL";
