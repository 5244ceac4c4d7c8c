/*
 * A sock_ops program of the TCP header-option callbacks (after the kernel's selftest
 * test_tcp_hdr_options.c): it reserves option space in HDR_OPT_LEN_CB, writes an experimental
 * option (kind 254, magic 0xeb9f) in WRITE_HDR_OPT_CB and reads options back in
 * PARSE_HDR_OPT_CB, recording every helper's answer, the error cases included, in `results`.
 * The kernel's BPF_PROG_TEST_RUN does not run sock_ops: TCPHeaderOptionTests runs it in Mimic
 * against the semantics of net/core/filter.c; its verifier loads it (TCPHeaderOptionKernelTests).
 */
#include "netprogs.h"

static long (*bpf_load_hdr_opt)(struct bpf_sock_ops *skops, void *searchby_res, __u32 len, __u64 flags) = (void *)142;
static long (*bpf_store_hdr_opt)(struct bpf_sock_ops *skops, const void *from, __u32 len, __u64 flags) = (void *)143;
static long (*bpf_reserve_hdr_opt)(struct bpf_sock_ops *skops, __u32 len, __u64 flags) = (void *)144;

#define BPF_SOCK_OPS_PARSE_HDR_OPT_CB 13
#define BPF_SOCK_OPS_HDR_OPT_LEN_CB 14
#define BPF_SOCK_OPS_WRITE_HDR_OPT_CB 15
#define BPF_LOAD_HDR_OPT_TCP_SYN 1
#define TCPOPT_EXP 254

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 48);
    __type(key, __u32);
    __type(value, __u64);
} results SEC(".maps");

static __attribute__((always_inline)) void note(__u32 slot, __u64 value) {
    bpf_map_update_elem(&results, &slot, &value, 0);
}

/* kind 254, length 8, magic eb 9f, four bytes of data */
/* 1 when skb_data_end is exactly n bytes past skb_data (the verifier allows comparisons of
 * packet pointers, not their difference). */
#define SPAN(skops, n) ((skops)->skb_data + (n) <= (skops)->skb_data_end && (skops)->skb_data + (n) + 1 > (skops)->skb_data_end)

struct exp_opt {
    __u8 kind, len;
    __u8 magic[2];
    __u8 data[4];
};

SEC("sockops")
int hdr_opt(struct bpf_sock_ops *skops) {
    struct exp_opt opt = {TCPOPT_EXP, 8, {0xeb, 0x9f}, {1, 2, 3, 4}};
    __u8 buf[8] = {};
    switch (skops->op) {
    case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
        note(0, bpf_reserve_hdr_opt(skops, 1, 0));       /* -EINVAL */
        note(1, bpf_reserve_hdr_opt(skops, 8, 1));       /* -EINVAL */
        note(2, bpf_reserve_hdr_opt(skops, 41, 0));      /* -ENOSPC */
        note(3, bpf_reserve_hdr_opt(skops, 6, 0));       /* 0 */
        note(4, bpf_store_hdr_opt(skops, &opt, 8, 0));   /* -EPERM */
        buf[0] = 2;
        note(5, bpf_load_hdr_opt(skops, buf, 8, 0));     /* -EPERM */
        note(6, SPAN(skops, 0));                         /* skb_data_end at skb_data: 1 */
        break;
    case BPF_SOCK_OPS_WRITE_HDR_OPT_CB: {
        note(23, SPAN(skops, 24));                       /* the reserved space starts at 24: 1 */
        note(10, bpf_reserve_hdr_opt(skops, 4, 0));      /* -EPERM */
        note(11, bpf_store_hdr_opt(skops, &opt, 8, 1));  /* flags: -EINVAL */
        note(12, bpf_store_hdr_opt(skops, &opt, 4, 0));  /* length above len: -EINVAL */
        opt.kind = 253;
        opt.len = 3;
        note(13, bpf_store_hdr_opt(skops, &opt, 8, 0));  /* experimental, shorter than 4: -EINVAL */
        opt.kind = 2;
        opt.len = 4;
        note(14, bpf_store_hdr_opt(skops, &opt, 8, 0));  /* an MSS option is there: -EEXIST */
        opt.kind = TCPOPT_EXP;
        opt.len = 8;
        note(15, bpf_store_hdr_opt(skops, &opt, 8, 0));  /* 0 */
        opt.len = 4;
        note(22, bpf_store_hdr_opt(skops, &opt, 8, 0));  /* kind and magic there: -EEXIST */
        opt.len = 8;
        note(16, bpf_store_hdr_opt(skops, &opt, 8, 0));  /* 4 bytes left, checked first: -ENOSPC */
        opt.magic[1] = 0x9e;
        note(17, bpf_store_hdr_opt(skops, &opt, 8, 0));  /* -ENOSPC */
        opt.kind = 253;
        opt.len = 4;
        note(18, bpf_store_hdr_opt(skops, &opt, 8, 0));  /* 0 */
        note(19, SPAN(skops, 36));                       /* 12 bytes written: 1 */
        buf[0] = TCPOPT_EXP;
        buf[1] = 4;
        buf[2] = 0xeb;
        buf[3] = 0x9f;
        note(20, bpf_load_hdr_opt(skops, buf, 8, 0));    /* the option written: 8 */
        note(21, *(__u64 *)buf);
        break;
    }
    case BPF_SOCK_OPS_PARSE_HDR_OPT_CB: {
        buf[0] = TCPOPT_EXP;
        buf[1] = 4;
        buf[2] = 0xeb;
        buf[3] = 0x9f;
        note(30, bpf_load_hdr_opt(skops, buf, 8, 0));    /* 8 */
        note(31, *(__u64 *)buf);
        buf[0] = TCPOPT_EXP;
        buf[1] = 4;
        buf[2] = 0xeb;
        buf[3] = 0x9f;
        note(32, bpf_load_hdr_opt(skops, buf, 4, 0));    /* 8 bytes into 4: -ENOSPC */
        buf[0] = TCPOPT_EXP;
        buf[1] = 6;                                      /* a 4-byte magic eb 9f 01 02 */
        buf[4] = 1;
        buf[5] = 2;
        note(33, bpf_load_hdr_opt(skops, buf, 8, 0));    /* 8 */
        buf[1] = 6;
        buf[5] = 9;
        note(34, bpf_load_hdr_opt(skops, buf, 8, 0));    /* -ENOMSG */
        buf[0] = 2;
        buf[1] = 0;
        note(35, bpf_load_hdr_opt(skops, buf, 8, 0));    /* the MSS option: 4 */
        buf[1] = 4;
        note(36, bpf_load_hdr_opt(skops, buf, 8, 0));    /* a length for a kind without magic: -EINVAL */
        buf[0] = 2;
        buf[1] = 0;
        note(37, bpf_load_hdr_opt(skops, buf, 8, BPF_LOAD_HDR_OPT_TCP_SYN)); /* the SYN's MSS: 4 */
        note(40, *(__u32 *)buf);
        buf[0] = 1;
        note(38, bpf_load_hdr_opt(skops, buf, 8, 2));    /* -EINVAL */
        buf[0] = 5;
        buf[1] = 0;
        note(39, bpf_load_hdr_opt(skops, buf, 8, 0));    /* no SACK option: -ENOMSG */
        break;
    }
    }
    return 1;
}
