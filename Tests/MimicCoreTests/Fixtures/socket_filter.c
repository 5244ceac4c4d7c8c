/* A socket filter: keeps at most 64 bytes of packets longer than 100 bytes, all of shorter ones. */
#include "../../../Examples/mimic_bpf.h"

SEC("socket")
int trim_long(struct __sk_buff *skb)
{
    if (skb->len > 100)
        return 64;
    return skb->len;
}

char _license[] SEC("license") = "Dual BSD/GPL";
