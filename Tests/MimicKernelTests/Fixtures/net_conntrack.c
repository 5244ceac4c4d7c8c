/* The conntrack kfuncs (issue 14), compared with the kernel in a fresh network namespace:
 * tc_conntrack asks bpf_skb_ct_lookup with options the kernel refuses (each error code), then
 * allocates an entry for 198.18.0.1:40000 -> 198.18.0.2:80 (TCP), sets its timeout and status,
 * inserts it, finds it in both directions and fails to insert
 * it a second time. answers[i] holds each step's result (opts->error, opts->dir, a kfunc's
 * return, or 1 / 0 for a pointer or NULL). */
#include "../../../Examples/mimic_bpf.h"

struct bpf_sock_tuple {
    union {
        struct {
            __be32 saddr;
            __be32 daddr;
            __be16 sport;
            __be16 dport;
        } ipv4;
        struct {
            __be32 saddr[4];
            __be32 daddr[4];
            __be16 sport;
            __be16 dport;
        } ipv6;
    };
};

struct bpf_ct_opts {
    __s32 netns_id;
    __s32 error;
    __u8 l4proto;
    __u8 dir;
    __u16 ct_zone_id;
    __u8 ct_zone_dir;
    __u8 reserved[3];
};

/* Opaque here: Mimic's KernelObject does not relocate CO-RE field accesses against the kernel's
 * BTF, so the program reads no field of them. */
struct nf_conn;
struct nf_conn___init;

extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *, struct bpf_sock_tuple *, __u32, struct bpf_ct_opts *,
                                         __u32) __attribute__((section(".ksyms")));
extern struct nf_conn___init *bpf_skb_ct_alloc(struct __sk_buff *, struct bpf_sock_tuple *, __u32,
                                               struct bpf_ct_opts *, __u32) __attribute__((section(".ksyms")));
extern struct nf_conn *bpf_ct_insert_entry(struct nf_conn___init *) __attribute__((section(".ksyms")));
extern void bpf_ct_release(struct nf_conn *) __attribute__((section(".ksyms")));
extern void bpf_ct_set_timeout(struct nf_conn___init *, __u32) __attribute__((section(".ksyms")));
extern int bpf_ct_set_status(const struct nf_conn___init *, __u32) __attribute__((section(".ksyms")));
extern int bpf_ct_change_status(struct nf_conn *, __u32) __attribute__((section(".ksyms")));
extern int bpf_ct_change_timeout(struct nf_conn *, __u32) __attribute__((section(".ksyms")));

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __s64);
    __uint(max_entries, 24);
} answers SEC(".maps");

static __always_inline void answer(__u32 index, __s64 value)
{
    bpf_map_update_elem(&answers, &index, &value, 0);
}

/* A lookup of `tuple` (tuple_size bytes) with `opts` (opts_size bytes): opts->error on failure,
 * 100 + opts->dir on success. */
static __always_inline __s64 lookup(struct __sk_buff *skb, struct bpf_sock_tuple *tuple, __u32 tuple_size,
                                    struct bpf_ct_opts *opts, __u32 opts_size)
{
    struct nf_conn *ct = bpf_skb_ct_lookup(skb, tuple, tuple_size, opts, opts_size);
    if (!ct)
        return opts->error;
    bpf_ct_release(ct);
    return 100 + opts->dir;
}

SEC("tc")
int tc_conntrack(struct __sk_buff *skb)
{
    struct bpf_sock_tuple tuple = {};
    tuple.ipv4.saddr = bpf_htonl(0xc6120001);
    tuple.ipv4.daddr = bpf_htonl(0xc6120002);
    tuple.ipv4.sport = bpf_htons(40000);
    tuple.ipv4.dport = bpf_htons(80);
    struct bpf_sock_tuple reverse = {};
    reverse.ipv4.saddr = tuple.ipv4.daddr;
    reverse.ipv4.daddr = tuple.ipv4.saddr;
    reverse.ipv4.sport = tuple.ipv4.dport;
    reverse.ipv4.dport = tuple.ipv4.sport;
    struct bpf_ct_opts opts = {.netns_id = -1, .l4proto = 6};

    answer(0, lookup(skb, &tuple, 12, &opts, 16)); /* no entry yet */
    opts.error = 0;
    answer(1, lookup(skb, &tuple, 12, &opts, 10)); /* opts size */
    opts.l4proto = 1;
    answer(2, lookup(skb, &tuple, 12, &opts, 16)); /* ICMP */
    opts.l4proto = 6;
    answer(3, lookup(skb, &tuple, 10, &opts, 16)); /* tuple size */
    opts.netns_id = -2;
    answer(4, lookup(skb, &tuple, 12, &opts, 16));
    opts.netns_id = 7;
    answer(5, lookup(skb, &tuple, 12, &opts, 16)); /* no such namespace */
    opts.netns_id = -1;
    opts.reserved[0] = 1;
    answer(6, lookup(skb, &tuple, 12, &opts, 16));
    opts.reserved[0] = 0;
    opts.ct_zone_id = 3;
    answer(7, lookup(skb, &tuple, 12, &opts, 12)); /* a zone in the 12-byte options */
    opts.ct_zone_id = 0;
    opts.ct_zone_dir = 0;
    opts.error = 0;

    struct nf_conn___init *fresh = bpf_skb_ct_alloc(skb, &tuple, 12, &opts, 16);
    answer(8, fresh ? 1 : opts.error);
    answer(9, opts.ct_zone_dir); /* written back as NF_CT_DEFAULT_ZONE_DIR */
    if (fresh) {
        bpf_ct_set_timeout(fresh, 5000);
        answer(10, bpf_ct_set_status(fresh, 1 << 9)); /* IPS_DYING: unchangeable */
        answer(11, bpf_ct_set_status(fresh, 1 << 6)); /* IPS_SEQ_ADJUST */
        struct nf_conn *inserted = bpf_ct_insert_entry(fresh);
        answer(12, inserted ? 1 : 0);
        if (inserted) {
            answer(14, bpf_ct_change_status(inserted, 0)); /* clears IPS_CONFIRMED: -EBUSY */
            answer(15, bpf_ct_change_timeout(inserted, 9000));
            bpf_ct_release(inserted);
        }
    }
    answer(16, lookup(skb, &tuple, 12, &opts, 16));   /* original direction */
    answer(17, lookup(skb, &reverse, 12, &opts, 16)); /* reply direction */
    opts.l4proto = 17;
    answer(19, lookup(skb, &tuple, 12, &opts, 16)); /* UDP: another entry */
    opts.l4proto = 6;
    struct nf_conn___init *again = bpf_skb_ct_alloc(skb, &reverse, 12, &opts, 16);
    if (again) {
        struct nf_conn *twice = bpf_ct_insert_entry(again);
        answer(20, twice ? 1 : 0); /* its tuples are taken: -EEXIST, NULL */
        if (twice)
            bpf_ct_release(twice);
    }
    return 0;
}

char _license[] SEC("license") = "GPL";
