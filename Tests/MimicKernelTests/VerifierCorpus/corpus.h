/* Shared by the verifier corpus: Examples/mimic_bpf.h plus the socket-lookup and ring-buffer
 * declarations the fixtures need. Each fixture pairs programs the kernel's verifier rejects
 * with an accepted twin; manifest.json records the kernel's verdicts. */
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

struct bpf_sock;

#define BPF_F_CURRENT_NETNS (-1L)

static struct bpf_sock *(*bpf_sk_lookup_tcp)(void *ctx, struct bpf_sock_tuple *tuple, __u32 tuple_size,
                                             __u64 netns, __u64 flags) = (void *)84;
static long (*bpf_sk_release)(void *sock) = (void *)86;
static void (*bpf_ringbuf_discard)(void *data, __u64 flags) = (void *)133;

/* A packet's Ethernet + IPv4 headers, bounds-checked; NULL when the packet is shorter. */
#define PACKET_BOUNDS(ctx, data, data_end)                 \
    void *data = (void *)(long)(ctx)->data;                \
    void *data_end = (void *)(long)(ctx)->data_end
