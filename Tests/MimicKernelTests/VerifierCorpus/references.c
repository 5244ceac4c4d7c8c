/* Reference tracking: a socket from bpf_sk_lookup_tcp must be released on every path, and only
 * after the NULL check. */
#include "corpus.h"

/* Rejected: the socket reference is never released. */
SEC("tc")
int sk_lookup_unreleased(struct __sk_buff *skb)
{
    struct bpf_sock_tuple tuple = {};
    tuple.ipv4.dport = bpf_htons(80);
    struct bpf_sock *sk = bpf_sk_lookup_tcp(skb, &tuple, sizeof(tuple.ipv4), BPF_F_CURRENT_NETNS, 0);
    if (!sk)
        return TC_ACT_OK;
    return TC_ACT_SHOT;
}

/* Accepted twin: released before returning. */
SEC("tc")
int sk_lookup_released(struct __sk_buff *skb)
{
    struct bpf_sock_tuple tuple = {};
    tuple.ipv4.dport = bpf_htons(80);
    struct bpf_sock *sk = bpf_sk_lookup_tcp(skb, &tuple, sizeof(tuple.ipv4), BPF_F_CURRENT_NETNS, 0);
    if (!sk)
        return TC_ACT_OK;
    bpf_sk_release(sk);
    return TC_ACT_SHOT;
}

/* Rejected: released without the NULL check (bpf_sk_release wants a socket, not socket-or-NULL). */
SEC("tc")
int sk_release_unchecked(struct __sk_buff *skb)
{
    struct bpf_sock_tuple tuple = {};
    tuple.ipv4.dport = bpf_htons(80);
    struct bpf_sock *sk = bpf_sk_lookup_tcp(skb, &tuple, sizeof(tuple.ipv4), BPF_F_CURRENT_NETNS, 0);
    bpf_sk_release(sk);
    return TC_ACT_OK;
}

/* Accepted: a tuple size that is neither sizeof(tuple.ipv4) nor sizeof(tuple.ipv6) is not the
 * verifier's business (the helper returns NULL at run time); the 7 bytes are initialized stack. */
SEC("tc")
int sk_lookup_odd_tuple_size(struct __sk_buff *skb)
{
    struct bpf_sock_tuple tuple = {};
    struct bpf_sock *sk = bpf_sk_lookup_tcp(skb, &tuple, 7, BPF_F_CURRENT_NETNS, 0);
    if (sk)
        bpf_sk_release(sk);
    return TC_ACT_OK;
}
