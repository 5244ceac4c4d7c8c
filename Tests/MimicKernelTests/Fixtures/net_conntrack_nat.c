/* bpf_ct_set_nat_info on allocated conntrack entries (issue 14), compared with the kernel in a
 * fresh network namespace (ConntrackKernelTests): source and destination NAT of one entry (a
 * second source NAT is -ENOMEM), its reply direction found at the translated tuple and not at
 * the plain reverse one, a NAT to the entry's own address (no change), a source NAT without a
 * port whose tuple is free, and one with a port whose reply tuple is taken (not inserted).
 * answers[i] holds each step's result (a kfunc's return, 1 / 0 for a pointer or NULL, or a
 * lookup's 100 + dir / opts->error). Addresses are 198.18.0.host; net_conntrack_nat6.c builds
 * the same steps with IPv6 tuples (CT_NAT_IPV6: 2001:db8::host). */
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

union nf_inet_addr {
    __u32 all[4];
    __be32 ip;
    __be32 ip6[4];
};

enum nf_nat_manip_type { NF_NAT_MANIP_SRC, NF_NAT_MANIP_DST };

struct nf_conn;
struct nf_conn___init;

#define KSYM __attribute__((section(".ksyms")))
extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *, struct bpf_sock_tuple *, __u32, struct bpf_ct_opts *,
                                         __u32) KSYM;
extern struct nf_conn___init *bpf_skb_ct_alloc(struct __sk_buff *, struct bpf_sock_tuple *, __u32,
                                               struct bpf_ct_opts *, __u32) KSYM;
extern struct nf_conn *bpf_ct_insert_entry(struct nf_conn___init *) KSYM;
extern void bpf_ct_release(struct nf_conn *) KSYM;
extern int bpf_ct_set_nat_info(struct nf_conn___init *, union nf_inet_addr *, int, enum nf_nat_manip_type) KSYM;

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

#ifdef CT_NAT_IPV6
#define TUPLE_SIZE 36 /* the kfuncs' IPv6 form */
#define PROGRAM tc_ct_nat6

/* 2001:db8::host (documentation addresses, inside the test's namespace only) */
static __always_inline void address(__be32 *a, __u32 host)
{
    a[0] = bpf_htonl(0x20010db8);
    a[1] = 0;
    a[2] = 0;
    a[3] = bpf_htonl(host);
}

static __always_inline void set(struct bpf_sock_tuple *t, __u32 s, __u16 sport, __u32 d, __u16 dport)
{
    address(t->ipv6.saddr, s);
    address(t->ipv6.daddr, d);
    t->ipv6.sport = bpf_htons(sport);
    t->ipv6.dport = bpf_htons(dport);
}

#define NAT_ADDRESS(addr, host) address((addr).ip6, host)
#else
#define TUPLE_SIZE 12
#define PROGRAM tc_ct_nat
#define NET(host) bpf_htonl(0xc6120000 | (host)) /* 198.18.0.host */

static __always_inline void set(struct bpf_sock_tuple *t, __u32 s, __u16 sport, __u32 d, __u16 dport)
{
    t->ipv4.saddr = NET(s);
    t->ipv4.daddr = NET(d);
    t->ipv4.sport = bpf_htons(sport);
    t->ipv4.dport = bpf_htons(dport);
}

#define NAT_ADDRESS(addr, host) ((addr).ip = NET(host))
#endif

static __always_inline __s64 lookup(struct __sk_buff *skb, struct bpf_sock_tuple *tuple, struct bpf_ct_opts *opts)
{
    struct nf_conn *ct = bpf_skb_ct_lookup(skb, tuple, TUPLE_SIZE, opts, 16);
    if (!ct)
        return opts->error;
    bpf_ct_release(ct);
    return 100 + opts->dir;
}

/* Inserts `fresh`: 1 when inserted, 0 when refused. */
static __always_inline __s64 insert(struct nf_conn___init *fresh)
{
    struct nf_conn *inserted = bpf_ct_insert_entry(fresh);
    if (!inserted)
        return 0;
    bpf_ct_release(inserted);
    return 1;
}

SEC("tc")
int PROGRAM(struct __sk_buff *skb)
{
    struct bpf_sock_tuple tuple = {};
    struct bpf_ct_opts opts = {.netns_id = -1, .l4proto = 6};
    union nf_inet_addr addr = {};

    /* host 1:40000 -> 2:80, SNAT to 99:5555, DNAT to 3:8080 */
    set(&tuple, 1, 40000, 2, 80);
    struct nf_conn___init *a = bpf_skb_ct_alloc(skb, &tuple, TUPLE_SIZE, &opts, 16);
    if (!a)
        return 1;
    NAT_ADDRESS(addr, 99);
    answer(0, bpf_ct_set_nat_info(a, &addr, 5555, NF_NAT_MANIP_SRC));
    answer(1, bpf_ct_set_nat_info(a, &addr, 0, NF_NAT_MANIP_SRC)); /* set up already: -ENOMEM */
    NAT_ADDRESS(addr, 3);
    answer(2, bpf_ct_set_nat_info(a, &addr, 8080, NF_NAT_MANIP_DST));
    answer(3, insert(a));
    answer(4, lookup(skb, &tuple, &opts));         /* the original direction */
    set(&tuple, 3, 8080, 99, 5555);
    answer(5, lookup(skb, &tuple, &opts));         /* the translated reply */
    set(&tuple, 2, 80, 1, 40000);
    answer(6, lookup(skb, &tuple, &opts));         /* the plain reverse: -ENOENT */

    /* 5:1234 -> 2:80, SNAT to its own address: nothing changes */
    set(&tuple, 5, 1234, 2, 80);
    struct nf_conn___init *b = bpf_skb_ct_alloc(skb, &tuple, TUPLE_SIZE, &opts, 16);
    if (!b)
        return 2;
    NAT_ADDRESS(addr, 5);
    answer(7, bpf_ct_set_nat_info(b, &addr, 0, NF_NAT_MANIP_SRC));
    answer(8, insert(b));
    set(&tuple, 2, 80, 5, 1234);
    answer(9, lookup(skb, &tuple, &opts));

    /* 6:40000 -> 3:8080, SNAT to 99 without a port: 3:8080 -> 99:40000 is free */
    set(&tuple, 6, 40000, 3, 8080);
    struct nf_conn___init *c = bpf_skb_ct_alloc(skb, &tuple, TUPLE_SIZE, &opts, 16);
    if (!c)
        return 3;
    NAT_ADDRESS(addr, 99);
    answer(10, bpf_ct_set_nat_info(c, &addr, -1, NF_NAT_MANIP_SRC));
    answer(11, insert(c));
    set(&tuple, 3, 8080, 99, 40000);
    answer(12, lookup(skb, &tuple, &opts));

    /* 8:6000 -> 3:8080, SNAT to 99:5555: the reply tuple is a's, the insertion fails */
    set(&tuple, 8, 6000, 3, 8080);
    struct nf_conn___init *d = bpf_skb_ct_alloc(skb, &tuple, TUPLE_SIZE, &opts, 16);
    if (!d)
        return 4;
    answer(13, bpf_ct_set_nat_info(d, &addr, 5555, NF_NAT_MANIP_SRC));
    answer(14, insert(d));
    answer(15, lookup(skb, &tuple, &opts));        /* -ENOENT */
    return 0;
}

char _license[] SEC("license") = "GPL";
