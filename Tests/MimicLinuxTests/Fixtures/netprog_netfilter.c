/*
 * A netfilter program (SEC("netfilter"), struct bpf_nf_ctx): it reads the hook and family from
 * ctx->state and the sk_buff's length, protocol and mark from ctx->skb through CO-RE (the
 * kernel structs are declared with preserve_access_index, as vmlinux.h declares them), reads
 * the packet through a read-only skb dynptr (a write fails: a netfilter program may not write
 * packets) and drops TCP to port 23 and UDP to port 9, accepting the rest. Every observation
 * goes to `seen` in .bss for the tests and the kernel's test run (bpf_prog_test_run_nf) to
 * compare.
 */
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef __u16 __be16;

#define SEC(name) __attribute__((section(name), used))
#define __ksym __attribute__((section(".ksyms")))

struct net_device {
    int ifindex;
} __attribute__((preserve_access_index));

struct nf_hook_state {
    __u8 hook;
    __u8 pf;
    struct net_device *in;
    struct net_device *out;
} __attribute__((preserve_access_index));

struct sk_buff {
    unsigned int len;
    unsigned int data_len;
    __be16 protocol;
    __u32 mark;
} __attribute__((preserve_access_index));

struct bpf_nf_ctx {
    const struct nf_hook_state *state;
    struct sk_buff *skb;
};

struct bpf_dynptr { __u64 __opaque[2]; } __attribute__((aligned(8)));

static long (*bpf_dynptr_write)(const struct bpf_dynptr *dst, __u32 offset, void *src, __u32 len, __u64 flags) = (void *)202;

extern int bpf_dynptr_from_skb(struct sk_buff *skb, __u64 flags, struct bpf_dynptr *ptr__uninit) __ksym;
extern void *bpf_dynptr_slice(const struct bpf_dynptr *p, __u32 offset, void *buffer__opt, __u32 buffer__szk) __ksym;
extern __u32 bpf_dynptr_size(const struct bpf_dynptr *p) __ksym;

#define NF_DROP 0
#define NF_ACCEPT 1

/* hook, pf, len, data_len, protocol, mark, out->ifindex (local_out and post_routing, where the
 * test run and a real hook agree), dynptr size, write result, first IP byte, L4 protocol,
 * destination port. */
long seen[12];

SEC("netfilter")
int nf_filter(struct bpf_nf_ctx *ctx)
{
    const struct nf_hook_state *state = ctx->state;
    struct sk_buff *skb = ctx->skb;
    struct bpf_dynptr ptr;
    __u8 ip[40] = {};
    __u8 ports[4] = {};

    seen[0] = state->hook;
    seen[1] = state->pf;
    seen[2] = skb->len;
    seen[3] = skb->data_len;
    seen[4] = skb->protocol;
    seen[5] = skb->mark;
    if (state->hook == 3 || state->hook == 4) {
        struct net_device *out = state->out;
        if (out)
            seen[6] = out->ifindex;
    }
    if (bpf_dynptr_from_skb(skb, 0, &ptr))
        return NF_ACCEPT;
    seen[7] = bpf_dynptr_size(&ptr);
    __u8 byte = 0x45;
    seen[8] = bpf_dynptr_write(&ptr, 0, &byte, 1, 0);

    __u32 l4;
    __u8 proto;
    if (state->pf == 2) {
        const __u8 *iph = bpf_dynptr_slice(&ptr, 0, ip, 20);
        if (!iph)
            return NF_ACCEPT;
        seen[9] = iph[0];
        proto = iph[9];
        l4 = (iph[0] & 0xf) * 4;
    } else {
        const __u8 *iph = bpf_dynptr_slice(&ptr, 0, ip, 40);
        if (!iph)
            return NF_ACCEPT;
        seen[9] = iph[0];
        proto = iph[6];
        l4 = 40;
    }
    seen[10] = proto;
    if (proto != 6 && proto != 17)
        return NF_ACCEPT;
    if (l4 < 20 || l4 > 60)
        return NF_ACCEPT;
    const __u8 *l4h = bpf_dynptr_slice(&ptr, l4, ports, 4);
    if (!l4h)
        return NF_ACCEPT;
    __u16 port = (__u16)l4h[2] << 8 | l4h[3];
    seen[11] = port;
    if ((proto == 6 && port == 23) || (proto == 17 && port == 9))
        return NF_DROP;
    return NF_ACCEPT;
}

char _license[] SEC("license") = "GPL";
