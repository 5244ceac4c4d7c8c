/*
 * __sk_buff writes the program types may not make: the kernel's verifier refuses both
 * programs ("invalid bpf_context access"); Mimic runs them and reports the write
 * (SKBContext.forbiddenWrites).
 */
#include "netprogs.h"

SEC("socket")
int filter_writes_mark(struct __sk_buff *skb) {
    skb->mark = 7; /* a socket filter may write cb only */
    return 0;
}

SEC("cgroup_skb/ingress")
int cgroup_writes_tc_index(struct __sk_buff *skb) {
    skb->tc_index = 3; /* cgroup_skb may write mark, priority, cb (and tstamp) */
    return 1;
}
