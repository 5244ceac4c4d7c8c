/* Packet dynptrs (bpf_dynptr_from_skb / _xdp: reads, writes into the packet, slices, flags), the
 * XDP metadata kfuncs, and per-CPU objects (bpf_percpu_obj_new / _drop). The tc and XDP programs
 * are compared with the kernel (FixtureComparisonTests): every result goes to `results` (.bss);
 * each writes two bytes through a dynptr and two through a writable slice. */
#include "../../../Examples/mimic_bpf.h"

#define __ksym __attribute__((section(".ksyms")))
#define bpf_core_type_id_local(type) __builtin_btf_type_id(*(typeof(type) *)0, 0)

struct bpf_dynptr { __u64 __opaque[2]; } __attribute__((aligned(8)));

static long (*bpf_dynptr_read)(void *dst, __u32 len, const struct bpf_dynptr *src, __u32 offset, __u64 flags) = (void *)201;
static long (*bpf_dynptr_write)(const struct bpf_dynptr *dst, __u32 offset, void *src, __u32 len, __u64 flags) = (void *)202;
static void *(*bpf_per_cpu_ptr)(const void *percpu_ptr, __u32 cpu) = (void *)153;
static void *(*bpf_this_cpu_ptr)(const void *percpu_ptr) = (void *)154;

extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags, struct bpf_dynptr *ptr__uninit) __ksym;
extern int bpf_dynptr_from_xdp(struct xdp_md *xdp, __u64 flags, struct bpf_dynptr *ptr__uninit) __ksym;
extern void *bpf_dynptr_slice(const struct bpf_dynptr *p, __u32 offset, void *buffer__opt, __u32 buffer__szk) __ksym;
extern void *bpf_dynptr_slice_rdwr(const struct bpf_dynptr *p, __u32 offset, void *buffer__opt, __u32 buffer__szk) __ksym;
extern _Bool bpf_dynptr_is_null(const struct bpf_dynptr *p) __ksym;
extern _Bool bpf_dynptr_is_rdonly(const struct bpf_dynptr *p) __ksym;
extern __u32 bpf_dynptr_size(const struct bpf_dynptr *p) __ksym;
extern int bpf_xdp_metadata_rx_hash(const struct xdp_md *ctx, __u32 *hash, __u32 *rss_type) __ksym;
extern int bpf_xdp_metadata_rx_timestamp(const struct xdp_md *ctx, __u64 *timestamp) __ksym;
extern int bpf_xdp_metadata_rx_vlan_tag(const struct xdp_md *ctx, __u16 *vlan_proto, __u16 *vlan_tci) __ksym;
extern void *bpf_percpu_obj_new_impl(__u64 local_type_id, void *meta) __ksym;
extern void bpf_percpu_obj_drop_impl(void *kptr, void *meta) __ksym;

long results[16];
long xdp_results[20];
long percpu_results[6];

/* The results every packet dynptr gives; `out` is results or xdp_results. The kernel refuses
 * bpf_dynptr_slice_rdwr in these programs as the oracle loads them (without the program's BTF),
 * so the *_rdwr programs, which also write through a slice, run in Mimic only. */
static __always_inline void exercise(struct bpf_dynptr *ptr, long *out, const int rdwr)
{
    __u8 buf[6] = {};
    __u8 mark[2] = {0xAB, 0xCD};
    __u8 *bytes;
    __u32 size = bpf_dynptr_size(ptr);

    out[1] = size;
    out[2] = bpf_dynptr_is_rdonly(ptr);
    out[3] = bpf_dynptr_read(buf, 6, ptr, 6, 0);
    out[4] = buf[0] | buf[5] << 8;
    out[5] = bpf_dynptr_read(buf, 4, ptr, size - 2, 0);
    out[6] = bpf_dynptr_read(buf, 2, ptr, 0, 1);
    out[7] = bpf_dynptr_write(ptr, 0, mark, 2, 0);
    out[8] = bpf_dynptr_write(ptr, 0, mark, 2, 4);
    bytes = bpf_dynptr_slice(ptr, 0, NULL, 14);
    out[9] = bytes ? (bytes[0] << 24 | bytes[1] << 16 | bytes[12] << 8 | bytes[13]) : -1;
    bytes = rdwr ? bpf_dynptr_slice_rdwr(ptr, 2, NULL, 2) : NULL;
    if (bytes) {
        bytes[0] = 0x11;
        bytes[1] = 0x22;
        out[10] = 1;
    }
    out[11] = bpf_dynptr_slice(ptr, 4000, NULL, 8) == NULL;
}

static __always_inline int skb_dynptrs(struct __sk_buff *skb, const int rdwr)
{
    struct bpf_dynptr ptr, bad;

    results[0] = bpf_dynptr_from_skb(skb, 0, &ptr);
    exercise(&ptr, results, rdwr);
    results[12] = bpf_dynptr_from_skb(skb, 1, &bad);
    results[13] = bpf_dynptr_is_null(&bad);
    return 0;
}

static __always_inline int xdp_dynptrs(struct xdp_md *ctx, const int rdwr)
{
    struct bpf_dynptr ptr, bad;

    xdp_results[0] = bpf_dynptr_from_xdp(ctx, 0, &ptr);
    exercise(&ptr, xdp_results, rdwr);
    xdp_results[12] = bpf_dynptr_from_xdp(ctx, 2, &bad);
    xdp_results[13] = bpf_dynptr_is_null(&bad);
    return XDP_PASS;
}

SEC("tc")
int tc_dynptr(struct __sk_buff *skb) { return skb_dynptrs(skb, 0); }

SEC("tc")
int tc_dynptr_rdwr(struct __sk_buff *skb) { return skb_dynptrs(skb, 1); }

SEC("xdp")
int xdp_dynptr(struct xdp_md *ctx) { return xdp_dynptrs(ctx, 0); }

SEC("xdp")
int xdp_dynptr_rdwr(struct xdp_md *ctx) { return xdp_dynptrs(ctx, 1); }

/* The kernel's verifier takes the metadata kfuncs only in device-bound programs: Mimic only. */
SEC("xdp")
int xdp_metadata(struct xdp_md *ctx)
{
    __u32 hash = 1, type = 2;
    __u64 stamp = 3;
    __u16 proto = 4, tci = 5;

    xdp_results[14] = bpf_xdp_metadata_rx_hash(ctx, &hash, &type);
    xdp_results[15] = (long)hash << 32 | type;
    xdp_results[16] = bpf_xdp_metadata_rx_timestamp(ctx, &stamp);
    xdp_results[17] = stamp;
    xdp_results[18] = bpf_xdp_metadata_rx_vlan_tag(ctx, &proto, &tci);
    xdp_results[19] = (long)proto << 16 | tci;
    return XDP_PASS;
}

struct counter {
    long hits;
    long last;
};

SEC("syscall")
int percpu_objects(void *ctx)
{
    struct counter *all = bpf_percpu_obj_new_impl(bpf_core_type_id_local(struct counter), NULL);
    struct counter *mine, *first, *second;

    if (!all)
        return 1;
    first = bpf_per_cpu_ptr(all, 0);
    second = bpf_per_cpu_ptr(all, 1);
    mine = bpf_this_cpu_ptr(all);
    if (first) {
        first->hits = 5;
        first->last = 6;
    }
    if (second)
        second->hits = 7;
    percpu_results[0] = mine->hits;
    percpu_results[1] = second ? second->hits : -1;
    percpu_results[2] = first && second ? (long)second - (long)first : -1;
    percpu_results[3] = bpf_per_cpu_ptr(all, 4096) == NULL;
    bpf_percpu_obj_drop_impl(all, NULL);
    percpu_results[4] = 1;
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
