/*
 * An sk_msg program: drops short messages, reads the first segment, pulls the first 8 bytes
 * (spanning segments), lower-cases a "GET " verb, pushes a 4-byte "HDR:" tag in front, pops
 * the last 2 bytes, and sets apply/cork bytes. Each helper's result goes to `results`.
 */
#include "netprogs.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} results SEC(".maps");

static void note(__u32 slot, __u64 value) {
    bpf_map_update_elem(&results, &slot, &value, 0);
}

SEC("sk_msg")
int msg_rewrite(struct sk_msg_md *msg) {
    __u32 size = msg->size;
    if (size < 8) return SK_DROP;
    note(0, (__u64)((long)msg->data_end - (long)msg->data) | ((__u64)size << 32));
    note(1, msg->family | ((__u64)bswap32(msg->remote_port) << 16) | ((__u64)msg->local_port << 32));
    note(2, bpf_msg_pull_data(msg, 0, 8, 0));
    __u8 *data = (void *)(long)msg->data;
    __u8 *end = (void *)(long)msg->data_end;
    if (data + 8 > end) return SK_DROP;
    if (data[0] == 'G' && data[1] == 'E' && data[2] == 'T' && data[3] == ' ') {
        data[0] = 'g';
        data[1] = 'e';
        data[2] = 't';
    }
    note(3, bpf_msg_push_data(msg, 0, 4, 0));
    if (bpf_msg_pull_data(msg, 0, 4, 0) == 0) {
        data = (void *)(long)msg->data;
        end = (void *)(long)msg->data_end;
        if (data + 4 <= end) {
            data[0] = 'H';
            data[1] = 'D';
            data[2] = 'R';
            data[3] = ':';
        }
    }
    note(4, bpf_msg_pop_data(msg, msg->size - 2, 2, 0));
    note(5, bpf_msg_pull_data(msg, 0, msg->size + 1, 0)); /* past the end: -EINVAL */
    note(6, bpf_msg_push_data(msg, 0, 4, 1));             /* flags: -EINVAL */
    bpf_msg_apply_bytes(msg, 100);
    bpf_msg_cork_bytes(msg, 16);
    note(7, msg->size);
    return SK_PASS;
}
