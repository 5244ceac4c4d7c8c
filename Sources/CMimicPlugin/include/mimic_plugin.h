/*
 * mimic_plugin.h — the C ABI between Mimic and emulator plugins.
 *
 * This header is the single source of truth for the plugin ABI. A plugin is a shared library
 * (.so / .dylib) that exports one C symbol, `mimic_plugin_entry`. Mimic opens it with
 * dlopen(RTLD_NOW | RTLD_LOCAL), calls the entry once with its table of host services, and reads
 * the description the entry returns: the plugin's name, its helper functions (id, name, C
 * function pointer) and, since ABI 1.1, the map types it creates and the callbacks that let it be
 * the VM's map-providing environment (maps, global data, contexts, tail calls, callbacks), and,
 * since ABI 1.2, custom instructions for opcode bytes the eBPF instruction set leaves undefined.
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
#define MIMIC_PLUGIN_ABI_MINOR 2

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
    /** (1.1) A program callback host->call_function ran stopped with an error. Pass this status to
     * host->fail and the program stops with the callback's own error. */
    MIMIC_ERR_CALLBACK = -7,
    /** (1.1) A limit of the VM was reached (host->tail_call: the process already made the most
     * tail calls allowed; the kernel then falls through to the next instruction). */
    MIMIC_ERR_LIMIT = -8,
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

/** Flags of host->allocate (READ_ONLY only) and, since 1.1, of host->map_shared / map_region. */
enum mimic_region_flags {
    /** The program may read but not write the region (host->write refuses too). */
    MIMIC_REGION_READ_ONLY = 1u << 0,
    /** (1.1) A ring: offsets past the end wrap around to the start (ring buffer maps). Accesses
     * take the slow path. host->map_shared only. */
    MIMIC_REGION_RING = 1u << 1,
    /** (1.1) Place the region in the 32-bit window, so programs can read its addresses from 32-bit
     * context fields (packet buffers: xdp_md.data, __sk_buff.data_end). One region at a time per
     * process, at most 256 MiB. host->map_region only. */
    MIMIC_REGION_LOW32 = 1u << 2,
    /* Bits 3-31 are reserved and must be 0. */
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
    /** Host-private: plugins must neither read nor write these four fields. */
    void *host_process;
    uint64_t host_magic;
    uint32_t host_flags;
    uint32_t host_library;

    /* ---- ABI 1.1 (read only if MIMIC_CALL_HAS(call, field)) ---- */

    /** What the plugin's instance_create returned for the VM the process belongs to (NULL
     * without instance_create). */
    void *instance_data;
};

/** Whether `call` has the field `field` (the host was built with a header that has it). */
#define MIMIC_CALL_HAS(call, field)                                                               \
    ((call)->size >= offsetof(struct mimic_call, field) + sizeof((call)->field))

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

    /* ---- ABI 1.1 services (check MIMIC_HOST_HAS before use). They let a plugin keep the memory
     * of maps and contexts itself while programs reach it at VM addresses: the host maps the
     * plugin's bytes (it neither copies nor frees them), so pointers into map values and packets
     * are VM addresses the program dereferences directly. The plugin must keep the bytes alive
     * and unmoved until it unmaps them (map_region) or, for map_shared, until its
     * instance_destroy. ---- */

    /** Maps `size` bytes of plugin memory at `pointer` into the shared memory of the VM whose
     * instance is `instance_id` (the id instance_create received): every process created from
     * then on sees them at the address stored in `*address`. `flags`: MIMIC_REGION_READ_ONLY,
     * MIMIC_REGION_RING. `name` (may be NULL) appears in fault messages. Returns MIMIC_OK,
     * MIMIC_ERR_INVALID (unknown instance, bad flags, NULL pointer) or MIMIC_ERR_NO_SPACE. */
    int32_t (*map_shared)(uint64_t instance_id, void *pointer, uint64_t size, uint32_t flags,
                          const char *name, uint64_t *address);

    /** Maps `size` bytes of plugin memory at `pointer` into the calling process only (contexts,
     * packet buffers, scratch keys), at the address stored in `*address`. `flags`:
     * MIMIC_REGION_READ_ONLY, MIMIC_REGION_LOW32. The mapping lasts until unmap_region, the
     * process's reset (process_reset) or its end. Returns MIMIC_OK, MIMIC_ERR_INVALID or
     * MIMIC_ERR_NO_SPACE (e.g. the 32-bit window is taken). */
    int32_t (*map_region)(struct mimic_call *call, void *pointer, uint64_t size, uint32_t flags,
                          const char *name, uint64_t *address);

    /** Unmaps a region map_region mapped for this plugin in this process. Returns MIMIC_OK or
     * MIMIC_ERR_INVALID (no such region, e.g. already gone with a process reset). */
    int32_t (*unmap_region)(struct mimic_call *call, uint64_t address);

    /** Runs the program-local function at instruction slot `slot` of the calling program with
     * R1-R5 = `args` (bpf_loop, bpf_for_each_map_elem callbacks), as a BPF-to-BPF call would,
     * and stores its R0 in `*result`. The callback may call helpers (this plugin's too). Every
     * register is restored afterwards. Returns MIMIC_OK, MIMIC_ERR_INVALID (not a function of
     * the program) or MIMIC_ERR_CALLBACK (the callback stopped with an error: pass the status to
     * host->fail). */
    int32_t (*call_function)(struct mimic_call *call, uint64_t slot, const uint64_t args[5],
                             uint64_t *result);

    /** Asks for a tail call to the host program `program_id` (an id set_slot received) once the
     * helper returns: the program is replaced and R1 keeps its value. Returns MIMIC_OK,
     * MIMIC_ERR_INVALID (unknown program, or one of another VM) or MIMIC_ERR_LIMIT (the process
     * made the most tail calls allowed: do not jump; bpf_tail_call then returns -ENOENT). */
    int32_t (*tail_call)(struct mimic_call *call, uint64_t program_id);

    /** Tells the host where the packet of the calling process lives, for the legacy
     * ld_abs / ld_ind loads (after a context attached it, or a helper moved it). A `length` of 0
     * and `address` 0 means no packet. Returns MIMIC_OK or MIMIC_ERR_INVALID. */
    int32_t (*set_packet)(struct mimic_call *call, uint64_t address, uint64_t length);
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

/** (1.2) An instruction slot as loaded (struct bpf_insn, with the register nibbles apart). */
struct mimic_instruction {
    uint8_t opcode;
    uint8_t dst_reg;
    uint8_t src_reg;
    uint8_t reserved0;
    int16_t off;
    uint16_t reserved1;
    int32_t imm;
};

/** (1.2) A custom instruction's implementation: executes `insn` in the process behind `call`.
 * It reads and writes registers with host->get_register / set_register (R0 included: unlike a
 * helper's, nothing overwrites R0 afterwards) and memory with host->read / write. To fail, call
 * host->fail and return: the program stops with a custom-instruction error naming it.
 * `call->helper_id` is -1 and `call->helper_data` is the descriptor's `data`. */
typedef void (*mimic_custom_instruction_fn)(const struct mimic_host *host, struct mimic_call *call,
                                            const struct mimic_instruction *insn);

/** (1.2) A custom instruction a plugin provides: what the VM runs for a slot whose opcode byte
 * the eBPF instruction set leaves undefined (the host refuses a description that claims a
 * defined opcode). Every other invalid slot is still refused at load. The slot's dst_reg and
 * src_reg must name r0-r10; off and imm are the function's to interpret. It counts as one
 * instruction. */
struct mimic_custom_instruction {
    /** The opcode byte (one no eBPF instruction uses, e.g. 0xf7, 0xfe, 0xff). */
    uint8_t opcode;
    uint8_t reserved[3];
    /** Reserved, 0. */
    uint32_t flags;
    /** A name for messages and traces (NUL-terminated, non-empty), e.g. "vendor.popcnt". */
    const char *name;
    /** The implementation; must not be NULL. */
    mimic_custom_instruction_fn function;
    /** Passed to the function as call->helper_data. */
    void *data;
};

/** A map type a plugin creates (through create_map, ABI 1.1). The list is informational: the
 * host shows it (`mimic plugins`) and says which types exist when create_map refuses one. In
 * ABI 1.0 it was reserved (count 0). */
struct mimic_map_type {
    /** The BPF_MAP_TYPE_* number programs declare. */
    uint32_t type;
    /** Reserved, 0. */
    uint32_t flags;
    /** The map type's name, e.g. "BPF_MAP_TYPE_MY_TABLE". */
    const char *name;
};

/** (1.1) The map_lookup / map_update cpu that means every CPU's value at once. */
#define MIMIC_ALL_CPUS (-1)

/** (1.1) What set_slot puts into a slot. */
enum mimic_slot_kind {
    /** Empty the slot. */
    MIMIC_SLOT_CLEAR = 0,
    /** A host program id (prog arrays). */
    MIMIC_SLOT_PROGRAM = 1,
    /** An inner map's handle (maps of maps). */
    MIMIC_SLOT_MAP = 2,
};

/** (1.1) A map an object file declares (create_map), as the ELF loader read it. Built by the
 * host; valid during the call only. */
struct mimic_map_spec {
    /** sizeof(struct mimic_map_spec) as the host knows it. */
    uint32_t size;
    /** BPF_MAP_TYPE_*. */
    uint32_t type;
    uint32_t key_size;
    uint32_t value_size;
    uint32_t max_entries;
    /** map_flags (BPF_F_NO_PREALLOC, BPF_F_RDONLY_PROG, ...). */
    uint32_t flags;
    uint32_t numa_node;
    /** LIBBPF_PIN_NONE 0 / LIBBPF_PIN_BY_NAME 1 (informational: Mimic pins nothing). */
    uint32_t pinning;
    uint64_t map_extra;
    /** The map's name (NUL-terminated). */
    const char *name;
    /** The byte offset of the value's struct bpf_spin_lock (from BTF), or -1 for none. */
    int32_t spin_lock_offset;
    uint32_t reserved;
    /** For a map of maps: the template every inner map must match; NULL otherwise. */
    const struct mimic_map_spec *inner;
};

/** (1.1) A global-data section the host mapped (adopt_global_data). Valid during the call; the
 * bytes at `pointer` live as long as the VM. */
struct mimic_global_data {
    /** sizeof(struct mimic_global_data) as the host knows it. */
    uint32_t size;
    /** MIMIC_REGION_READ_ONLY for .rodata sections. */
    uint32_t flags;
    /** The section name (.data, .rodata, .bss, .data.custom, ...). */
    const char *name;
    /** The section's bytes as mapped, and their VM address. */
    void *pointer;
    uint64_t length;
    uint64_t address;
};

/** (1.1) One map of an instance (map_info). The host sets `size`; the plugin fills the rest. */
struct mimic_map_info {
    uint32_t size;
    uint32_t type;
    uint32_t key_size;
    uint32_t value_size;
    uint32_t max_entries;
    uint32_t flags;
    /** Values per key in MIMIC_ALL_CPUS lookups: the CPU count for per-CPU maps, else 1. */
    uint32_t value_count;
    uint32_t reserved;
    /** The map's handle (for the other map callbacks and programs). */
    uint64_t handle;
    /** The map's name; valid as long as the instance. */
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

    /** The map types create_map creates (informational, see struct mimic_map_type):
     * `map_type_count` entries. */
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

    /* ---- ABI 1.1 callbacks (the host reads them only if `size` covers them; each may be NULL).
     * With create_map the plugin is the VM's map-providing environment, as MimicLinux is when
     * linked statically: the host asks it to create an object's maps, resolve map references,
     * adopt global data and fill prog arrays and maps of maps. Map callbacks return 0 or a
     * negative errno, as bpf(2) would (-ENOENT: no such element, -EINVAL, -EPERM, ...). Error
     * texts go to `error` (NUL-terminated, at most `error_capacity` bytes with the NUL). ---- */

    /** Creates the plugin's state for one VM (a host process may run several VMs with one
     * plugin). `instance_id` identifies the VM in host->map_shared; `options` is the text the
     * host application passed (never NULL, may be empty, e.g. "cpus=4"). Returns the data passed
     * to the other callbacks and to helpers as call->instance_data, or NULL with a message in
     * `error` to refuse. */
    void *(*instance_create)(const struct mimic_host *host, uint64_t instance_id, const char *options,
                             char *error, size_t error_capacity);

    /** Called once the VM is gone (no process of it is left), with what instance_create returned:
     * free the instance's maps and memory. */
    void (*instance_destroy)(const struct mimic_host *host, void *instance_data);

    /** Called when the host reuses a process (Process.reset) instead of ending it: the host has
     * already unmapped every region map_region mapped in it; start the process over (a new
     * context follows through attach_context). `call` is the process's call (no helper). */
    void (*process_reset)(const struct mimic_host *host, struct mimic_call *call);

    /** Creates a map an object declares and stores its handle (the value an lddw of the map
     * yields, which the plugin's helpers accept) in `*handle`. Returns 0 or a negative errno
     * with a message in `error`; the host refuses to load the object, naming the map. */
    int32_t (*create_map)(void *instance_data, const struct mimic_map_spec *spec, uint64_t *handle,
                          char *error, size_t error_capacity);

    /** Resolves an lddw whose source field `kind` (BPF_PSEUDO_MAP_FD 1, _MAP_VALUE 2, _BTF_ID 3,
     * _MAP_IDX 5, _MAP_IDX_VALUE 6) names a map or object: stores the 64-bit value in `*value`.
     * `imm` and `next_imm` are the two slots' immediates. Returns 0 or a negative errno. */
    int32_t (*resolve_ld_imm64)(void *instance_data, uint32_t kind, int32_t imm, int32_t next_imm,
                                uint64_t *value, char *error, size_t error_capacity);

    /** The host mapped an object's global-data section (struct mimic_global_data): expose it as
     * the single-element array map libbpf makes of it, over the host's bytes (do not free them;
     * they live as long as the VM). Returns 0 or a negative errno. */
    int32_t (*adopt_global_data)(void *instance_data, const struct mimic_global_data *data,
                                 char *error, size_t error_capacity);

    /** Sets slot `index` of map `map_handle`: for a prog array, `kind` MIMIC_SLOT_PROGRAM and
     * `value` a host program id (keep it; a tail call through the slot is host->tail_call with
     * it); for a map of maps, MIMIC_SLOT_MAP and `value` an inner map's handle; MIMIC_SLOT_CLEAR
     * empties the slot. Used for `.values = {...}` initial slots and by host applications.
     * Returns 0 or a negative errno. */
    int32_t (*set_slot)(void *instance_data, uint64_t map_handle, uint32_t index, uint32_t kind,
                        uint64_t value, char *error, size_t error_capacity);

    /** The number of maps of the instance (created and adopted), for map_info. */
    uint32_t (*map_count)(void *instance_data);

    /** Describes map number `index` (0 ..< map_count) in `*info` (the host sets info->size).
     * Returns 0 or -ENOENT. */
    int32_t (*map_info)(void *instance_data, uint32_t index, struct mimic_map_info *info);

    /** Copies the value for `key` (key_size bytes) into `value`: one value (value_size bytes) as
     * seen from CPU `cpu`, or, with `cpu` MIMIC_ALL_CPUS, value_count values one after another.
     * Returns 0, -ENOENT or another negative errno. */
    int32_t (*map_lookup)(void *instance_data, uint64_t map_handle, const void *key, int32_t cpu,
                          void *value);

    /** Creates or updates the element `key` with `value` (one value for `cpu`, or value_count
     * values with MIMIC_ALL_CPUS); `flags` are BPF_ANY 0, BPF_NOEXIST 1, BPF_EXIST 2, BPF_F_LOCK 4.
     * Returns 0 or a negative errno (-EEXIST, -E2BIG, -EPERM for frozen maps, ...). */
    int32_t (*map_update)(void *instance_data, uint64_t map_handle, const void *key, const void *value,
                          int32_t cpu, uint64_t flags);

    /** Deletes the element `key`. Returns 0 or a negative errno. */
    int32_t (*map_delete)(void *instance_data, uint64_t map_handle, const void *key);

    /** Stores the key after `key` (NULL: the first key) in `next_key`, as BPF_MAP_GET_NEXT_KEY.
     * Returns 0, or -ENOENT after the last key. */
    int32_t (*map_next_key)(void *instance_data, uint64_t map_handle, const void *key, void *next_key);

    /** Stores the VM address of the value for `key` as seen from `cpu` in `*address` (what
     * bpf_map_lookup_elem returns a program). Returns 0, -ENOENT or another negative errno. */
    int32_t (*map_lookup_address)(void *instance_data, uint64_t map_handle, const void *key, int32_t cpu,
                                  uint64_t *address);

    /** Takes the oldest record out of a ring buffer, perf event array, queue or stack map (for
     * a stack: the newest): copies it to `buffer` if it fits in `capacity` bytes, stores the CPU
     * that wrote it (perf event arrays; -1 otherwise) in `*cpu`, and returns its length. A
     * record longer than `capacity` stays in the map (call again with a larger buffer). Returns
     * -ENOENT when there is none, another negative errno for other maps. */
    int64_t (*map_pop_record)(void *instance_data, uint64_t map_handle, void *buffer, uint64_t capacity,
                              int32_t *cpu);

    /** Builds a program context from a context file (`json`, `length` bytes, not NUL-terminated:
     * the envelope {"name":..,"type":..,"ctx":{..}}) for the process behind `call` (no helper),
     * mapping its memory with host->map_region and setting its registers. Returns MIMIC_OK, or
     * MIMIC_ERR_INVALID with a message (naming the JSON path at fault) in `error`. */
    int32_t (*attach_context)(const struct mimic_host *host, struct mimic_call *call, const char *json,
                              size_t length, char *error, size_t error_capacity);

    /** Describes what the process behind `call` produced, which exited with `r0`, as JSON text
     * (the plugin documents its members; MimicLinux: Docs/Plugins.md). Writes it to `buffer`
     * with a NUL if it fits in `capacity` bytes, and returns its length without the NUL (call
     * again with a larger buffer if it did not fit); negative on error. */
    int64_t (*context_result)(const struct mimic_host *host, struct mimic_call *call, uint64_t r0,
                              char *buffer, size_t capacity);

    /* ---- ABI 1.2 (the host reads them only if `size` covers them) ---- */

    /** The custom instructions (struct mimic_custom_instruction): `custom_instruction_count`
     * entries (at most 256, one per opcode byte), or 0 and NULL. */
    uint32_t custom_instruction_count;
    uint32_t reserved2;
    const struct mimic_custom_instruction *custom_instructions;
};

/** The entry point: `const struct mimic_plugin *mimic_plugin_entry(const struct mimic_host *)`.
 * Called once per load, before any helper; may keep `host` (valid forever). Returns the
 * plugin's description, or NULL to refuse loading (log why with host->log first). */
typedef const struct mimic_plugin *(*mimic_plugin_entry_fn)(const struct mimic_host *host);

#ifdef __cplusplus
}
#endif

#endif /* MIMIC_PLUGIN_H */
