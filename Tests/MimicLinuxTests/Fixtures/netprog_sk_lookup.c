/*
 * An sk_lookup program: reads every field of struct bpf_sk_lookup, counts lookups per local
 * port, drops connections to port 7, and for port 53 clears any selection with
 * bpf_sk_assign(ctx, NULL, 0) (no socket: the lookup goes on as usual).
 */
#include "netprogs.h"

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u64);
} lookups SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32[12]);
} last SEC(".maps");

SEC("sk_lookup")
int steer(struct bpf_sk_lookup *ctx) {
    __u32 key = ctx->local_port | (ctx->protocol << 16);
    __u64 one = 1, *count = bpf_map_lookup_elem(&lookups, &key);
    if (count) __sync_fetch_and_add(count, 1);
    else bpf_map_update_elem(&lookups, &key, &one, 0);
    __u32 zero = 0;
    __u32 *fields = bpf_map_lookup_elem(&last, &zero);
    if (fields) {
        fields[0] = ctx->family;
        fields[1] = ctx->protocol;
        fields[2] = ctx->remote_ip4;
        fields[3] = ctx->local_ip4;
        fields[4] = ctx->remote_port;
        fields[5] = ctx->local_port;
        fields[6] = ctx->remote_ip6[0] ^ ctx->remote_ip6[3];
        fields[7] = ctx->local_ip6[1] ^ ctx->local_ip6[2];
        fields[8] = ctx->ingress_ifindex;
        fields[9] = ctx->sk ? 1 : 2;
    }
    if (ctx->local_port == 7) return SK_DROP;
    if (ctx->local_port == 53) {
        long err = bpf_sk_assign(ctx, 0, 0);
        if (fields) fields[10] = (__u32)err;
    }
    return SK_PASS;
}
