/* tc networking helpers, compared with the kernel (FixtureComparisonTests): each helper's
 * results go to the `results` array; tc_ecn and tc_proto change the packet. */
#include "../../../Examples/mimic_bpf.h"

static long (*bpf_skb_pull_data)(void *skb, __u32 len) = (void *)39;
static __u32 (*bpf_get_hash_recalc)(void *skb) = (void *)34;
static long (*bpf_skb_change_proto)(void *skb, __be16 proto, __u64 flags) = (void *)31;
static long (*bpf_skb_change_type)(void *skb, __u32 type) = (void *)32;
static long (*bpf_csum_update)(void *skb, __u32 csum) = (void *)40;
static void (*bpf_set_hash_invalid)(void *skb) = (void *)41;
static long (*bpf_set_hash)(void *skb, __u32 hash) = (void *)48;
static long (*bpf_skb_load_bytes_relative)(const void *skb, __u32 offset, void *to, __u32 len, __u32 start_header) = (void *)68;
static long (*bpf_get_route_realm)(void *skb) = (void *)24;
static long (*bpf_skb_ecn_set_ce)(void *skb) = (void *)97;
static long (*bpf_check_mtu)(void *ctx, __u32 ifindex, __u32 *mtu_len, __s32 len_diff, __u64 flags) = (void *)163;
static long (*bpf_csum_level)(void *skb, __u64 level) = (void *)135;

/* struct __sk_buff up to tstamp_type (UAPI offsets). */
struct skb_full {
    __u32 len, pkt_type, mark, queue_mapping, protocol, vlan_present, vlan_tci, vlan_proto;
    __u32 priority, ingress_ifindex, ifindex, tc_index, cb[5], hash, tc_classid, data, data_end;
    __u32 napi_id, family, remote_ip4, local_ip4, remote_ip6[4], local_ip6[4], remote_port, local_port;
    __u32 data_meta;
    __u64 flow_keys;
    __u64 tstamp;
    __u32 wire_len, gso_segs;
    __u64 sk;
    __u32 gso_size;
    __u8 tstamp_type;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 32);
    __type(key, __u32);
    __type(value, __s64);
} results SEC(".maps");

static __always_inline void put(__u32 index, __s64 value)
{
    bpf_map_update_elem(&results, &index, &value, BPF_ANY);
}

SEC("tc")
int tc_bytes(struct __sk_buff *ctx)
{
    struct skb_full *skb = (void *)ctx;
    __u32 word = 0, mtu = 0;
    put(0, bpf_skb_pull_data(skb, 0));
    put(1, bpf_skb_pull_data(skb, 10000));                       /* longer than the packet: -ENOMEM */
    put(2, bpf_skb_load_bytes_relative(skb, 0, &word, 4, 0));    /* BPF_HDR_START_MAC */
    put(3, word);
    word = 0;
    put(4, bpf_skb_load_bytes_relative(skb, 2, &word, 4, 1));    /* BPF_HDR_START_NET */
    put(5, word);
    word = 7;
    put(6, bpf_skb_load_bytes_relative(skb, 0, &word, 4, 2));    /* bad start: -EFAULT, zeroed */
    put(7, word);
    put(8, bpf_skb_load_bytes_relative(skb, 0x10000, &word, 4, 0));
    put(9, bpf_skb_load_bytes_relative(skb, skb->len - 16, &word, 4, 1)); /* past the end */
    put(10, bpf_check_mtu(skb, 0, &mtu, 0, 0));
    put(11, mtu);
    mtu = 0;
    put(12, bpf_check_mtu(skb, 1, &mtu, 70000, 0));
    mtu = 5;
    put(13, bpf_check_mtu(skb, 0, &mtu, 0, 1));                  /* SEGS with an input length: -EINVAL */
    mtu = 0;
    put(14, bpf_check_mtu(skb, 0, &mtu, 0, 2));                  /* unknown flag: -EINVAL */
    put(15, bpf_check_mtu(skb, 0x7ff0, &mtu, 0, 0));             /* -ENODEV */
    put(16, bpf_check_mtu(skb, 0, &mtu, 0, 1));
    put(17, bpf_get_route_realm(skb));
    put(18, bpf_csum_update(skb, 0x1234));                       /* not CHECKSUM_COMPLETE: -ENOTSUPP */
    return TC_ACT_OK;
}

SEC("tc")
int tc_state(struct __sk_buff *ctx)
{
    struct skb_full *skb = (void *)ctx;
    /* checksum level */
    put(0, bpf_csum_level(skb, 0));          /* QUERY on CHECKSUM_NONE: -EACCES */
    put(1, bpf_csum_level(skb, 1));          /* INC */
    put(2, bpf_csum_level(skb, 0));
    bpf_csum_level(skb, 1);
    put(3, bpf_csum_level(skb, 0));
    bpf_csum_level(skb, 2);                  /* DEC */
    put(4, bpf_csum_level(skb, 0));
    put(5, bpf_csum_level(skb, 3));          /* RESET */
    put(6, bpf_csum_level(skb, 0));
    put(7, bpf_csum_level(skb, 9));          /* -EINVAL */
    /* hash */
    put(8, bpf_set_hash(skb, 0x1234));
    put(9, bpf_get_hash_recalc(skb));
    put(10, skb->hash);
    bpf_set_hash_invalid(skb);
    put(11, skb->hash);
    __u32 hash = bpf_get_hash_recalc(skb);
    put(12, hash != 0);
    put(13, hash == skb->hash && hash == bpf_get_hash_recalc(skb));
    /* packet type */
    put(14, skb->pkt_type);
    put(15, bpf_skb_change_type(skb, 2));
    put(16, skb->pkt_type);
    put(17, bpf_skb_change_type(skb, 7));    /* -EINVAL */
    return TC_ACT_OK;
}

SEC("tc")
int tc_ecn(struct __sk_buff *skb)
{
    __u8 byte = 0;
    if (skb->protocol == bpf_htons(0x0800)) {
        byte = 0x02;                                          /* ECT(0) */
        bpf_skb_store_bytes(skb, ETH_HLEN + 1, &byte, 1, 0);
    } else if (skb->protocol == bpf_htons(0x86DD)) {
        bpf_skb_load_bytes(skb, ETH_HLEN + 1, &byte, 1);
        byte |= 0x10;                                         /* ECT(1) */
        bpf_skb_store_bytes(skb, ETH_HLEN + 1, &byte, 1, 0);
    }
    put(0, bpf_skb_ecn_set_ce(skb));
    put(1, bpf_skb_ecn_set_ce(skb));                          /* already CE */
    return TC_ACT_OK;
}

SEC("tc")
int tc_proto(struct __sk_buff *skb)
{
    put(0, bpf_skb_change_proto(skb, bpf_htons(0x86DD), 1)); /* flags: -EINVAL */
    if (skb->protocol == bpf_htons(0x0800))
        put(1, bpf_skb_change_proto(skb, bpf_htons(0x86DD), 0));
    else if (skb->protocol == bpf_htons(0x86DD))
        put(1, bpf_skb_change_proto(skb, bpf_htons(0x0800), 0));
    else
        put(1, bpf_skb_change_proto(skb, bpf_htons(0x0800), 0)); /* -ENOTSUPP */
    put(2, skb->protocol);
    put(3, skb->len);
    put(4, skb->hash);
    return TC_ACT_OK;
}

SEC("socket")
int sf_relative(struct __sk_buff *skb)
{
    __u32 word = 0;
    /* A socket filter's data starts at the network header; the MAC header lies before it. */
    put(0, bpf_skb_load_bytes_relative(skb, 0, &word, 4, 0));
    put(1, word);
    word = 0;
    put(2, bpf_skb_load_bytes_relative(skb, 12, &word, 2, 0));
    put(3, word);
    word = 0;
    put(4, bpf_skb_load_bytes_relative(skb, 0, &word, 4, 1));
    put(5, word);
    put(6, bpf_skb_load_bytes_relative(skb, skb->len - 2, &word, 4, 1)); /* past the end */
    return skb->len;
}
