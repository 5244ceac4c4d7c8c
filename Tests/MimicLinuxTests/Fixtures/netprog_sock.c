/*
 * cgroup_sock_addr, sock_ops and cgroup_sock programs (no BPF_PROG_TEST_RUN for these types:
 * SocketContextTests runs them in Mimic against the kernel's documented semantics).
 */
#include "netprogs.h"

#define SOL_SOCKET 1
#define SOL_TCP 6
#define SO_MARK 36
#define TCP_CONGESTION 13
#define BPF_SOCK_OPS_TIMEOUT_INIT 1
#define BPF_SOCK_OPS_TCP_CONNECT_CB 3
#define BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB 4
#define IP4(a, b, c, d) bswap32(((a) << 24) | ((b) << 16) | ((c) << 8) | (d))

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} results SEC(".maps");

static void note(__u32 slot, __u64 value) {
    bpf_map_update_elem(&results, &slot, &value, 0);
}

/* connect4: 10.0.0.1:80 goes to 127.0.0.1:8080 from 10.0.0.5; port 25 is refused. */
SEC("cgroup/connect4")
int connect_redirect(struct bpf_sock_addr *ctx) {
    if (ctx->user_port == bswap16(25)) return 0;
    if (ctx->user_ip4 == IP4(10, 0, 0, 1) && ctx->user_port == bswap16(80)) {
        ctx->user_ip4 = IP4(127, 0, 0, 1);
        ctx->user_port = bswap16(8080);
        struct sockaddr_in source = {.sin_family = AF_INET, .sin_addr = IP4(10, 0, 0, 5)};
        note(0, bpf_bind(ctx, &source, sizeof(source)));
        int mark = 42;
        note(1, bpf_setsockopt(ctx, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)));
        int back = 0;
        note(2, bpf_getsockopt(ctx, SOL_SOCKET, SO_MARK, &back, sizeof(back)));
        note(3, back);
        note(4, bpf_bind(ctx, &source, 4)); /* too short: -EINVAL */
    }
    return 1;
}

/* sendmsg4: DNS to 10.0.0.53 leaves from 10.0.0.2. */
SEC("cgroup/sendmsg4")
int sendmsg_source(struct bpf_sock_addr *ctx) {
    if (ctx->user_port == bswap16(53)) ctx->msg_src_ip4 = IP4(10, 0, 0, 2);
    note(5, ctx->type | (ctx->protocol << 8) | ((__u64)ctx->family << 16));
    return 1;
}

/* bind4 may not write msg_src_ip4: the kernel's verifier refuses this program. */
SEC("cgroup/bind4")
int bind_forbidden(struct bpf_sock_addr *ctx) {
    ctx->msg_src_ip4 = 1;
    return 1;
}

SEC("sockops")
int sock_ops(struct bpf_sock_ops *skops) {
    switch (skops->op) {
    case BPF_SOCK_OPS_TIMEOUT_INIT:
        skops->reply = 10;
        break;
    case BPF_SOCK_OPS_TCP_CONNECT_CB: {
        note(0, bpf_sock_ops_cb_flags_set(skops, 0x8C)); /* RTT | STATE | an unknown bit */
        note(1, skops->bpf_sock_ops_cb_flags);
        char reno[] = "reno";
        note(2, bpf_setsockopt(skops, SOL_TCP, TCP_CONGESTION, reno, sizeof(reno)));
        char name[8] = {};
        note(3, bpf_getsockopt(skops, SOL_TCP, TCP_CONGESTION, name, sizeof(name)));
        note(4, *(__u64 *)name);
        int bad = 1;
        note(5, bpf_setsockopt(skops, 99, 1, &bad, sizeof(bad))); /* unknown level: -EINVAL */
        break;
    }
    case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
        note(6, bswap32(skops->remote_port) | ((__u64)skops->local_port << 32));
        note(7, skops->snd_cwnd + skops->bytes_acked);
        skops->sk_txhash = 0x1234;
        break;
    }
    return 1;
}

/* sock_create: raw sockets are refused; others get a mark and a priority. */
SEC("cgroup/sock_create")
int sock_create(struct bpf_sock *sk) {
    if (sk->type == 3) return 0;
    sk->mark = 0x77;
    sk->priority = 2;
    return 1;
}
