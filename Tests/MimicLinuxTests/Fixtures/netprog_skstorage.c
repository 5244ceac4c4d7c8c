/*
 * sock_ops with socket storage: every callback counts in the socket's storage (created on
 * first use) and remembers the last operation; the move to TCP_CLOSE deletes the storage.
 */
#include "netprogs.h"

#define BPF_SOCK_OPS_STATE_CB 10
#define TCP_CLOSE 7

struct connection {
    __u32 events;
    __u32 last_op;
};

struct {
    __uint(type, BPF_MAP_TYPE_SK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct connection);
} connections SEC(".maps");

SEC("sockops")
int track(struct bpf_sock_ops *skops) {
    struct bpf_sock *sk = skops->sk;
    if (!sk) return 1;
    if (skops->op == BPF_SOCK_OPS_STATE_CB && skops->args[1] == TCP_CLOSE) {
        skops->reply = bpf_sk_storage_delete(&connections, sk);
        return 1;
    }
    struct connection *c = bpf_sk_storage_get(&connections, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
    if (!c) return 1;
    c->events += 1;
    c->last_op = skops->op;
    skops->reply = c->events;
    return 1;
}
