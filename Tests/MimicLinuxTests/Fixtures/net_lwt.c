/*
 * bpf_skb_get_xfrm_state (tc) and bpf_lwt_push_encap (lwt_in, lwt_xmit), compared with the
 * kernel (FixtureComparisonTests): every result goes to `results`. The kernel's test run
 * carries no xfrm state (-EINVAL, the buffer zeroed), nor does Mimic's default network.
 *
 * Only what a test run can do safely runs in the kernel: lwt_xmit's IP encapsulation needs
 * the packet's route (the test run has none), and SRv6 encapsulation and SEG6_INLINE on an
 * IPv6 packet need a route too, so those calls appear only with arguments the kernel refuses
 * first. net_seg6.c has the rest, tested in Mimic. (A kernel built without
 * CONFIG_IPV6_SEG6_BPF answers every SRv6 type with -EINVAL, so the SRv6 calls here are ones
 * both kinds of kernel refuse with -EINVAL.)
 */
#include "netprogs.h"

typedef long long __s64;
#define TC_ACT_OK 0

static long (*bpf_skb_get_xfrm_state)(struct __sk_buff *skb, __u32 index, void *state, __u32 size, __u64 flags) = (void *)66;
static long (*bpf_lwt_push_encap)(struct __sk_buff *skb, __u32 type, void *hdr, __u32 len) = (void *)73;

#define BPF_LWT_ENCAP_SEG6 0
#define BPF_LWT_ENCAP_SEG6_INLINE 1
#define BPF_LWT_ENCAP_IP 2

struct bpf_xfrm_state {
    __u32 reqid;
    __u32 spi;
    __u16 family;
    __u16 ext;
    union {
        __u32 remote_ipv4;
        __u32 remote_ipv6[4];
    };
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __s64);
} results SEC(".maps");

static __attribute__((always_inline)) void put(__u32 index, __s64 value) {
    bpf_map_update_elem(&results, &index, &value, 0);
}

/* A header buffer in global memory: 264 bytes, more than LWT_BPF_MAX_HEADROOM (256). */
__u8 big[264];

SEC("tc")
int tc_xfrm(struct __sk_buff *skb) {
    struct bpf_xfrm_state state;
    __builtin_memset(&state, 0x5a, sizeof(state));
    put(0, bpf_skb_get_xfrm_state(skb, 0, &state, sizeof(state), 0));
    put(1, state.reqid | state.spi | state.family | state.remote_ipv6[3]);
    put(2, bpf_skb_get_xfrm_state(skb, 0, &state, sizeof(state), 1));
    put(3, bpf_skb_get_xfrm_state(skb, 0, &state, 20, 0));
    put(4, bpf_skb_get_xfrm_state(skb, 5, &state, sizeof(state), 0));
    return TC_ACT_OK;
}

/* An SRH with one segment (fd00::9): 24 bytes, hdrlen 2, type 4, segments_left 0. */
static __attribute__((always_inline)) void srh(__u8 *h) {
    __builtin_memset(h, 0, 24);
    h[1] = 2;
    h[2] = 4;
    h[4] = 0;
    h[8] = 0xfd;
    h[23] = 9;
}

/* An outer IPv4 header from 192.0.2.1 to 192.0.2.2, protocol 4 (IP in IP), checksum 0. */
static __attribute__((always_inline)) void outer4(__u8 *h, __u16 total) {
    __builtin_memset(h, 0, 20);
    h[0] = 0x45;
    h[2] = total >> 8;
    h[3] = total & 0xff;
    h[8] = 64;
    h[9] = 4;
    h[12] = 192; h[13] = 0; h[14] = 2; h[15] = 1;
    h[16] = 192; h[17] = 0; h[18] = 2; h[19] = 2;
}

SEC("lwt_in")
int lwt_in_encap(struct __sk_buff *skb) {
    __u8 h[40];
    __u8 s[24];
    outer4(h, 20 + skb->len);
    put(0, bpf_lwt_push_encap(skb, 7, h, 20));
    put(1, bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_IP, h, 16));
    h[0] = 0x55;
    put(2, bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_IP, h, 20));
    h[0] = 0x46; /* ihl 6: 24 bytes, more than given */
    put(3, bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_IP, h, 20));
    h[0] = 0x60; /* IPv6 needs 40 bytes */
    put(4, bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_IP, h, 24));
    put(5, bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_IP, big, sizeof(big)));
    srh(s);
    s[2] = 3; /* not type 4: no valid SRH */
    put(6, bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_SEG6, s, 24));
    put(7, bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_SEG6_INLINE, s, 24));
    s[2] = 4;
    put(8, bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_SEG6, s, 16)); /* hdrlen says 24 */
    outer4(h, 20 + skb->len);
    put(10, bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_IP, h, 20));
    put(11, skb->len);
    put(12, skb->protocol);
    return BPF_OK;
}

/* An outer IPv6 header (fd00::1 -> fd00::2, next header 4) pushed on lwt_in. */
SEC("lwt_in")
int lwt_in_encap6(struct __sk_buff *skb) {
    __u8 h[40];
    __builtin_memset(h, 0, 40);
    h[0] = 0x60;
    __u16 payload = skb->len;
    h[4] = payload >> 8;
    h[5] = payload & 0xff;
    h[6] = 4;
    h[7] = 64;
    h[8] = 0xfd; h[23] = 1;
    h[24] = 0xfd; h[39] = 2;
    put(0, bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_IP, h, 40));
    put(1, skb->len);
    put(2, skb->protocol);
    return BPF_OK;
}

/* lwt_xmit takes only BPF_LWT_ENCAP_IP. */
SEC("lwt_xmit")
int lwt_xmit_encap(struct __sk_buff *skb) {
    __u8 h[24];
    __builtin_memset(h, 0, 24);
    srh(h);
    put(0, bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_SEG6, h, 24));
    put(1, bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_SEG6_INLINE, h, 24));
    h[0] = 0x45;
    put(2, bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_IP, h, 12));
    h[0] = 0x75;
    put(3, bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_IP, h, 20));
    return BPF_OK;
}

