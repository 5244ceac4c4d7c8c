/* An eBPF program calling the Swift counter plugin's helpers (ids 20000-20005). Build: ./build.sh */
typedef unsigned long long u64;
typedef unsigned int u32;

#define SEC(name) __attribute__((section(name), used))

static u64 (*counter_add)(u64 key, u64 delta) = (void *)20000;
static u64 (*counter_get)(u64 key) = (void *)20001;
static u64 (*fnv1a)(const void *data, u32 len) = (void *)20002;
static long (*greet)(char *buffer, u32 size) = (void *)20003;
static void *(*make_buffer)(u32 size) = (void *)20004;
static long (*free_buffer)(void *buffer) = (void *)20005;

/* Returns 0 when every helper behaved; otherwise the number of the first check that failed. */
SEC("socket")
int counter_demo(void *ctx)
{
    char text[] = "abc";
    char greeting[32] = {};

    counter_add(7, 40);
    if (counter_add(7, 2) != 42 || counter_get(7) != 42)
        return 1;
    if (fnv1a(text, 3) != 0xe71fa2190541574bULL)  /* FNV-1a 64 of "abc" */
        return 2;
    if (greet(greeting, sizeof(greeting)) != 16 || greeting[0] != 'h' || greeting[11] != 'S')
        return 3;
    u64 *buffer = make_buffer(64);
    if (!buffer)
        return 4;
    buffer[7] = 1234;
    if (buffer[7] != 1234 || buffer[0] != 0)
        return 5;
    if (free_buffer(buffer) != 0 || free_buffer(buffer) == 0)
        return 6;
    return 0;
}

/* Hashes memory the program does not own: the plugin's read faults and the program stops. */
SEC("socket")
int counter_bad_pointer(void *ctx)
{
    return fnv1a((const void *)0x20, 8);
}

/* Uses a buffer after freeing it: the VM faults on the stale address. */
SEC("socket")
int counter_use_after_free(void *ctx)
{
    u64 *buffer = make_buffer(16);
    free_buffer(buffer);
    return buffer[0];
}

char LICENSE[] SEC("license") = "GPL";
