/*
 * The UAPI context structs of the socket and cgroup program types (linux/bpf.h, Linux 6.18),
 * declared here so the netprog_*.c fixtures build without kernel headers. Offsets are checked
 * by SocketContextTests against Mimic's layouts.
 */
#ifndef NETPROGS_H
#define NETPROGS_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef int __s32;
typedef __u16 __be16;
typedef __u32 __be32;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define __md_ptr(type, name) union { type name; __u64 :64; } __attribute__((aligned(8)))

struct bpf_sock {
    __u32 bound_dev_if, family, type, protocol, mark, priority;
    __u32 src_ip4;
    __u32 src_ip6[4];
    __u32 src_port;
    __be16 dst_port;
    __u16 :16;
    __u32 dst_ip4;
    __u32 dst_ip6[4];
    __u32 state;
    __s32 rx_queue_mapping;
};

struct bpf_flow_keys {
    __u16 nhoff, thoff, addr_proto;
    __u8 is_frag, is_first_frag, is_encap, ip_proto;
    __be16 n_proto, sport, dport;
    union {
        struct { __be32 ipv4_src, ipv4_dst; };
        struct { __u32 ipv6_src[4], ipv6_dst[4]; };
    };
    __u32 flags;
    __be32 flow_label;
};

struct __sk_buff {
    __u32 len, pkt_type, mark, queue_mapping, protocol, vlan_present, vlan_tci, vlan_proto, priority;
    __u32 ingress_ifindex, ifindex, tc_index;
    __u32 cb[5];
    __u32 hash, tc_classid, data, data_end, napi_id;
    __u32 family, remote_ip4, local_ip4;
    __u32 remote_ip6[4], local_ip6[4];
    __u32 remote_port, local_port, data_meta;
    __md_ptr(struct bpf_flow_keys *, flow_keys);
    __u64 tstamp;
    __u32 wire_len, gso_segs;
    __md_ptr(struct bpf_sock *, sk);
    __u32 gso_size;
    __u8 tstamp_type;
    __u32 :24;
    __u64 hwtstamp;
};

struct bpf_sk_lookup {
    union { __md_ptr(struct bpf_sock *, sk); __u64 cookie; };
    __u32 family, protocol, remote_ip4;
    __u32 remote_ip6[4];
    __be16 remote_port;
    __u16 :16;
    __u32 local_ip4;
    __u32 local_ip6[4];
    __u32 local_port, ingress_ifindex;
};

struct bpf_sock_addr {
    __u32 user_family, user_ip4;
    __u32 user_ip6[4];
    __u32 user_port, family, type, protocol, msg_src_ip4;
    __u32 msg_src_ip6[4];
    __md_ptr(struct bpf_sock *, sk);
};

struct bpf_sock_ops {
    __u32 op;
    union { __u32 args[4]; __u32 reply; __u32 replylong[4]; };
    __u32 family, remote_ip4, local_ip4;
    __u32 remote_ip6[4], local_ip6[4];
    __u32 remote_port, local_port, is_fullsock, snd_cwnd, srtt_us, bpf_sock_ops_cb_flags, state;
    __u32 rtt_min, snd_ssthresh, rcv_nxt, snd_nxt, snd_una, mss_cache, ecn_flags, rate_delivered;
    __u32 rate_interval_us, packets_out, retrans_out, total_retrans, segs_in, data_segs_in;
    __u32 segs_out, data_segs_out, lost_out, sacked_out, sk_txhash;
    __u64 bytes_received, bytes_acked;
    __md_ptr(struct bpf_sock *, sk);
    __md_ptr(void *, skb_data);
    __md_ptr(void *, skb_data_end);
    __u32 skb_len, skb_tcp_flags;
};

struct sk_msg_md {
    __md_ptr(void *, data);
    __md_ptr(void *, data_end);
    __u32 family, remote_ip4, local_ip4;
    __u32 remote_ip6[4], local_ip6[4];
    __u32 remote_port, local_port, size;
    __md_ptr(struct bpf_sock *, sk);
};

struct bpf_cgroup_storage_key {
    __u64 cgroup_inode_id;
    __u32 attach_type;
};

struct sockaddr_in {
    __u16 sin_family;
    __be16 sin_port;
    __be32 sin_addr;
    __u8 sin_zero[8];
};

#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_CGROUP_STORAGE 19
#define BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE 21
#define BPF_MAP_TYPE_SK_STORAGE 24
#define BPF_F_NO_PREALLOC 1
#define BPF_SK_STORAGE_GET_F_CREATE 1
#define BPF_OK 0
#define BPF_DROP 2
#define SK_DROP 0
#define SK_PASS 1
#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_skb_store_bytes)(void *skb, __u32 offset, const void *from, __u32 len, __u64 flags) = (void *)9;
static long (*bpf_l3_csum_replace)(void *skb, __u32 offset, __u64 from, __u64 to, __u64 size) = (void *)10;
static long (*bpf_skb_load_bytes)(const void *skb, __u32 offset, void *to, __u32 len) = (void *)26;
static void *(*bpf_get_local_storage)(void *map, __u64 flags) = (void *)81;
static void *(*bpf_sk_storage_get)(void *map, void *sk, void *value, __u64 flags) = (void *)107;
static long (*bpf_sk_storage_delete)(void *map, void *sk) = (void *)108;
static long (*bpf_setsockopt)(void *ctx, int level, int optname, void *optval, int optlen) = (void *)49;
static long (*bpf_getsockopt)(void *ctx, int level, int optname, void *optval, int optlen) = (void *)57;
static long (*bpf_sock_ops_cb_flags_set)(struct bpf_sock_ops *ops, int argval) = (void *)59;
static long (*bpf_bind)(struct bpf_sock_addr *ctx, void *addr, int addr_len) = (void *)64;
static long (*bpf_msg_apply_bytes)(struct sk_msg_md *msg, __u32 bytes) = (void *)61;
static long (*bpf_msg_cork_bytes)(struct sk_msg_md *msg, __u32 bytes) = (void *)62;
static long (*bpf_msg_pull_data)(struct sk_msg_md *msg, __u32 start, __u32 end, __u64 flags) = (void *)63;
static long (*bpf_msg_push_data)(struct sk_msg_md *msg, __u32 start, __u32 len, __u64 flags) = (void *)90;
static long (*bpf_msg_pop_data)(struct sk_msg_md *msg, __u32 start, __u32 len, __u64 flags) = (void *)91;
static long (*bpf_sk_assign)(void *ctx, void *sk, __u64 flags) = (void *)124;

#define bswap16(x) __builtin_bswap16(x)
#define bswap32(x) __builtin_bswap32(x)

char _license[] SEC("license") = "GPL";

#endif
