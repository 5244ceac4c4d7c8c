/* The stack: 512 bytes per program, counted over the deepest chain of BPF-to-BPF calls. */
#include "corpus.h"

static __noinline int fill(volatile char *buffer, int size, int seed)
{
    for (int i = 0; i < size; i += 64)
        buffer[i] = seed;
    return buffer[seed & 63];
}

static __noinline int inner_300(int seed)
{
    volatile char buffer[300];
    return fill(buffer, sizeof(buffer), seed);
}

static __noinline int outer_300(int seed)
{
    volatile char buffer[300];
    return fill(buffer, sizeof(buffer), seed) + inner_300(seed + 1);
}

static __noinline int inner_200(int seed)
{
    volatile char buffer[200];
    return fill(buffer, sizeof(buffer), seed);
}

static __noinline int outer_200(int seed)
{
    volatile char buffer[200];
    return fill(buffer, sizeof(buffer), seed) + inner_200(seed + 1);
}

/* Rejected: 300 + 300 bytes in a chain of calls exceeds the combined 512. */
SEC("xdp")
int stack_combined_too_large(struct xdp_md *ctx)
{
    return outer_300(ctx->rx_queue_index & 63) & 3;
}

/* Accepted twin: 200 + 200 bytes. */
SEC("xdp")
int stack_combined_ok(struct xdp_md *ctx)
{
    return outer_200(ctx->rx_queue_index & 63) & 3;
}

/* Rejected: a variable index that may reach past the 16-byte buffer. */
SEC("xdp")
int stack_variable_out_of_bounds(struct xdp_md *ctx)
{
    volatile char buffer[16] = {};
    buffer[ctx->rx_queue_index & 31] = 1;
    return buffer[0] & 3;
}

/* Accepted twin: the index is masked to the buffer. */
SEC("xdp")
int stack_variable_in_bounds(struct xdp_md *ctx)
{
    volatile char buffer[16] = {};
    buffer[ctx->rx_queue_index & 15] = 1;
    return buffer[0] & 3;
}
