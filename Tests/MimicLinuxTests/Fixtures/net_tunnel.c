/* The tunnel-key helpers and redirect_neigh / redirect_peer, compared with the kernel
 * (FixtureComparisonTests): without tunnel metadata, after bpf_skb_set_tunnel_key (IPv4 and
 * IPv6), with options, with the older struct sizes and with bad flags; each result goes to
 * `results`. The kernel's test run carries no tunnel metadata, nor does Mimic's default network. */
#include "../../../Examples/mimic_bpf.h"

struct bpf_tunnel_key {
    __u32 tunnel_id;
    union {
        __u32 remote_ipv4;
        __u32 remote_ipv6[4];
    };
    __u8 tunnel_tos;
    __u8 tunnel_ttl;
    union {
        __u16 tunnel_ext;
        __be16 tunnel_flags;
    };
    __u32 tunnel_label;
    union {
        __u32 local_ipv4;
        __u32 local_ipv6[4];
    };
};

struct bpf_redir_neigh {
    __u32 nh_family;
    union {
        __be32 ipv4_nh;
        __u32 ipv6_nh[4];
    };
};

static long (*bpf_skb_get_tunnel_key)(struct __sk_buff *skb, struct bpf_tunnel_key *key, __u32 size, __u64 flags) = (void *)20;
static long (*bpf_skb_set_tunnel_key)(struct __sk_buff *skb, struct bpf_tunnel_key *key, __u32 size, __u64 flags) = (void *)21;
static long (*bpf_skb_get_tunnel_opt)(struct __sk_buff *skb, void *opt, __u32 size) = (void *)29;
static long (*bpf_skb_set_tunnel_opt)(struct __sk_buff *skb, void *opt, __u32 size) = (void *)30;
static long (*bpf_redirect_neigh)(__u32 ifindex, struct bpf_redir_neigh *params, int plen, __u64 flags) = (void *)152;
static long (*bpf_redirect_peer)(__u32 ifindex, __u64 flags) = (void *)155;

#define BPF_F_TUNINFO_IPV6 1
#define BPF_F_DONT_FRAGMENT (1ULL << 2)
#define BPF_F_TUNINFO_FLAGS (1ULL << 4)

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 40);
    __type(key, __u32);
    __type(value, __s64);
} results SEC(".maps");

static __always_inline void put(__u32 index, __s64 value)
{
    bpf_map_update_elem(&results, &index, &value, BPF_ANY);
}

SEC("tc")
int tc_tunnel(struct __sk_buff *skb)
{
    struct bpf_tunnel_key key = {};
    struct bpf_tunnel_key got = {};
    __u8 opt[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    __u8 back[12] = {};

    put(0, bpf_skb_get_tunnel_key(skb, &got, sizeof(got), 0));       /* no metadata: -EINVAL */
    put(1, bpf_skb_get_tunnel_opt(skb, back, 8));                     /* -ENOENT */
    put(2, bpf_skb_set_tunnel_opt(skb, opt, 4));                      /* not this run's key: -EINVAL */
    key.tunnel_id = 42;
    key.remote_ipv4 = 0xC0000209;
    key.local_ipv4 = 0xC0000201;
    key.tunnel_tos = 4;
    key.tunnel_ttl = 30;
    put(3, bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_DONT_FRAGMENT));
    put(4, bpf_skb_get_tunnel_key(skb, &got, sizeof(got), BPF_F_TUNINFO_FLAGS));
    put(5, got.tunnel_id);
    put(6, got.remote_ipv4);
    put(7, got.local_ipv4);
    put(8, got.tunnel_tos | got.tunnel_ttl << 8 | (__u32)got.tunnel_flags << 16);
    put(9, bpf_skb_get_tunnel_key(skb, &got, sizeof(got), BPF_F_TUNINFO_IPV6)); /* -EPROTO */
    put(10, bpf_skb_get_tunnel_key(skb, &got, 24, 0));              /* an older size */
    put(11, bpf_skb_get_tunnel_key(skb, &got, 20, 0));              /* no such size: -EINVAL */
    put(12, got.tunnel_id);                                          /* cleared */
    put(13, bpf_skb_set_tunnel_opt(skb, opt, 6));                   /* not whole words: -EINVAL */
    put(14, bpf_skb_set_tunnel_opt(skb, opt, 8));
    put(15, bpf_skb_get_tunnel_opt(skb, back, 4));                  /* too small: -ENOMEM */
    put(16, bpf_skb_get_tunnel_opt(skb, back, 12));
    put(17, *(__s64 *)back);
    put(18, bpf_skb_set_tunnel_key(skb, &key, sizeof(key), 1 << 7)); /* unknown flag */
    key.tunnel_label = 5;
    put(19, bpf_skb_set_tunnel_key(skb, &key, sizeof(key), 0));      /* a label needs IPv6 */
    struct bpf_tunnel_key key6 = {};
    key6.tunnel_id = 7;
    key6.remote_ipv6[0] = bpf_htonl(0xfd000000);
    key6.remote_ipv6[3] = bpf_htonl(9);
    key6.local_ipv6[0] = bpf_htonl(0xfd000000);
    key6.local_ipv6[3] = bpf_htonl(1);
    key6.tunnel_label = 0xF12345;
    put(20, bpf_skb_set_tunnel_key(skb, &key6, sizeof(key6), BPF_F_TUNINFO_IPV6));
    put(21, bpf_skb_get_tunnel_key(skb, &got, sizeof(got), BPF_F_TUNINFO_IPV6));
    put(22, got.tunnel_label);
    put(23, got.remote_ipv6[3]);
    put(24, got.local_ipv6[3]);
    put(25, bpf_skb_get_tunnel_key(skb, &got, 8, BPF_F_TUNINFO_IPV6)); /* the oldest size is IPv4 only */
    put(26, bpf_skb_get_tunnel_opt(skb, back, 12));                 /* a new key has no options */
    put(27, bpf_skb_set_tunnel_key(skb, &key, 8, 0));               /* the oldest size */
    put(28, bpf_skb_get_tunnel_key(skb, &got, sizeof(got), 0));
    put(29, got.tunnel_id + got.tunnel_ttl);

    struct bpf_redir_neigh nh = {2, {bpf_htonl(0x0a000001)}};
    put(30, bpf_redirect_neigh(5, NULL, 0, 1));                     /* a flag: TC_ACT_SHOT */
    put(31, bpf_redirect_neigh(5, &nh, 10, 0));                     /* too short: TC_ACT_SHOT */
    put(32, bpf_redirect_neigh(5, &nh, sizeof(nh), 0));             /* TC_ACT_REDIRECT */
    put(33, bpf_redirect_peer(5, 1));
    put(34, bpf_redirect_peer(5, 0));
    put(35, bpf_redirect_neigh(5, NULL, 0, 0));
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
