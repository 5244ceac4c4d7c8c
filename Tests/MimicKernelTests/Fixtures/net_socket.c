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
