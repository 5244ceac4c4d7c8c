/* XDP networking helpers, compared with the kernel (FixtureComparisonTests): each helper's
 * results go to the `results` array; the program stores two bytes at the packet's start. */
#include "../../../Examples/mimic_bpf.h"

static long (*bpf_xdp_get_buff_len)(struct xdp_md *xdp_md) = (void *)188;
static long (*bpf_xdp_load_bytes)(struct xdp_md *xdp_md, __u32 offset, void *buf, __u32 len) = (void *)189;
static long (*bpf_xdp_store_bytes)(struct xdp_md *xdp_md, __u32 offset, void *buf, __u32 len) = (void *)190;
static long (*bpf_check_mtu)(void *ctx, __u32 ifindex, __u32 *mtu_len, __s32 len_diff, __u64 flags) = (void *)163;

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __s64);
} results SEC(".maps");

static __always_inline void put(__u32 index, __s64 value)
{
    bpf_map_update_elem(&results, &index, &value, BPF_ANY);
}

SEC("xdp")
int xdp_bytes(struct xdp_md *ctx)
{
    __u32 word = 0;
    __u8 bytes[8] = {};
    __u8 mark[2] = {0xAB, 0xCD};
    long len = bpf_xdp_get_buff_len(ctx);
    put(0, len);
    put(1, bpf_xdp_load_bytes(ctx, 12, &word, sizeof(word)));
    put(2, word);
    put(3, bpf_xdp_load_bytes(ctx, (__u32)len - 4, bytes, sizeof(bytes)));   /* past the end: -EINVAL */
    put(4, bpf_xdp_load_bytes(ctx, 0x10000, bytes, sizeof(bytes)));          /* offset > 0xffff: -EFAULT */
    put(5, bpf_xdp_load_bytes(ctx, (__u32)len - 8, bytes, sizeof(bytes)));   /* the last 8 bytes */
    put(6, *(__s64 *)bytes);
    put(7, bpf_xdp_store_bytes(ctx, 0, mark, sizeof(mark)));
    put(8, bpf_xdp_store_bytes(ctx, (__u32)len - 1, mark, sizeof(mark)));    /* -EINVAL */
    return XDP_PASS;
}

SEC("xdp")
int xdp_mtu(struct xdp_md *ctx)
{
    __u32 mtu = 0;
    put(0, bpf_check_mtu(ctx, 0, &mtu, 0, 0));          /* the ingress device (loopback) */
    put(1, mtu);
    mtu = 0;
    put(2, bpf_check_mtu(ctx, 1, &mtu, 70000, 0));      /* too long: FRAG_NEEDED */
    put(3, mtu);
    mtu = 65536;
    put(4, bpf_check_mtu(ctx, 0, &mtu, 0, 0));          /* an L3 length of exactly the MTU */
    mtu = 65537;
    put(5, bpf_check_mtu(ctx, 0, &mtu, 0, 0));
    mtu = 0;
    put(6, bpf_check_mtu(ctx, 0x7ff0, &mtu, 0, 0));     /* no such device: -ENODEV */
    put(7, bpf_check_mtu(ctx, 0, &mtu, 0, 1));          /* no flags for XDP: -EINVAL */
    put(8, bpf_check_mtu(ctx, 0, &mtu, -20, 0));
    return XDP_PASS;
}
