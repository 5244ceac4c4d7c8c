/* The socket lookups against a network namespace's sockets (NetworkNamespaceTests): each entry
 * of `queries` (a tuple, its length, the lookup, netns and flags; kind 0xFF ends the list) is
 * looked up and `answers` gets what the socket shows (family, type, protocol, state, ports,
 * addresses, bound device) and whether bpf_sk_fullsock, bpf_tcp_sock and bpf_get_listener_sock
 * answer; every reference is released. */
#include "net_lookup.h"

#define QUERIES 24

struct query {
    struct bpf_sock_tuple tuple;
    __u32 length;
    __u32 kind; /* 0 sk_lookup_tcp, 1 sk_lookup_udp, 2 skc_lookup_tcp, 0xFF the end */
    __u64 netns;
    __u64 flags;
};

struct answer {
    __u32 found;
    __u32 bound_dev_if;
    __u32 family;
    __u32 type;
    __u32 protocol;
    __u32 state;
    __u32 src_ip4;
    __u32 src_ip6[4];
    __u32 src_port;
    __u32 dst_port;
    __u32 dst_ip4;
    __u32 dst_ip6[4];
    __u32 full;
    __u32 tcp;
    __u32 listener;
    __u32 casts; /* bpf_skc_to_tcp_sock 1, tcp6 2, udp6 4, tcp_timewait 8, tcp_request 16 */
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, QUERIES);
    __type(key, __u32);
    __type(value, struct query);
} queries SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, QUERIES);
    __type(key, __u32);
    __type(value, struct answer);
} answers SEC(".maps");

/* What a socket shows; each lookup kind reads its own result (the verifier wants one pointer
 * type per load instruction). tc programs also ask bpf_sk_fullsock, bpf_tcp_sock and
 * bpf_get_listener_sock, which XDP programs may not call. */
#define RECORD(sk, answer, is_tc)                                    \
    do {                                                             \
        (answer).found = 1;                                          \
        (answer).bound_dev_if = (sk)->bound_dev_if;                  \
        (answer).family = (sk)->family;                              \
        (answer).state = (sk)->state;                                \
        (answer).src_ip4 = (sk)->src_ip4;                            \
        (answer).src_port = (sk)->src_port;                          \
        (answer).dst_port = (sk)->dst_port;                          \
        (answer).dst_ip4 = (sk)->dst_ip4;                            \
        for (int w = 0; w < 4; w++) {                                \
            (answer).src_ip6[w] = (sk)->src_ip6[w];                  \
            (answer).dst_ip6[w] = (sk)->dst_ip6[w];                  \
        }                                                            \
        if (is_tc) {                                                 \
            struct bpf_sock *full = bpf_sk_fullsock((void *)(sk));   \
            if (full) {                                              \
                (answer).full = 1;                                   \
                (answer).type = full->type;                          \
                (answer).protocol = full->protocol;                  \
            }                                                        \
            (answer).tcp = bpf_tcp_sock((void *)(sk)) != NULL;       \
            (answer).listener = bpf_get_listener_sock((void *)(sk)) != NULL; \
            (answer).casts = (bpf_skc_to_tcp_sock(sk) ? 1 : 0) | (bpf_skc_to_tcp6_sock(sk) ? 2 : 0) | \
                             (bpf_skc_to_udp6_sock(sk) ? 4 : 0) |                        \
                             (bpf_skc_to_tcp_timewait_sock(sk) ? 8 : 0) |                \
                             (bpf_skc_to_tcp_request_sock(sk) ? 16 : 0);                 \
        }                                                            \
        bpf_sk_release(sk);                                          \
    } while (0)

static __always_inline void lookups(void *ctx, int is_tc)
{
    for (__u32 i = 0; i < QUERIES; i++) {
        __u32 key = i;
        struct query *query = bpf_map_lookup_elem(&queries, &key);
        if (!query || query->kind == 0xFF)
            break;
        struct answer answer = {};
        struct bpf_sock_tuple tuple = query->tuple;
        __u32 length = query->length;
        if (length > sizeof(tuple))
            length = sizeof(tuple);
        if (query->kind == 0) {
            struct bpf_sock *sk = bpf_sk_lookup_tcp(ctx, &tuple, length, query->netns, query->flags);
            if (sk)
                RECORD(sk, answer, is_tc);
            asm volatile("/* tcp */" ::: "memory"); /* keeps clang from merging the branches */
        } else if (query->kind == 1) {
            struct bpf_sock *sk = bpf_sk_lookup_udp(ctx, &tuple, length, query->netns, query->flags);
            if (sk)
                RECORD(sk, answer, is_tc);
            asm volatile("/* udp */" ::: "memory"); /* keeps clang from merging the branches */
        } else {
            struct bpf_sock *sk = bpf_skc_lookup_tcp(ctx, &tuple, length, query->netns, query->flags);
            if (sk)
                RECORD(sk, answer, is_tc);
            asm volatile("/* skc */" ::: "memory"); /* keeps clang from merging the branches */
        }
        bpf_map_update_elem(&answers, &key, &answer, BPF_ANY);
    }
}

SEC("xdp")
int xdp_socket(struct xdp_md *ctx)
{
    lookups(ctx, 0);
    return XDP_PASS;
}

SEC("tc")
int tc_socket(struct __sk_buff *skb)
{
    lookups(skb, 1);
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";

/* SYN cookies on the listener 10.1.0.1:8080: `cookies[i]` is the i-th call's result; for a
 * generated cookie only its MSS (the high 32 bits) and sign, since the cookie hashes with the
 * kernel's boot-time secret. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __s64);
} cookies SEC(".maps");

static __always_inline void record(__u32 index, __s64 value)
{
    bpf_map_update_elem(&cookies, &index, &value, BPF_ANY);
}

/* The 16 bits after ack_seq, as they lie in memory: data offset, then the flags byte. */
#define TCP_FLAGS(doff, flags) ((__u16)((doff) << 4 | (flags) << 8))

static __always_inline __s64 mss_of(__s64 rc)
{
    return rc < 0 ? rc : rc >> 32;
}

SEC("tc")
int tc_syncookie(struct __sk_buff *skb)
{
    struct bpf_sock_tuple tuple = {};
    tuple.ipv4.saddr = bpf_htonl(0x0A010032); /* 10.1.0.50:1234 -> 10.1.0.1:8080 */
    tuple.ipv4.daddr = bpf_htonl(0x0A010001);
    tuple.ipv4.sport = bpf_htons(1234);
    tuple.ipv4.dport = bpf_htons(8080);
    struct bpf_sock *sk = bpf_sk_lookup_tcp(skb, &tuple, sizeof(tuple.ipv4), 0xFFFFFFFFFFFFFFFFULL, 0);
    if (!sk)
        return TC_ACT_SHOT;
    struct iphdr ip = {};
    ip.version = 4;
    ip.ihl = 5;
    ip.protocol = IPPROTO_TCP;
    ip.saddr = tuple.ipv4.saddr;
    ip.daddr = tuple.ipv4.daddr;
    struct {
        struct tcphdr th;
        __u8 options[4];
    } syn = {};
    syn.th.source = tuple.ipv4.sport;
    syn.th.dest = tuple.ipv4.dport;
    syn.th.seq = bpf_htonl(1000);
    syn.th.flags = TCP_FLAGS(6, 2); /* doff 6, SYN */
    syn.options[0] = 2; /* MSS 1400 */
    syn.options[1] = 4;
    syn.options[2] = 1400 >> 8;
    syn.options[3] = 1400 & 0xFF;
    record(0, mss_of(bpf_tcp_gen_syncookie(sk, &ip, sizeof(ip), &syn.th, sizeof(syn))));
    record(1, mss_of(bpf_tcp_gen_syncookie(sk, &ip, sizeof(ip), &syn.th, 20)));  /* th_len != doff * 4 */
    record(2, mss_of(bpf_tcp_gen_syncookie(sk, &ip, 19, &syn.th, sizeof(syn)))); /* iph too short */
    ip.version = 5;
    record(3, mss_of(bpf_tcp_gen_syncookie(sk, &ip, sizeof(ip), &syn.th, sizeof(syn)))); /* -EPROTONOSUPPORT */
    ip.version = 4;
    syn.th.flags = TCP_FLAGS(5, 2);
    record(4, mss_of(bpf_tcp_gen_syncookie(sk, &ip, sizeof(ip), &syn.th, 20)));  /* no MSS option */
    syn.th.flags = TCP_FLAGS(5, 2 | 16);
    record(5, mss_of(bpf_tcp_gen_syncookie(sk, &ip, sizeof(ip), &syn.th, 20)));  /* SYN+ACK: -EINVAL */
    record(6, bpf_tcp_check_syncookie(sk, &ip, sizeof(ip), &syn.th, 20));      /* SYN set: -ENOENT */
    syn.th.flags = TCP_FLAGS(5, 16); /* ACK */
    syn.th.ack_seq = bpf_htonl(12345);
    record(7, bpf_tcp_check_syncookie(sk, &ip, sizeof(ip), &syn.th, 20));      /* no such cookie */
    record(8, bpf_tcp_check_syncookie(sk, &ip, sizeof(ip), &syn.th, 19));      /* th too short */
    record(9, bpf_tcp_check_syncookie(sk, &ip, 19, &syn.th, 20));              /* iph too short */
    bpf_sk_release(sk);
    return TC_ACT_OK;
}
