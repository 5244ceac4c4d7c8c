/* The socket-less SYN cookie helpers (bpf_tcp_raw_gen_syncookie_ipv4/6,
 * bpf_tcp_raw_check_syncookie_ipv4/6), compared with the kernel (FixtureComparisonTests) and
 * checked in Mimic (SyncookieTests). The kernel hashes cookies with a secret chosen at boot, so
 * `results` holds only what does not depend on it: the MSS each cookie encodes (the kernel's
 * table), the error codes, and whether a cookie checks (a round trip gen -> check is 0, a cookie
 * with its minute counter flipped or of another port -EACCES). */
#include "../../../Examples/mimic_bpf.h"

static __s64 (*bpf_tcp_raw_gen_syncookie_ipv4)(void *iph, void *th, __u32 th_len) = (void *)204;
static __s64 (*bpf_tcp_raw_gen_syncookie_ipv6)(void *iph, void *th, __u32 th_len) = (void *)205;
static long (*bpf_tcp_raw_check_syncookie_ipv4)(void *iph, void *th) = (void *)206;
static long (*bpf_tcp_raw_check_syncookie_ipv6)(void *iph, void *th) = (void *)207;
static void *(*bpf_sk_lookup_tcp)(void *ctx, void *tuple, __u32 tuple_size, __u64 netns, __u64 flags) = (void *)84;
static long (*bpf_sk_release)(void *sock) = (void *)86;
static __s64 (*bpf_tcp_gen_syncookie)(void *sk, void *iph, __u32 iph_len, void *th, __u32 th_len) = (void *)110;
static long (*bpf_tcp_check_syncookie)(void *sk, void *iph, __u32 iph_len, void *th, __u32 th_len) = (void *)100;

struct ipv4_tuple {
    __be32 saddr, daddr;
    __be16 sport, dport;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 24);
    __type(key, __u32);
    __type(value, __s64);
} results SEC(".maps");

static __always_inline void put(__u32 index, __s64 value)
{
    bpf_map_update_elem(&results, &index, &value, BPF_ANY);
}

static __always_inline __s64 mss_of(__s64 rc)
{
    return rc < 0 ? rc : rc >> 32;
}

/* The 16 bits after ack_seq, as they lie in memory: data offset, then the flags byte. */
#define TCP_FLAGS(doff, flags) ((__u16)((doff) << 4 | (flags) << 8))
#define SYN 2
#define ACK 16

/* A TCP header with up to two MSS options (8 bytes of options). */
struct segment {
    struct tcphdr th;
    __u8 options[8];
};

static __always_inline void mss_option(struct segment *s, int at, __u16 mss)
{
    s->options[at] = 2;
    s->options[at + 1] = 4;
    s->options[at + 2] = mss >> 8;
    s->options[at + 3] = mss & 0xFF;
}

static __always_inline void syn(struct segment *s, __u16 mss)
{
    __builtin_memset(s, 0, sizeof(*s));
    s->th.source = bpf_htons(1234);
    s->th.dest = bpf_htons(8080);
    s->th.seq = bpf_htonl(1000);
    s->th.flags = TCP_FLAGS(6, SYN);
    mss_option(s, 0, mss);
}

/* The ACK completing a handshake whose SYN-ACK carried `cookie`. */
static __always_inline void ack(struct segment *s, __u32 cookie)
{
    s->th.seq = bpf_htonl(1001);
    s->th.ack_seq = bpf_htonl(cookie + 1);
    s->th.flags = TCP_FLAGS(5, ACK);
}

SEC("xdp")
int xdp_raw_syncookie(struct xdp_md *ctx)
{
    struct iphdr ip = {};
    ip.version = 4;
    ip.ihl = 5;
    ip.protocol = 6;
    ip.saddr = bpf_htonl(0x0A010032); /* 10.1.0.50 -> 10.1.0.1 */
    ip.daddr = bpf_htonl(0x0A010001);
    struct segment s;

    syn(&s, 1400);
    __s64 rc = bpf_tcp_raw_gen_syncookie_ipv4(&ip, &s.th, 24);
    put(0, mss_of(rc));                                                  /* 1300 */
    put(1, mss_of(bpf_tcp_raw_gen_syncookie_ipv4(&ip, &s.th, 20)));     /* th_len != doff * 4: -EINVAL */
    put(2, mss_of(bpf_tcp_raw_gen_syncookie_ipv4(&ip, &s.th, 19)));     /* shorter than a header: -EINVAL */
    __s64 again = bpf_tcp_raw_gen_syncookie_ipv4(&ip, &s.th, 24);
    put(3, (__u32)again == (__u32)rc);                                    /* the same minute: the same cookie */
    ack(&s, (__u32)rc);
    put(4, bpf_tcp_raw_check_syncookie_ipv4(&ip, &s.th));               /* 0 */
    s.th.ack_seq = bpf_htonl(((__u32)rc ^ 0x80000000) + 1);
    put(5, bpf_tcp_raw_check_syncookie_ipv4(&ip, &s.th));               /* counter too old: -EACCES */
    s.th.ack_seq = bpf_htonl((__u32)rc + 1);
    s.th.source = bpf_htons(1235);
    put(6, bpf_tcp_raw_check_syncookie_ipv4(&ip, &s.th));               /* another flow: -EACCES */

    syn(&s, 1460);
    put(7, mss_of(bpf_tcp_raw_gen_syncookie_ipv4(&ip, &s.th, 24)));     /* 1460 */
    syn(&s, 100);
    put(8, mss_of(bpf_tcp_raw_gen_syncookie_ipv4(&ip, &s.th, 24)));     /* 536 */
    syn(&s, 9000);
    put(9, mss_of(bpf_tcp_raw_gen_syncookie_ipv4(&ip, &s.th, 24)));     /* 1460 */
    syn(&s, 1440);
    s.th.flags = TCP_FLAGS(7, SYN);
    mss_option(&s, 4, 0); /* a zero MSS is skipped: 1440 stays */
    put(10, mss_of(bpf_tcp_raw_gen_syncookie_ipv4(&ip, &s.th, 28)));    /* 1440 */
    mss_option(&s, 4, 1300); /* the last MSS option counts */
    put(11, mss_of(bpf_tcp_raw_gen_syncookie_ipv4(&ip, &s.th, 28)));    /* 1300 */
    syn(&s, 1400);
    s.th.flags = TCP_FLAGS(5, SYN);
    put(12, mss_of(bpf_tcp_raw_gen_syncookie_ipv4(&ip, &s.th, 20)));    /* no option: 536 */

    __u8 ip6[40] = {0x60, 0, 0, 0, 0, 20, 6, 64,
                    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x50,  /* 2001:db8::50 */
                    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01}; /* 2001:db8::1 */
    syn(&s, 1400);
    rc = bpf_tcp_raw_gen_syncookie_ipv6(ip6, &s.th, 24);
    put(13, mss_of(rc));                                                 /* 1220 */
    put(14, mss_of(bpf_tcp_raw_gen_syncookie_ipv6(ip6, &s.th, 28)));    /* -EINVAL */
    ack(&s, (__u32)rc);
    put(15, bpf_tcp_raw_check_syncookie_ipv6(ip6, &s.th));              /* 0 */
    s.th.ack_seq = bpf_htonl(((__u32)rc ^ 0x80000000) + 1);
    put(16, bpf_tcp_raw_check_syncookie_ipv6(ip6, &s.th));              /* -EACCES */
    syn(&s, 9000);
    put(17, mss_of(bpf_tcp_raw_gen_syncookie_ipv6(ip6, &s.th, 24)));    /* 8940 */
    syn(&s, 1500);
    put(18, mss_of(bpf_tcp_raw_gen_syncookie_ipv6(ip6, &s.th, 24)));    /* 1440 */
    syn(&s, 1400);
    s.th.flags = TCP_FLAGS(5, SYN);
    put(19, mss_of(bpf_tcp_raw_gen_syncookie_ipv6(ip6, &s.th, 20)));    /* no option: 1220 */
    return XDP_PASS;
}

/* The listener helpers share the cookie: on a listener at 10.1.0.1:8080 whose SYN queue overflowed
 * (SyncookieTests gives Mimic one; the kernel's test run has none, so the lookup fails and
 * results[20] is -1 in both), a generated cookie checks (0), a stale one does not (-EACCES), and a
 * raw check of the same ACK agrees (the secret and counter are the same). */
SEC("xdp")
int xdp_listener_syncookie(struct xdp_md *ctx)
{
    struct ipv4_tuple tuple = {bpf_htonl(0x0A010032), bpf_htonl(0x0A010001), bpf_htons(1234), bpf_htons(8080)};
    void *sk = bpf_sk_lookup_tcp(ctx, &tuple, sizeof(tuple), (__u64)-1, 0);
    if (!sk) {
        put(20, -1);
        return XDP_PASS;
    }
    struct iphdr ip = {};
    ip.version = 4;
    ip.ihl = 5;
    ip.protocol = 6;
    ip.saddr = tuple.saddr;
    ip.daddr = tuple.daddr;
    struct segment s;
    syn(&s, 1440);
    __s64 rc = bpf_tcp_gen_syncookie(sk, &ip, sizeof(ip), &s.th, 24);
    put(20, mss_of(rc));                                                  /* 1440 */
    ack(&s, (__u32)rc);
    put(21, bpf_tcp_check_syncookie(sk, &ip, sizeof(ip), &s.th, 20));    /* 0 */
    put(22, bpf_tcp_raw_check_syncookie_ipv4(&ip, &s.th));               /* 0: the same cookie */
    s.th.ack_seq = bpf_htonl(((__u32)rc ^ 0x80000000) + 1);
    put(23, bpf_tcp_check_syncookie(sk, &ip, sizeof(ip), &s.th, 20));    /* -EACCES */
    bpf_sk_release(sk);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
