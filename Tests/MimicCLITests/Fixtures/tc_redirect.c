/* A tc program for `mimic run --pcap --out-dir` (issue 14, output per interface): by IPv4
 * destination, 10.0.2.0/24 is redirected out of ifindex 2, 10.0.3.0/24 into ifindex 3's
 * receive path (BPF_F_INGRESS), 10.0.4.0/24 is cloned to ifindex 4 and dropped, 10.0.5.0/24 is
 * stolen, 10.0.6.0/24 returns TC_ACT_REDIRECT with no target, 10.0.7.0/24 returns TC_ACT_PIPE
 * (which cls_bpf treats as TC_ACT_UNSPEC: it passes); everything else passes (TC_ACT_OK). */
#include "../../../Examples/mimic_bpf.h"

#define BPF_F_INGRESS 1
#define TC_ACT_PIPE 3
#define TC_ACT_STOLEN 4
#define TC_ACT_REDIRECT 7
static long (*bpf_clone_redirect)(struct __sk_buff *skb, __u32 ifindex, __u64 flags) = (void *)13;

SEC("tc")
int tc_redirect(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return TC_ACT_OK;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return TC_ACT_OK;
    __u32 destination = bpf_ntohl(ip->daddr);
    switch ((destination >> 8) & 0xff) {
    case 2:
        return bpf_redirect(2, 0);
    case 3:
        return bpf_redirect(3, BPF_F_INGRESS);
    case 4:
        bpf_clone_redirect(skb, 4, 0);
        return TC_ACT_SHOT;
    case 5:
        return TC_ACT_STOLEN;
    case 6:
        return TC_ACT_REDIRECT;
    case 7:
        return TC_ACT_PIPE;
    default:
        return TC_ACT_OK;
    }
}

char _license[] SEC("license") = "GPL";
