/* A tc program that chooses its path by skb->mark and the control block, as Katran's health
 * checker does, and writes mark, priority, cb and tc_classid back. */
#include "../../../Examples/mimic_bpf.h"

SEC("tc")
int tc_mark(struct __sk_buff *skb)
{
    __u32 mark = skb->mark;
    skb->cb[1] = skb->cb[0] * 2 + skb->ingress_ifindex;
    skb->cb[4] = skb->len;
    skb->priority = skb->priority + 7;
    skb->tc_classid = 0x10002;
    if (mark == 5) {
        skb->mark = 0x55;
        return TC_ACT_OK;
    }
    skb->mark = mark | 0x100;
    return TC_ACT_SHOT;
}

char _license[] SEC("license") = "GPL";
