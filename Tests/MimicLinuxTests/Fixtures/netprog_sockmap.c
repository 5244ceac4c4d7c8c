/*
 * Socket maps, reuseport arrays and cgroup arrays from the program types that use them:
 * sk_skb stream parser and verdict (bpf_sk_redirect_map / _hash), sk_msg
 * (bpf_msg_redirect_map / _hash), sock_ops (bpf_sock_map_update / bpf_sock_hash_update),
 * sk_reuseport (bpf_sk_select_reuseport), tc (lookup, update and delete of a sockmap,
 * bpf_skb_under_cgroup, the socket uid / cgroup / classid helpers), cgroup/sock_create
 * (bpf_get_retval / bpf_set_retval) and a tracepoint (bpf_current_task_under_cgroup).
 * Each program notes its helpers' results in `results`.
 */
#include "netprogs.h"

#define BPF_MAP_TYPE_SOCKMAP 15
#define BPF_MAP_TYPE_CGROUP_ARRAY 8
#define BPF_MAP_TYPE_REUSEPORT_SOCKARRAY 20
#define BPF_MAP_TYPE_SOCKHASH 18
#define BPF_F_INGRESS 1
#define BPF_NOEXIST 1

struct sk_reuseport_md {
    __md_ptr(void *, data);
    __md_ptr(void *, data_end);
    __u32 len, eth_protocol, ip_protocol, bind_inany, hash;
    __md_ptr(struct bpf_sock *, sk);
    __md_ptr(struct bpf_sock *, migrating_sk);
};

struct {
    __uint(type, BPF_MAP_TYPE_SOCKMAP);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} sock_map SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} sock_hash SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} reuse SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u32);
} cgroups SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} results SEC(".maps");

static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static long (*bpf_get_cgroup_classid)(struct __sk_buff *skb) = (void *)17;
static long (*bpf_skb_under_cgroup)(struct __sk_buff *skb, void *map, __u32 index) = (void *)33;
static long (*bpf_current_task_under_cgroup)(void *map, __u32 index) = (void *)37;
static long (*bpf_get_socket_uid)(struct __sk_buff *skb) = (void *)47;
static long (*bpf_sk_redirect_map)(struct __sk_buff *skb, void *map, __u32 key, __u64 flags) = (void *)52;
static long (*bpf_sock_map_update)(struct bpf_sock_ops *ops, void *map, void *key, __u64 flags) = (void *)53;
static long (*bpf_msg_redirect_map)(struct sk_msg_md *msg, void *map, __u32 key, __u64 flags) = (void *)60;
static long (*bpf_sock_hash_update)(struct bpf_sock_ops *ops, void *map, void *key, __u64 flags) = (void *)70;
static long (*bpf_msg_redirect_hash)(struct sk_msg_md *msg, void *map, void *key, __u64 flags) = (void *)71;
static long (*bpf_sk_redirect_hash)(struct __sk_buff *skb, void *map, void *key, __u64 flags) = (void *)72;
static long (*bpf_sk_select_reuseport)(struct sk_reuseport_md *md, void *map, void *key, __u64 flags) = (void *)82;
static long (*bpf_sk_release)(void *sk) = (void *)86;
static __u64 (*bpf_sk_cgroup_id)(void *sk) = (void *)128;
static __u64 (*bpf_sk_ancestor_cgroup_id)(void *sk, int level) = (void *)129;
static __u64 (*bpf_skb_cgroup_classid)(struct __sk_buff *skb) = (void *)151;
static int (*bpf_get_retval)(void) = (void *)186;
static int (*bpf_set_retval)(int retval) = (void *)187;

static void note(__u32 slot, __u64 value) {
    bpf_map_update_elem(&results, &slot, &value, 0);
}

/* The stream parser: each message is the whole data. */
SEC("sk_skb/stream_parser")
int parser(struct __sk_buff *skb) {
    return skb->len;
}

/* The verdict: the first byte is the key; a bad flag drops, then the sockmap redirect decides. */
SEC("sk_skb/stream_verdict")
int verdict(struct __sk_buff *skb) {
    __u8 *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    if (data + 1 > end) return SK_DROP;
    __u32 key = data[0];
    note(0, bpf_sk_redirect_hash(skb, &sock_hash, &key, 2));
    return bpf_sk_redirect_map(skb, &sock_map, key, BPF_F_INGRESS);
}

/* An sk_msg verdict: to the sockhash entry the first byte names, else the sockmap's. */
SEC("sk_msg")
int msg_verdict(struct sk_msg_md *msg) {
    __u8 *data = msg->data, *end = msg->data_end;
    if (data + 1 > end) return SK_DROP;
    __u32 key = data[0];
    long hash = bpf_msg_redirect_hash(msg, &sock_hash, &key, 0);
    note(0, hash);
    if (hash == SK_PASS) return SK_PASS;
    return bpf_msg_redirect_map(msg, &sock_map, key, 0);
}

/* sock_ops: the socket joins sockmap slot 3 and sockhash key 9 from the established callbacks. */
SEC("sockops")
int add_socket(struct bpf_sock_ops *ops) {
    __u32 slot = 3, key = 9;
    note(0, bpf_sock_map_update(ops, &sock_map, &slot, BPF_NOEXIST));
    note(1, bpf_sock_hash_update(ops, &sock_hash, &key, 0));
    return 1;
}

/* sk_reuseport: select reuseport array slot 0, then slot 1, then a sockmap entry. */
SEC("sk_reuseport")
int pick(struct sk_reuseport_md *md) {
    __u32 zero = 0, one = 1, two = 2;
    note(0, bpf_sk_select_reuseport(md, &reuse, &one, 0));
    note(1, bpf_sk_select_reuseport(md, &sock_map, &two, 0));
    long selected = bpf_sk_select_reuseport(md, &reuse, &zero, 0);
    note(2, selected);
    return selected == 0 ? SK_PASS : SK_DROP;
}

/* tc: a socket from the sockmap (slot 0) is read, copied into the sockhash and released; an empty
 * slot's delete fails; the packet's socket is tested against the cgroups. */
SEC("tc")
int sockets(struct __sk_buff *skb) {
    __u32 zero = 0, three = 3, seven = 7;
    struct bpf_sock *sk = bpf_map_lookup_elem(&sock_map, &zero);
    if (sk) {
        note(0, sk->src_port);
        note(1, bpf_map_update_elem(&sock_hash, &seven, sk, 0));
        bpf_sk_release(sk);
    }
    note(3, bpf_map_delete_elem(&sock_map, &three));
    note(4, (__u32)bpf_skb_under_cgroup(skb, &cgroups, 0) | (__u64)(__u32)bpf_skb_under_cgroup(skb, &cgroups, 1) << 32);
    note(5, bpf_skb_under_cgroup(skb, &cgroups, 2));
    note(6, bpf_get_socket_uid(skb) | bpf_skb_cgroup_classid(skb) << 32);
    note(7, bpf_get_cgroup_classid(skb));
    return 0;
}

/* cgroup_skb (which offers bpf_sk_cgroup_id; tc does not): the cgroups of sockmap slot 0's socket. */
SEC("cgroup_skb/ingress")
int socket_cgroups(struct __sk_buff *skb) {
    __u32 zero = 0;
    struct bpf_sock *sk = bpf_map_lookup_elem(&sock_map, &zero);
    if (sk) {
        note(2, bpf_sk_cgroup_id(sk) | bpf_sk_ancestor_cgroup_id(sk, 1) << 16 | bpf_sk_ancestor_cgroup_id(sk, 3) << 32);
        bpf_sk_release(sk);
    }
    return 1;
}

/* cgroup/sock_create: read the hook's return value, set it, read it back. */
SEC("cgroup/sock_create")
int retval(struct bpf_sock *sk) {
    note(0, (__u32)bpf_get_retval());
    note(1, bpf_set_retval(-1));
    note(2, (__u32)bpf_get_retval());
    return 0;
}

/* A tracepoint: whether the current task is under each cgroup of the array. */
SEC("tracepoint/syscalls/sys_enter_openat")
int task_cgroups(void *ctx) {
    note(0, (__u32)bpf_current_task_under_cgroup(&cgroups, 0) | (__u64)(__u32)bpf_current_task_under_cgroup(&cgroups, 1) << 32);
    note(1, bpf_current_task_under_cgroup(&cgroups, 2));
    return 0;
}
