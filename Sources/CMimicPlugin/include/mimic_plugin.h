/*
 * mimic_plugin.h — the C ABI between Mimic and emulator plugins.
 *
 * This header is the single source of truth for the plugin ABI. A plugin is a shared library
 * (.so / .dylib) that exports one C symbol, `mimic_plugin_entry`. Mimic opens it with
 * dlopen(RTLD_NOW | RTLD_LOCAL), calls the entry once with its table of host services, and reads
 * the description the entry returns: the plugin's name, its helper functions (id, name, C
 * function pointer) and, reserved for later versions, map types.
 *
 * Why C: host and plugin each link their own copy of any Swift module, and Swift type identity
 * does not cross a dlopen boundary. Only the plain C data declared here crosses. A plugin
 * written in Swift exports the entry with @_cdecl("mimic_plugin_entry") and uses these types.
 *
 * Versioning. MIMIC_PLUGIN_ABI_MAJOR changes only when an existing field or function changes
 * meaning, type or position; the host refuses a plugin whose major differs from its own.
 * MIMIC_PLUGIN_ABI_MINOR grows when fields are appended. The header is APPEND-ONLY: new fields go
 * at the end of a struct, new enum values get new numbers, nothing is removed or reordered.
 * Every struct that may grow starts with (or carries) a `size` field, filled with
 * sizeof(struct ...) by whoever builds it, so the reader knows which fields exist.
 *   - The host reads a field of `struct mimic_plugin` only if the plugin's `size` covers it.
 *   - A plugin uses a service of `struct mimic_host` only if the host's `size` covers it
 *     (MIMIC_HOST_HAS(host, field)).
 *
 * Threads. Helpers of one plugin may run on several threads at once (one per running process);
 * the host-service table is immutable and safe to use from any thread; a `struct mimic_call` is
 * used by one thread and is valid only until the helper returns.
 *
 * Lifetime. The host never dlcloses a plugin (a library containing Swift code cannot be safely
 * unloaded), so everything the entry returns must stay valid for the life of the process.
 */
#ifndef MIMIC_PLUGIN_H
#define MIMIC_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The ABI version this header describes. */
#define MIMIC_PLUGIN_ABI_MAJOR 1
#define MIMIC_PLUGIN_ABI_MINOR 0

/** The name of the symbol every plugin exports (type: mimic_plugin_entry_fn). */
#define MIMIC_PLUGIN_ENTRY_SYMBOL "mimic_plugin_entry"

/** The most helpers (and map types) one plugin may describe; more is refused as corrupt. */
#define MIMIC_PLUGIN_MAX_HELPERS 65536

/* ---------------------------------------------------------------------------------------------
 * Status codes returned by host services. 0 is success; failures are negative.
 * ------------------------------------------------------------------------------------------- */
enum mimic_status {
    MIMIC_OK = 0,
    /** No region is mapped at the address (NULL, a small integer, a freed region). */
    MIMIC_ERR_UNMAPPED = -1,
    /** The address lies in a region but the access runs past its end. */
    MIMIC_ERR_OUT_OF_BOUNDS = -2,
    /** A write to a read-only region. */
    MIMIC_ERR_READ_ONLY = -3,
    /** A bad argument: register index, NULL buffer, region not allocated by this plugin. */
    MIMIC_ERR_INVALID = -4,
    /** The VM could not allocate or map the region (too large, out of address slots). */
    MIMIC_ERR_NO_SPACE = -5,
    /** The service is not available here (e.g. no process behind the call). */
    MIMIC_ERR_UNSUPPORTED = -6,
};

/** True for the status codes of a memory fault (unmapped, out of bounds, read-only). */
#define MIMIC_STATUS_IS_FAULT(status) ((status) <= MIMIC_ERR_UNMAPPED && (status) >= MIMIC_ERR_READ_ONLY)

/** Levels of host->log. */
enum mimic_log_level {
    MIMIC_LOG_DEBUG = 0,
    MIMIC_LOG_INFO = 1,
    MIMIC_LOG_WARNING = 2,
    MIMIC_LOG_ERROR = 3,
    /** Program output the plugin produced on the program's behalf (e.g. bpf_trace_printk). */
    MIMIC_LOG_TRACE = 4,
};

/** Flags of host->allocate. */
enum mimic_region_flags {
    /** The program may read but not write the region (host->write refuses too). */
    MIMIC_REGION_READ_ONLY = 1u << 0,
    /* Bits 1-31 are reserved and must be 0. */
};

/* ---------------------------------------------------------------------------------------------
 * One helper call. The host builds it for each call and passes it to the helper; the helper
 * passes it back to host services. Valid only until the helper returns; never store it.
 * ------------------------------------------------------------------------------------------- */
struct mimic_call {
    /** sizeof(struct mimic_call) as the host knows it. */
    uint32_t size;
    /** The id the program called (the descriptor's id). */
    int32_t helper_id;
    /** The descriptor's `data` pointer, unchanged: lets one C function serve several helpers. */
    void *helper_data;
    /** What the plugin's process_start returned for this process (NULL without process_start). */
    void *process_data;
    /** A number unique to the calling process for the life of the host (never 0). */
    uint64_t process_id;
    /** The virtual CPU the process runs on (per-CPU data, bpf_get_smp_processor_id). */
    uint32_t vcpu;
    /** Reserved, 0. */
    uint32_t reserved;
    /** Host-private from here on: plugins must neither read nor write these fields. */
    void *host_process;
    uint64_t host_magic;
    uint32_t host_flags;
    uint32_t host_library;
};

/* ---------------------------------------------------------------------------------------------
 * Host services. The host passes one immutable table to the entry and to every helper call.
 * ------------------------------------------------------------------------------------------- */
struct mimic_host {
    /** The host's ABI version (MIMIC_PLUGIN_ABI_MAJOR / _MINOR it was built with). */
    uint32_t abi_major;
    uint32_t abi_minor;
    /** sizeof(struct mimic_host) as the host knows it; see MIMIC_HOST_HAS. */
    uint32_t size;
    /** Reserved, 0. */
    uint32_t reserved;

    /** Register `index` (0-10) of the calling process; 0 for an invalid index. R1-R5 are also
     * the helper's arguments. */
    uint64_t (*get_register)(struct mimic_call *call, uint32_t index);

    /** Sets register `index` (0-9; R10, the frame pointer, is read-only). R0 is overwritten by
     * the helper's return value. Returns MIMIC_OK or MIMIC_ERR_INVALID. */
    int32_t (*set_register)(struct mimic_call *call, uint32_t index, uint64_t value);

    /** Copies `size` bytes of VM memory at `address` into `buffer`, bounds-checked. Returns
     * MIMIC_OK or a fault status (nothing is copied then); the host remembers the fault so that
     * host->fail can report it. */
    int32_t (*read)(struct mimic_call *call, uint64_t address, void *buffer, uint64_t size);

    /** Copies `size` bytes from `buffer` to VM memory at `address`, bounds-checked; read-only
     * regions refuse. Returns MIMIC_OK or a fault status (nothing is written then). */
    int32_t (*write)(struct mimic_call *call, uint64_t address, const void *buffer, uint64_t size);

    /** Allocates a region of `size` bytes in the calling process's VM memory, filled from
     * `initial` (`size` bytes) or zeroed when `initial` is NULL, and stores its VM address in
     * `*address`. `name` (may be NULL) appears in fault messages; `flags` are mimic_region_flags.
     * The region lives until host->free or the end of the process. Returns MIMIC_OK,
     * MIMIC_ERR_INVALID or MIMIC_ERR_NO_SPACE. */
    int32_t (*allocate)(struct mimic_call *call, uint64_t size, const void *initial, uint32_t flags,
                        const char *name, uint64_t *address);

    /** Frees a region host->allocate returned to this plugin in this process; its addresses
     * fault from then on. Returns MIMIC_OK or MIMIC_ERR_INVALID. */
    int32_t (*free)(struct mimic_call *call, uint64_t address);

    /** Stops the program once the helper returns, with an error naming the helper and saying
     * `message` (copied; may be NULL). `status` is the status the plugin got from a host service,
     * or 0: when it is a fault status, the host adds the fault it remembered (address, size,
     * region). With a NULL or empty message and a fault status, the error is the fault itself,
     * exactly as for a statically linked helper. The helper's return value is ignored. */
    void (*fail)(struct mimic_call *call, int32_t status, const char *message);

    /** Stops the program once the helper returns, successfully, with the helper's return value
     * in R0 (like the conformance `unwind` helper or bpf_exit). */
    void (*request_exit)(struct mimic_call *call);

    /** Logs `message` (copied) at `level` (mimic_log_level). `call` may be NULL outside a
     * helper call (e.g. in the entry or process callbacks). The host decides where logs go
     * (standard error by default). */
    void (*log)(struct mimic_call *call, int32_t level, const char *message);
};

/** Whether `host` has the service or field `field` (it was built with a header that has it). */
#define MIMIC_HOST_HAS(host, field)                                                               \
    ((host)->size >= offsetof(struct mimic_host, field) + sizeof((host)->field))

/* ---------------------------------------------------------------------------------------------
 * What a plugin provides.
 * ------------------------------------------------------------------------------------------- */

/** A helper function: `r1`-`r5` are the program's R1-R5; the result goes to R0.
 * To fail, call host->fail and return (any value). */
typedef uint64_t (*mimic_helper_fn)(const struct mimic_host *host, struct mimic_call *call,
                                    uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5);

/** One helper a plugin provides. */
struct mimic_helper {
    /** The id programs `call`. Kernel helpers use 1-211 and up; pick a free range for your own
     * (Mimic's samples use 10000 and up). Ids must be unique within a plugin, and not clash with
     * the other emulators a host combines the plugin with. Must not be negative. */
    int32_t id;
    /** Reserved, 0. */
    uint32_t flags;
    /** The helper's name (NUL-terminated, non-empty), e.g. "kv_get"; used in messages. */
    const char *name;
    /** The implementation; must not be NULL. */
    mimic_helper_fn function;
    /** Passed to the function as call->helper_data. */
    void *data;
};

/** A map type a plugin provides. RESERVED in ABI 1.0: the host lists these (`mimic plugins`)
 * but creates no maps through plugins yet; describe none (count 0, NULL) until a minor version
 * defines the map callbacks, which will be appended here. */
struct mimic_map_type {
    /** The BPF_MAP_TYPE_* number programs declare. */
    uint32_t type;
    /** Reserved, 0. */
    uint32_t flags;
    /** The map type's name, e.g. "BPF_MAP_TYPE_MY_TABLE". */
    const char *name;
};

/** What the entry returns: the plugin's description. Static data, valid forever. */
struct mimic_plugin {
    /** The ABI the plugin was built against: MIMIC_PLUGIN_ABI_MAJOR / _MINOR. */
    uint32_t abi_major;
    uint32_t abi_minor;
    /** sizeof(struct mimic_plugin) as the plugin knows it. */
    uint32_t size;
    /** Reserved, 0. */
    uint32_t flags;
    /** The plugin's name (NUL-terminated, non-empty), e.g. "kvstore"; used in messages. */
    const char *name;
    /** Free-form version text, or NULL. */
    const char *version;
    /** One line saying what the plugin provides, or NULL. */
    const char *description;

    /** The helpers: `helper_count` entries (at most MIMIC_PLUGIN_MAX_HELPERS). */
    uint32_t helper_count;
    uint32_t reserved0;
    const struct mimic_helper *helpers;

    /** Reserved in ABI 1.0 (see struct mimic_map_type): `map_type_count` entries. */
    uint32_t map_type_count;
    uint32_t reserved1;
    const struct mimic_map_type *map_types;

    /** Called when a process that may call this plugin's helpers is created, before it runs;
     * the result is passed to helpers as call->process_data. May be NULL. `vcpu` is the
     * process's virtual CPU. */
    void *(*process_start)(const struct mimic_host *host, uint64_t process_id, uint32_t vcpu);

    /** Called when that process is gone (on the thread that released it), with what
     * process_start returned. May be NULL. */
    void (*process_end)(const struct mimic_host *host, uint64_t process_id, void *process_data);
};

/** The entry point: `const struct mimic_plugin *mimic_plugin_entry(const struct mimic_host *)`.
 * Called once per load, before any helper; may keep `host` (valid forever). Returns the
 * plugin's description, or NULL to refuse loading (log why with host->log first). */
typedef const struct mimic_plugin *(*mimic_plugin_entry_fn)(const struct mimic_host *host);

#ifdef __cplusplus
}
#endif

#endif /* MIMIC_PLUGIN_H */
