/*
 * lwt_seg6local (End.BPF) programs and the seg6local helpers, on an IPv6 packet whose segment
 * routing header (at offset 40) End.BPF has advanced before the program runs
 * (NetworkHelperTests.seg6local). Every result goes to `results`. The kernel's test run has no
 * SRH state for these helpers (its per-CPU state is End.BPF's), so only its verifier sees them
 * (LWTKernelTests).
 */
#include "netprogs.h"

typedef long long __s64;
#define BPF_REDIRECT 7

static long (*bpf_lwt_seg6_store_bytes)(struct __sk_buff *skb, __u32 offset, const void *from, __u32 len) = (void *)74;
static long (*bpf_lwt_seg6_adjust_srh)(struct __sk_buff *skb, __u32 offset, __s32 delta) = (void *)75;
static long (*bpf_lwt_push_encap)(struct __sk_buff *skb, __u32 type, void *hdr, __u32 len) = (void *)73;
static long (*bpf_lwt_seg6_action)(struct __sk_buff *skb, __u32 action, void *param, __u32 param_len) = (void *)76;

#define END_X 2
#define END_T 3
#define END_DT6 7
#define END_B6 9
#define END_B6_ENCAP 10

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __s64);
} results SEC(".maps");

static __attribute__((always_inline)) void put(__u32 index, __s64 value) {
    bpf_map_update_elem(&results, &index, &value, 0);
}

/* Where the SRH's fields lie from data: the IPv6 header is 40 bytes. */
#define SRH 40

/* Tags the packet, then tries to write where the helper refuses: the segment list, the next
 * header, and across the SRH's end; then End.T to table 100 (missing unless the network has
 * it) and End.X to a next hop. Returns BPF_REDIRECT when End.X found a route. */
SEC("lwt_seg6local")
int seg6_tag(struct __sk_buff *skb) {
    __u16 tag = bswap16(0x1234);
    put(0, bpf_lwt_seg6_store_bytes(skb, SRH + 6, &tag, 2));
    __u8 flags = 0;
    put(1, bpf_lwt_seg6_store_bytes(skb, SRH + 5, &flags, 1));
    __u8 junk[4] = {1, 2, 3, 4};
    put(2, bpf_lwt_seg6_store_bytes(skb, SRH + 8, junk, 4));
    put(3, bpf_lwt_seg6_store_bytes(skb, SRH, junk, 1));
    __u32 table = 100;
    put(4, bpf_lwt_seg6_action(skb, END_T, &table, 4));
    put(5, bpf_lwt_seg6_action(skb, END_T, &table, 3));
    __u8 nexthop[16] = {0xfd, 0, 0, 3};
    nexthop[15] = 7;
    long x = bpf_lwt_seg6_action(skb, END_X, nexthop, 16);
    put(6, x);
    put(7, bpf_lwt_seg6_action(skb, 42, nexthop, 16));
    return x == 0 ? BPF_REDIRECT : BPF_DROP;
}

/* Grows the SRH by an 8-byte PadN TLV (zeroed by the helper, filled in by store_bytes), which
 * End.BPF revalidates after the run; a write there marks the SRH for revalidation. Then
 * shrinks past the end (refused) and returns BPF_OK: End.BPF routes the packet. */
SEC("lwt_seg6local")
int seg6_grow(struct __sk_buff *skb) {
    __u8 *data = (void *)(long)skb->data;
    __u8 *end = (void *)(long)skb->data_end;
    if (data + SRH + 8 > end) return BPF_DROP;
    __u32 tlvs = SRH + 8 + ((data[SRH + 4] + 1) << 4);
    if (tlvs > 200) return BPF_DROP;
    put(0, bpf_lwt_seg6_adjust_srh(skb, tlvs, 8));
    __u8 pad[8] = {4, 6};
    put(1, bpf_lwt_seg6_store_bytes(skb, tlvs, pad, 8));
    put(2, bpf_lwt_seg6_adjust_srh(skb, tlvs + 8, -8));
    put(3, bpf_lwt_seg6_adjust_srh(skb, tlvs - 16, 8));
    put(4, skb->len);
    return BPF_OK;
}

/* Leaves the SRH invalid (a 4-byte TLV area no TLV fills), so End.BPF drops the packet. */
SEC("lwt_seg6local")
int seg6_break(struct __sk_buff *skb) {
    __u8 *data = (void *)(long)skb->data;
    __u8 *end = (void *)(long)skb->data_end;
    if (data + SRH + 8 > end) return BPF_DROP;
    __u32 tlvs = SRH + 8 + ((data[SRH + 4] + 1) << 4);
    if (tlvs > 200) return BPF_DROP;
    put(0, bpf_lwt_seg6_adjust_srh(skb, tlvs, 4));
    __u8 nexthop[16] = {0xfd, 0, 0, 3};
    put(1, bpf_lwt_seg6_action(skb, END_X, nexthop, 16));
    return BPF_OK;
}

/* End.B6 inserts a second SRH (segment fd00:4::1), End.DT6 would need an inner IPv6 packet. */
SEC("lwt_seg6local")
int seg6_bind(struct __sk_buff *skb) {
    __u32 table = 254;
    put(0, bpf_lwt_seg6_action(skb, END_DT6, &table, 4));
    __u8 s[24];
    __builtin_memset(s, 0, 24);
    s[1] = 2;
    s[2] = 4;
    s[8] = 0xfd; s[10] = 0; s[11] = 4; s[23] = 1;
    put(1, bpf_lwt_seg6_action(skb, END_B6, s, 24));
    put(2, skb->len);
    s[2] = 3;
    put(3, bpf_lwt_seg6_action(skb, END_B6_ENCAP, s, 24));
    return BPF_OK;
}

/* End.B6.Encaps: an outer IPv6 header with the SRH around the whole packet. */
SEC("lwt_seg6local")
int seg6_encap(struct __sk_buff *skb) {
    __u8 s[24];
    __builtin_memset(s, 0, 24);
    s[1] = 2;
    s[2] = 4;
    s[8] = 0xfd; s[11] = 4; s[23] = 1;
    put(0, bpf_lwt_seg6_action(skb, END_B6_ENCAP, s, 24));
    put(1, skb->len);
    return BPF_OK;
}

/* lwt_in SRv6 encapsulations: SEG6_INLINE (an IPv6 packet only), then SEG6 (an outer IPv6 header,
 * next header 41 whatever the inner packet). Its section is none libbpf knows, so no kernel
 * comparison test-runs it (the kernel's SRv6 encapsulation reads the packet's route, which a
 * test run does not have: it would dereference a NULL dst); the tests run it as lwt_in. */
SEC("mimic_lwt_in")
int lwt_in_srv6(struct __sk_buff *skb) {
    __u8 s[24];
    __builtin_memset(s, 0, 24);
    s[1] = 2;
    s[2] = 4;
    s[8] = 0xfd; s[11] = 4; s[23] = 1;
    put(0, bpf_lwt_push_encap(skb, 1, s, 24)); /* -EBADMSG on an IPv4 packet */
    put(1, bpf_lwt_push_encap(skb, 0, s, 24));
    put(2, skb->len);
    put(3, skb->protocol);
    return BPF_OK;
}
