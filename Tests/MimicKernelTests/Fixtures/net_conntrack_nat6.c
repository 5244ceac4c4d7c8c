/* net_conntrack_nat.c's steps with IPv6 tuples (36 bytes, 2001:db8::host), as program
 * tc_ct_nat6: the kernel and Mimic must give the same answers as with IPv4 (ConntrackKernelTests). */
#define CT_NAT_IPV6 1
#include "net_conntrack_nat.c"
