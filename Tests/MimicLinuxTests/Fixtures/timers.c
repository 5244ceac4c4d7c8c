/* bpf_timer: kernel error codes (timer_errors), a callback that re-arms itself on the virtual
 * clock and cannot cancel itself (timer_arm, on_timer), and a map delete that cancels a pending
 * timer (timer_delete). Results land in .bss for the tests to read. */
#include "../../../Examples/mimic_bpf.h"

#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1
#define BPF_F_TIMER_ABS 1

struct bpf_timer { __u64 __opaque[2]; } __attribute__((aligned(8)));

static long (*bpf_timer_init)(struct bpf_timer *timer, void *map, __u64 flags) = (void *)169;
static long (*bpf_timer_set_callback)(struct bpf_timer *timer, void *callback_fn) = (void *)170;
static long (*bpf_timer_start)(struct bpf_timer *timer, __u64 nsecs, __u64 flags) = (void *)171;
static long (*bpf_timer_cancel)(struct bpf_timer *timer) = (void *)172;

struct elem {
    struct bpf_timer timer;
    __u64 fired;
    __u64 fired_at;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct elem);
} errors_map SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, struct elem);
} timers SEC(".maps");

long results[12];
__u64 delay = 1000000;
long self_cancel;
__u64 callback_key;

static int noop(void *map, __u32 *key, struct elem *value) { return 0; }

SEC("syscall")
int timer_errors(void *ctx)
{
    __u32 key = 0;
    struct elem *value = bpf_map_lookup_elem(&errors_map, &key);
    if (!value)
        return 1;
    results[0] = bpf_timer_start(&value->timer, 1000, 0);          /* not initialised: -EINVAL */
    results[1] = bpf_timer_init(&value->timer, &errors_map, 99);   /* bad clock: -EINVAL */
    results[2] = bpf_timer_init(&value->timer, &errors_map, CLOCK_MONOTONIC);
    results[3] = bpf_timer_init(&value->timer, &errors_map, CLOCK_MONOTONIC); /* -EBUSY */
    results[4] = bpf_timer_start(&value->timer, 1000, 0);          /* no callback: -EINVAL */
    results[5] = bpf_timer_set_callback(&value->timer, noop);
    results[6] = bpf_timer_start(&value->timer, 1000, 4);          /* bad flags: -EINVAL */
    results[7] = bpf_timer_cancel(&value->timer);                  /* not active: 0 */
    results[8] = bpf_timer_start(&value->timer, 1000000000, 0);    /* the cancel dropped the callback: -EINVAL */
    results[9] = bpf_timer_set_callback(&value->timer, noop);
    results[10] = bpf_timer_start(&value->timer, 1000000000, 0);
    results[11] = bpf_timer_cancel(&value->timer);                 /* active: 1 */
    return 0;
}

static int on_timer(void *map, __u32 *key, struct elem *value)
{
    value->fired++;
    value->fired_at = bpf_ktime_get_ns();
    callback_key = *key;
    if (value->fired < 3)
        bpf_timer_start(&value->timer, delay, 0);
    else
        self_cancel = bpf_timer_cancel(&value->timer);            /* its own timer: -EDEADLK */
    return 0;
}

SEC("syscall")
int timer_arm(void *ctx)
{
    __u32 key = 7;
    struct elem fresh = {};
    bpf_map_update_elem(&timers, &key, &fresh, BPF_ANY);
    struct elem *value = bpf_map_lookup_elem(&timers, &key);
    if (!value)
        return 1;
    long err = bpf_timer_init(&value->timer, &timers, CLOCK_MONOTONIC);
    if (err)
        return err;
    err = bpf_timer_set_callback(&value->timer, on_timer);
    if (err)
        return err;
    return bpf_timer_start(&value->timer, delay, 0);
}

SEC("syscall")
int timer_delete(void *ctx)
{
    __u32 key = 7;
    return bpf_map_delete_elem(&timers, &key);
}

char _license[] SEC("license") = "GPL";
