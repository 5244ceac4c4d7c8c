/*
 * An sk_reuseport program: reads struct sk_reuseport_md and the transport header (directly and
 * with bpf_skb_load_bytes, both from the transport header), drops UDP datagrams to port 53 and
 * passes the rest (the kernel then picks a socket of the group by hash).
 */
#include "netprogs.h"

struct sk_reuseport_md {
    __md_ptr(void *, data);
    __md_ptr(void *, data_end);
    __u32 len, eth_protocol, ip_protocol, bind_inany, hash;
    __md_ptr(struct bpf_sock *, sk);
    __md_ptr(struct bpf_sock *, migrating_sk);
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} results SEC(".maps");

/* One 4-byte load per field: the kernel refuses wider context loads clang could merge. */
#define READ(field) (*(volatile __u32 *)&(field))

static void note(__u32 slot, __u64 value) {
    bpf_map_update_elem(&results, &slot, &value, 0);
}

SEC("sk_reuseport")
int select_group(struct sk_reuseport_md *md) {
    __u32 len = READ(md->len), eth_protocol = READ(md->eth_protocol);
    __u32 ip_protocol = READ(md->ip_protocol), bind_inany = READ(md->bind_inany), hash = READ(md->hash);
    note(0, len | ((__u64)eth_protocol << 32));
    note(1, ip_protocol | ((__u64)bind_inany << 8) | ((__u64)(hash != 0) << 16));
    __u8 *data = (void *)(long)md->data, *end = (void *)(long)md->data_end;
    if (data + 4 > end) return SK_DROP;
    __u16 ports[2];
    long err = bpf_skb_load_bytes(md, 0, ports, 4);
    note(2, (__u64)err | ((__u64)(data[2] << 8 | data[3]) << 32));
    note(3, md->sk ? md->sk->src_port : 0);
    if (ip_protocol == IPPROTO_UDP && ports[1] == bswap16(53)) return SK_DROP;
    return SK_PASS;
}
