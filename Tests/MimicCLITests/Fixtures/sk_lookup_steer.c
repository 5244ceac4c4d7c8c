/*
 * sk_lookup with bpf_sk_assign (issue 14), for `mimic run --pcap --out-dir`: as the kernel
 * selftests' test_sk_lookup.c do, TCP connection requests to 10.0.0.1 ports 80-89 are steered to
 * the socket in slot 0 of a sockmap (bpf_map_lookup_elem, bpf_sk_assign, bpf_sk_release); UDP to
 * port 53 is dropped; everything else is passed to the kernel's regular lookup. `steered`
 * counts the assignments.
 */
#include "mimic_bpf.h"

#define BPF_MAP_TYPE_SOCKMAP 15
#define SK_DROP 0
#define SK_PASS 1
#define AF_INET 2

struct bpf_sock;

struct bpf_sk_lookup {
    union { struct bpf_sock *sk; __u64 cookie; };
    __u32 family, protocol, remote_ip4;
    __u32 remote_ip6[4];
    __be16 remote_port;
    __u16 :16;
    __u32 local_ip4;
    __u32 local_ip6[4];
    __u32 local_port, ingress_ifindex;
};

static long (*bpf_sk_assign)(void *ctx, void *sk, __u64 flags) = (void *)124;
static long (*bpf_sk_release)(void *sk) = (void *)86;

struct {
    __uint(type, BPF_MAP_TYPE_SOCKMAP);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} redir_map SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} steered SEC(".maps");

SEC("sk_lookup")
int steer(struct bpf_sk_lookup *ctx) {
    if (ctx->protocol == IPPROTO_UDP && ctx->local_port == 53) return SK_DROP;
    if (ctx->protocol != IPPROTO_TCP || ctx->family != AF_INET) return SK_PASS;
    if (ctx->local_ip4 != __builtin_bswap32(0x0A000001)) return SK_PASS; /* 10.0.0.1 */
    if (ctx->local_port < 80 || ctx->local_port > 89) return SK_PASS;
    __u32 zero = 0;
    struct bpf_sock *sk = bpf_map_lookup_elem(&redir_map, &zero);
    if (!sk) return SK_DROP;
    long err = bpf_sk_assign(ctx, sk, 0);
    bpf_sk_release(sk);
    if (err) return SK_DROP;
    __u64 *count = bpf_map_lookup_elem(&steered, &zero);
    if (count) __sync_fetch_and_add(count, 1);
    return SK_PASS;
}

char _license[] SEC("license") = "GPL";
