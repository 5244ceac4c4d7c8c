/*
 * kvstore — a sample Mimic plugin in C: a key/value store, a clock and a logger for eBPF
 * programs, in the helper id range 10000-10005.
 *
 *   10000 long kv_put(const void *key, u32 key_len, u64 value)   0, or -ENOSPC when full
 *   10001 long kv_get(const void *key, u32 key_len, u64 *value)  0 and *value, or -ENOENT
 *   10002 u64  kv_count(void)                                     keys stored
 *   10003 u64  clock_ns(void)                                     CLOCK_MONOTONIC nanoseconds
 *   10004 long log_message(const char *text, u32 len)             logs the text; 0
 *   10005 u64  call_count(void)                                   this process's helper calls so far
 *
 * A bad pointer (an address the program cannot read or write) stops the program with an error
 * naming the helper: the plugin passes the status of host->read / host->write to host->fail.
 *
 * Build: ./build.sh (uses the toolchain's clang; see Docs/Plugins.md).
 */
#include "mimic_plugin.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KV_CAPACITY 256
#define KV_KEY_MAX 64

struct entry {
    uint32_t key_len;
    uint8_t key[KV_KEY_MAX];
    uint64_t value;
};

/* One store for the whole host process: every VM and process using the plugin shares it. */
static struct entry store[KV_CAPACITY];
static uint32_t store_count;
static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;

/* Per-process state (process_start / process_end). */
struct process_state {
    uint64_t calls;
};

static struct entry *find(const uint8_t *key, uint32_t len) {
    for (uint32_t i = 0; i < store_count; i++) {
        if (store[i].key_len == len && memcmp(store[i].key, key, len) == 0) return &store[i];
    }
    return NULL;
}

static void count_call(struct mimic_call *call) {
    struct process_state *state = call->process_data;
    if (state) state->calls++;
}

/* Reads a key argument; on failure stops the program with a message naming the helper. */
static int read_key(const struct mimic_host *host, struct mimic_call *call, const char *helper,
                    uint64_t address, uint64_t len, uint8_t *key) {
    if (len == 0 || len > KV_KEY_MAX) {
        char message[96];
        snprintf(message, sizeof message, "%s: key length %llu is not 1-%d", helper,
                 (unsigned long long)len, KV_KEY_MAX);
        host->fail(call, MIMIC_ERR_INVALID, message);
        return -1;
    }
    int32_t status = host->read(call, address, key, len);
    if (status != MIMIC_OK) {
        char message[96];
        snprintf(message, sizeof message, "%s: cannot read the key", helper);
        host->fail(call, status, message);
        return -1;
    }
    return 0;
}

static uint64_t kv_put(const struct mimic_host *host, struct mimic_call *call, uint64_t key_ptr,
                       uint64_t key_len, uint64_t value, uint64_t r4, uint64_t r5) {
    (void)r4; (void)r5;
    count_call(call);
    uint8_t key[KV_KEY_MAX];
    if (read_key(host, call, "kv_put", key_ptr, (uint32_t)key_len, key) != 0) return 0;
    uint32_t len = (uint32_t)key_len;
    pthread_mutex_lock(&store_lock);
    struct entry *slot = find(key, len);
    if (!slot && store_count < KV_CAPACITY) {
        slot = &store[store_count++];
        slot->key_len = len;
        memcpy(slot->key, key, len);
    }
    if (slot) slot->value = value;
    pthread_mutex_unlock(&store_lock);
    return slot ? 0 : (uint64_t)(int64_t)-ENOSPC;
}

static uint64_t kv_get(const struct mimic_host *host, struct mimic_call *call, uint64_t key_ptr,
                       uint64_t key_len, uint64_t value_ptr, uint64_t r4, uint64_t r5) {
    (void)r4; (void)r5;
    count_call(call);
    uint8_t key[KV_KEY_MAX];
    if (read_key(host, call, "kv_get", key_ptr, (uint32_t)key_len, key) != 0) return 0;
    pthread_mutex_lock(&store_lock);
    struct entry *slot = find(key, (uint32_t)key_len);
    uint64_t value = slot ? slot->value : 0;
    pthread_mutex_unlock(&store_lock);
    if (!slot) return (uint64_t)(int64_t)-ENOENT;
    int32_t status = host->write(call, value_ptr, &value, sizeof value);
    if (status != MIMIC_OK) {
        host->fail(call, status, "kv_get: cannot write the value");
        return 0;
    }
    return 0;
}

static uint64_t kv_count(const struct mimic_host *host, struct mimic_call *call, uint64_t r1,
                         uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5) {
    (void)host; (void)r1; (void)r2; (void)r3; (void)r4; (void)r5;
    count_call(call);
    pthread_mutex_lock(&store_lock);
    uint64_t count = store_count;
    pthread_mutex_unlock(&store_lock);
    return count;
}

static uint64_t clock_ns(const struct mimic_host *host, struct mimic_call *call, uint64_t r1,
                         uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5) {
    (void)host; (void)r1; (void)r2; (void)r3; (void)r4; (void)r5;
    count_call(call);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static uint64_t log_message(const struct mimic_host *host, struct mimic_call *call,
                            uint64_t text_ptr, uint64_t len, uint64_t r3, uint64_t r4, uint64_t r5) {
    (void)r3; (void)r4; (void)r5;
    count_call(call);
    char text[257];
    if (len > 256) len = 256;
    int32_t status = host->read(call, text_ptr, text, len);
    if (status != MIMIC_OK) {
        host->fail(call, status, "log_message: cannot read the text");
        return 0;
    }
    text[len] = 0;
    host->log(call, MIMIC_LOG_INFO, text);
    return 0;
}

static uint64_t call_count(const struct mimic_host *host, struct mimic_call *call, uint64_t r1,
                           uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5) {
    (void)host; (void)r1; (void)r2; (void)r3; (void)r4; (void)r5;
    count_call(call);
    struct process_state *state = call->process_data;
    return state ? state->calls : 0;
}

static void *process_start(const struct mimic_host *host, uint64_t process_id, uint32_t vcpu) {
    (void)host; (void)process_id; (void)vcpu;
    return calloc(1, sizeof(struct process_state));
}

static void process_end(const struct mimic_host *host, uint64_t process_id, void *data) {
    (void)host; (void)process_id;
    free(data);
}

static const struct mimic_helper helpers[] = {
    {.id = 10000, .name = "kv_put", .function = kv_put},
    {.id = 10001, .name = "kv_get", .function = kv_get},
    {.id = 10002, .name = "kv_count", .function = kv_count},
    {.id = 10003, .name = "clock_ns", .function = clock_ns},
    {.id = 10004, .name = "log_message", .function = log_message},
    {.id = 10005, .name = "call_count", .function = call_count},
};

static const struct mimic_plugin plugin = {
    .abi_major = MIMIC_PLUGIN_ABI_MAJOR,
    .abi_minor = MIMIC_PLUGIN_ABI_MINOR,
    .size = sizeof(struct mimic_plugin),
    .name = "kvstore",
    .version = "1.0",
    .description = "A key/value store, a clock and a logger (helpers 10000-10005)",
    .helper_count = sizeof helpers / sizeof helpers[0],
    .helpers = helpers,
    .process_start = process_start,
    .process_end = process_end,
};

__attribute__((visibility("default")))
const struct mimic_plugin *mimic_plugin_entry(const struct mimic_host *host) {
    if (host->abi_major != MIMIC_PLUGIN_ABI_MAJOR) return NULL;
    return &plugin;
}
