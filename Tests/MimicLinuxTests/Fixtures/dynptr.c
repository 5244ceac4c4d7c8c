/* Dynptrs: a local dynptr over a global buffer (the kernel takes map values, not the stack) (read, write, data, and the slice / adjust / size /
 * clone kfuncs) and ring buffer records reserved, written and submitted through dynptrs. Every
 * result goes to .bss for the tests (and the kernel differential test) to compare. */
#include "../../../Examples/mimic_bpf.h"

#define __ksym __attribute__((section(".ksyms")))

struct bpf_dynptr { __u64 __opaque[2]; } __attribute__((aligned(8)));

static long (*bpf_dynptr_from_mem)(void *data, __u32 size, __u64 flags, struct bpf_dynptr *ptr) = (void *)197;
static long (*bpf_ringbuf_reserve_dynptr)(void *ringbuf, __u32 size, __u64 flags, struct bpf_dynptr *ptr) = (void *)198;
static void (*bpf_ringbuf_submit_dynptr)(struct bpf_dynptr *ptr, __u64 flags) = (void *)199;
static void (*bpf_ringbuf_discard_dynptr)(struct bpf_dynptr *ptr, __u64 flags) = (void *)200;
static long (*bpf_dynptr_read)(void *dst, __u32 len, const struct bpf_dynptr *src, __u32 offset, __u64 flags) = (void *)201;
static long (*bpf_dynptr_write)(const struct bpf_dynptr *dst, __u32 offset, void *src, __u32 len, __u64 flags) = (void *)202;
static void *(*bpf_dynptr_data)(const struct bpf_dynptr *ptr, __u32 offset, __u32 len) = (void *)203;

extern void *bpf_dynptr_slice(const struct bpf_dynptr *p, __u32 offset, void *buffer__opt, __u32 buffer__szk) __ksym;
extern void *bpf_dynptr_slice_rdwr(const struct bpf_dynptr *p, __u32 offset, void *buffer__opt, __u32 buffer__szk) __ksym;
extern int bpf_dynptr_adjust(const struct bpf_dynptr *p, __u32 start, __u32 end) __ksym;
extern _Bool bpf_dynptr_is_null(const struct bpf_dynptr *p) __ksym;
extern __u32 bpf_dynptr_size(const struct bpf_dynptr *p) __ksym;
extern int bpf_dynptr_clone(const struct bpf_dynptr *p, struct bpf_dynptr *clone__uninit) __ksym;

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} events SEC(".maps");

long results[20];
char buffer[16];
char copied[8];
char sliced[4];

SEC("syscall")
int local_dynptr(void *ctx)
{
    char word[4] = { 'm', 'i', 'm', 'c' };
    struct bpf_dynptr ptr, copy;

    results[0] = bpf_dynptr_from_mem(buffer, sizeof(buffer), 0, &ptr);
    results[1] = bpf_dynptr_write(&ptr, 4, word, sizeof(word), 0);
    results[2] = bpf_dynptr_write(&ptr, 14, word, sizeof(word), 0);    /* past the end: -E2BIG */
    results[3] = bpf_dynptr_write(&ptr, 0, word, sizeof(word), 1);     /* flags: -EINVAL */
    results[4] = bpf_dynptr_read(copied, sizeof(copied), &ptr, 2, 0);
    results[5] = bpf_dynptr_read(copied, sizeof(copied), &ptr, 12, 0); /* -E2BIG */
    results[6] = bpf_dynptr_data(&ptr, 12, 8) == 0;                    /* out of range: NULL */
    char *data = bpf_dynptr_data(&ptr, 4, 4);
    results[7] = data ? data[1] : -1;
    char *slice = bpf_dynptr_slice(&ptr, 4, 0, 4);
    if (slice)
        __builtin_memcpy(sliced, slice, 4);
    results[8] = bpf_dynptr_slice(&ptr, 14, 0, 4) == 0;                /* out of range: NULL */
    results[9] = bpf_dynptr_adjust(&ptr, 4, 8);
    results[10] = bpf_dynptr_size(&ptr);
    results[11] = bpf_dynptr_adjust(&ptr, 3, 2);                       /* start > end: -EINVAL */
    results[12] = bpf_dynptr_adjust(&ptr, 0, 5);                       /* past the size: -ERANGE */
    results[13] = bpf_dynptr_clone(&ptr, &copy);
    char first = 0;
    results[14] = bpf_dynptr_read(&first, 1, &copy, 0, 0);
    results[15] = first;
    results[16] = bpf_dynptr_from_mem(buffer, sizeof(buffer), 1, &ptr); /* flags: -EINVAL */
    results[17] = bpf_dynptr_is_null(&ptr);
    results[18] = bpf_dynptr_read(&first, 1, &ptr, 0, 0);              /* NULL dynptr: -EINVAL */
    return 0;
}

long ring_results[4];

SEC("syscall")
int ring_dynptr(void *ctx)
{
    struct bpf_dynptr ptr;
    __u64 value = 0x1122334455667788ULL;

    ring_results[0] = bpf_ringbuf_reserve_dynptr(&events, 8, 0, &ptr);
    ring_results[1] = bpf_dynptr_write(&ptr, 0, &value, sizeof(value), 0);
    bpf_ringbuf_submit_dynptr(&ptr, 0);
    ring_results[2] = bpf_ringbuf_reserve_dynptr(&events, 8, 1, &ptr);  /* flags: -EINVAL */
    bpf_ringbuf_discard_dynptr(&ptr, 0);
    ring_results[3] = bpf_ringbuf_reserve_dynptr(&events, 8192, 0, &ptr); /* no room: -EINVAL, not -EAGAIN */
    bpf_ringbuf_discard_dynptr(&ptr, 0);
    return 0;
}

char _license[] SEC("license") = "GPL";
