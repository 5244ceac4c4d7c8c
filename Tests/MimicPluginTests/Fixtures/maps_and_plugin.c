/* A Linux map and the kvstore plugin (helpers 10000+) in one program: the plugin reads its key
 * from, and writes its value into, the map's value memory through the host's services. Build: ./build.sh */
typedef unsigned long long u64;
typedef unsigned int u32;

#define SEC(name) __attribute__((section(name), used))

struct entry {
    char key[8];
    u64 value;
};

struct {
    int (*type)[2];           /* BPF_MAP_TYPE_ARRAY */
    int (*max_entries)[1];
    u32 *key;
    struct entry *value;
} table SEC(".maps");

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*kv_put)(const void *key, u32 key_len, u64 value) = (void *)10000;
static long (*kv_get)(const void *key, u32 key_len, u64 *value) = (void *)10001;

SEC("socket")
int maps_and_plugin(void *ctx)
{
    u32 zero = 0;
    struct entry *entry = bpf_map_lookup_elem(&table, &zero);
    if (!entry)
        return -1;
    entry->key[0] = 'm';
    entry->key[1] = 'a';
    entry->key[2] = 'p';
    if (kv_put(entry->key, 3, 1234) != 0)
        return -2;
    if (kv_get(entry->key, 3, &entry->value) != 0)
        return -3;
    return (int)entry->value;
}

char LICENSE[] SEC("license") = "GPL";
