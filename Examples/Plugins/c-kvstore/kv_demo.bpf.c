/* An eBPF program calling the kvstore plugin's helpers (ids 10000-10005).
 * Build: ./build.sh. Load with a VM whose emulator includes PluginLibrary.load(path: "libkvstore.so")
 * (Docs/Plugins.md; MimicPluginTests runs it). */
typedef unsigned long long u64;
typedef unsigned int u32;

#define SEC(name) __attribute__((section(name), used))

static long (*kv_put)(const void *key, u32 key_len, u64 value) = (void *)10000;
static long (*kv_get)(const void *key, u32 key_len, u64 *value) = (void *)10001;
static u64 (*kv_count)(void) = (void *)10002;
static u64 (*clock_ns)(void) = (void *)10003;
static long (*log_message)(const char *text, u32 len) = (void *)10004;
static u64 (*call_count)(void) = (void *)10005;

/* Stores two values, reads one back, logs, and returns value + 1000 * keys + calls made. */
SEC("socket")
int kv_demo(void *ctx)
{
    char apples[] = "apples";
    char pears[] = "pears";
    char hello[] = "hello from eBPF";
    u64 value = 0;

    u64 start = clock_ns();
    kv_put(apples, sizeof(apples) - 1, 41);
    kv_put(pears, sizeof(pears) - 1, 7);
    if (kv_get(apples, sizeof(apples) - 1, &value) != 0)
        return -1;
    if (clock_ns() < start)
        return -2;
    log_message(hello, sizeof(hello) - 1);
    return (int)(value + 1 + 1000 * kv_count() + 100000 * call_count());
}

/* Passes a pointer the program does not own: the plugin's read faults, the program stops. */
SEC("socket")
int kv_bad_pointer(void *ctx)
{
    u64 value = 0;
    return kv_get((const void *)0x10, 4, &value);
}

char LICENSE[] SEC("license") = "GPL";
