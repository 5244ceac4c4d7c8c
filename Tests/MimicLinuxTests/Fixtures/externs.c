/* __kconfig and __ksym externs and kfuncs, declared the way libbpf-bootstrap programs declare
 * them (bpf_helpers.h's __kconfig, __ksym, __weak and bpf_for): the loader fills .kconfig from
 * the kernel configuration, gives each __ksym variable the address of a kernel object, and binds
 * the kfuncs by name. Each program stores what it saw in .bss for the tests to read. */
#include "../../../Examples/mimic_bpf.h"

#define __kconfig __attribute__((section(".kconfig")))
#define __ksym __attribute__((section(".ksyms")))
#define __weak __attribute__((weak))

typedef _Bool bool;

enum libbpf_tristate { TRI_NO = 0, TRI_YES = 1, TRI_MODULE = 2 };

/* libbpf's virtual externs. */
extern int LINUX_KERNEL_VERSION __kconfig;
extern bool LINUX_HAS_SYSCALL_WRAPPER __kconfig;
extern bool LINUX_HAS_BPF_COOKIE __kconfig __weak;
extern int LINUX_UNKNOWN_FEATURE __kconfig __weak;

/* CONFIG_* values of every kind libbpf supports. */
extern bool CONFIG_BPF_SYSCALL __kconfig __weak;
extern enum libbpf_tristate CONFIG_NF_CONNTRACK __kconfig __weak;
extern char CONFIG_MIMIC_CHAR __kconfig __weak;
extern __s16 CONFIG_MIMIC_S16 __kconfig __weak;
extern int CONFIG_HZ __kconfig __weak;
extern __u64 CONFIG_MIMIC_U64 __kconfig __weak;
extern char CONFIG_DEFAULT_HOSTNAME[8] __kconfig __weak;
extern int CONFIG_MIMIC_MISSING __kconfig __weak;

struct kconfig_seen {
    __u32 kernel_version;
    __u32 conntrack;
    __u64 phys;
    int hz;
    int unknown_feature;
    int missing;
    __s16 s16;
    bool syscall_wrapper;
    bool bpf_cookie;
    bool bpf_syscall;
    char c;
    char hostname[8];
};

struct kconfig_seen kconfig_seen;
int iter_sum;
int iter_count;
int iter_empty_new;
int iter_bad_new;

/* The open-coded numeric iterator (kernel/bpf/bpf_iter.c). */
struct bpf_iter_num { __u64 __opaque[1]; } __attribute__((aligned(8)));
extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

#define bpf_for(i, start, end) for (                                                        \
    struct bpf_iter_num ___it __attribute__((aligned(8), cleanup(bpf_iter_num_destroy))),    \
        *___p __attribute__((unused)) = (bpf_iter_num_new(&___it, (start), (end)),           \
                                         (void)bpf_iter_num_destroy, (void *)0);             \
    ({                                                                                       \
        int *___t = bpf_iter_num_next(&___it);                                               \
        (___t && ((i) = *___t, (i) >= (start) && (i) < (end)));                              \
    });                                                                                      \
)

SEC("syscall")
int read_kconfig(void *ctx)
{
    kconfig_seen.kernel_version = LINUX_KERNEL_VERSION;
    kconfig_seen.syscall_wrapper = LINUX_HAS_SYSCALL_WRAPPER;
    kconfig_seen.bpf_cookie = LINUX_HAS_BPF_COOKIE;
    kconfig_seen.unknown_feature = LINUX_UNKNOWN_FEATURE;
    kconfig_seen.bpf_syscall = CONFIG_BPF_SYSCALL;
    kconfig_seen.conntrack = CONFIG_NF_CONNTRACK;
    kconfig_seen.c = CONFIG_MIMIC_CHAR;
    kconfig_seen.s16 = CONFIG_MIMIC_S16;
    kconfig_seen.hz = CONFIG_HZ;
    kconfig_seen.phys = CONFIG_MIMIC_U64;
    kconfig_seen.missing = CONFIG_MIMIC_MISSING;
    __builtin_memcpy(kconfig_seen.hostname, CONFIG_DEFAULT_HOSTNAME, sizeof(kconfig_seen.hostname));

    int i;
    bpf_for(i, 3, 10) {
        iter_sum += i;
        iter_count++;
    }
    /* An empty range iterates zero times; a reversed one fails with -EINVAL. */
    bpf_for(i, 5, 5) iter_count += 100;
    struct bpf_iter_num it;
    iter_empty_new = bpf_iter_num_new(&it, 7, 7);
    bpf_iter_num_destroy(&it);
    iter_bad_new = bpf_iter_num_new(&it, 2, 1);
    if (bpf_iter_num_next(&it))
        iter_count += 1000;
    bpf_iter_num_destroy(&it);
    return 0;
}

/* Kernel variables: typed (int), typed per-CPU, typeless, and a weak one that may be missing. */
extern const int mimic_answer __ksym;
extern const int mimic_per_cpu_counter __ksym;
extern const void mimic_typeless __ksym;
extern const int mimic_maybe_missing __ksym __weak;

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym __weak;

__u64 answer_address;
__u64 typeless_address;
__u64 missing_address;
int answer;

SEC("raw_tp/sys_enter")
int read_ksyms(void *ctx)
{
    bpf_rcu_read_lock();
    answer_address = (__u64)&mimic_answer;
    typeless_address = (__u64)&mimic_typeless;
    missing_address = (__u64)&mimic_maybe_missing;
    answer = mimic_answer;
    bpf_rcu_read_unlock();
    return 0;
}

/* Tracing helpers that need no kernel, with the per-CPU kernel variable through
 * bpf_per_cpu_ptr / bpf_this_cpu_ptr and a per-CPU array through bpf_map_lookup_percpu_elem. */
static long (*bpf_override_return)(void *regs, __u64 rc) = (void *)58;
static long (*bpf_send_signal)(__u32 sig) = (void *)109;
static long (*bpf_send_signal_thread)(__u32 sig) = (void *)117;
static __u64 (*bpf_jiffies64)(void) = (void *)118;
static void *(*bpf_per_cpu_ptr)(const void *percpu_ptr, __u32 cpu) = (void *)153;
static void *(*bpf_this_cpu_ptr)(const void *percpu_ptr) = (void *)154;
static __u64 (*bpf_get_func_ip)(void *ctx) = (void *)173;
static __u64 (*bpf_get_attach_cookie)(void *ctx) = (void *)174;
static long (*bpf_strncmp)(const char *s1, __u32 s1_sz, const char *s2) = (void *)182;
static void *(*bpf_map_lookup_percpu_elem)(void *map, const void *key, __u32 cpu) = (void *)195;
static __u64 (*bpf_ktime_get_tai_ns)(void) = (void *)208;

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} per_cpu_values SEC(".maps");

struct helpers_seen {
    __u64 jiffies;
    __u64 tai;
    __u64 func_ip;
    __u64 cookie;
    __u64 cpu1_value;
    __u64 cpu5_lookup;
    long strncmp_equal;
    long strncmp_less;
    long strncmp_greater;
    long signal;
    long signal_thread;
    long signal_invalid;
    long override;
    int counter_cpu0;
    int counter_cpu1;
    int counter_this;
    int counter_cpu9_null;
};

struct helpers_seen helpers_seen;
const char mimic_name[] = "mimic";

SEC("kprobe/do_nanosleep")
int tracing_helpers(void *ctx)
{
    char name[8] = "mimic";
    char lower[8] = "mimib";
    __u32 zero = 0;

    helpers_seen.jiffies = bpf_jiffies64();
    helpers_seen.tai = bpf_ktime_get_tai_ns();
    helpers_seen.func_ip = bpf_get_func_ip(ctx);
    helpers_seen.cookie = bpf_get_attach_cookie(ctx);
    helpers_seen.strncmp_equal = bpf_strncmp(name, sizeof(name), mimic_name);
    helpers_seen.strncmp_less = bpf_strncmp(lower, sizeof(lower), mimic_name);
    helpers_seen.strncmp_greater = bpf_strncmp(name, 4, "mia");

    __u64 *value = bpf_map_lookup_percpu_elem(&per_cpu_values, &zero, 1);
    if (value)
        helpers_seen.cpu1_value = *value;
    helpers_seen.cpu5_lookup = (__u64)bpf_map_lookup_percpu_elem(&per_cpu_values, &zero, 5);

    const int *counter = bpf_per_cpu_ptr(&mimic_per_cpu_counter, 0);
    if (counter)
        helpers_seen.counter_cpu0 = *counter;
    counter = bpf_per_cpu_ptr(&mimic_per_cpu_counter, 1);
    if (counter)
        helpers_seen.counter_cpu1 = *counter + 1;
    counter = bpf_this_cpu_ptr(&mimic_per_cpu_counter);
    helpers_seen.counter_this = counter == bpf_per_cpu_ptr(&mimic_per_cpu_counter, 1);
    helpers_seen.counter_cpu9_null = bpf_per_cpu_ptr(&mimic_per_cpu_counter, 9) == 0;

    helpers_seen.signal = bpf_send_signal(10);
    helpers_seen.signal_thread = bpf_send_signal_thread(12);
    helpers_seen.signal_invalid = bpf_send_signal(65);
    helpers_seen.override = bpf_override_return(ctx, -22);
    return 0;
}

/* Optional kfuncs, guarded the way libbpf's bpf_ksym_exists guards them. */
#define bpf_ksym_exists(sym) ({                                                             \
    _Static_assert(!__builtin_constant_p(!!sym), #sym " should be marked as __weak");       \
    !!sym;                                                                                   \
})

extern int bpf_mimic_absent(int value) __ksym __weak;

int unlock_exists;
int absent_exists;
int absent_result = -1;

SEC("raw_tp/sys_exit")
int optional_kfuncs(void *ctx)
{
    unlock_exists = bpf_ksym_exists(bpf_rcu_read_unlock);
    absent_exists = bpf_ksym_exists(bpf_mimic_absent);
    if (bpf_ksym_exists(bpf_mimic_absent))
        absent_result = bpf_mimic_absent(1);
    return 0;
}

SEC("raw_tp/sys_exit")
int call_absent(void *ctx)
{
    return bpf_mimic_absent(2);
}

/* Kills the task (as an LSM-like kprobe would) and makes the probed function fail. */
SEC("kprobe/do_unlinkat")
int deny_unlink(void *ctx)
{
    bpf_send_signal(9);
    bpf_override_return(ctx, -1);
    return 0;
}

char _license[] SEC("license") = "GPL";
