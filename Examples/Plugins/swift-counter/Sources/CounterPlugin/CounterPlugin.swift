// counter — a sample Mimic plugin in Swift: named counters, a hash of VM memory, a greeting
// written into VM memory, and VM buffers allocated through the host, in the helper id range
// 20000-20005.
//
//   20000 u64  counter_add(u64 key, u64 delta)        the counter's new value
//   20001 u64  counter_get(u64 key)                    the counter's value (0 if never added to)
//   20002 u64  fnv1a(const void *data, u32 len)        64-bit FNV-1a hash of the bytes
//   20003 long greet(char *buffer, u32 size)           writes "hello from Swift" (NUL-terminated,
//                                                      truncated to size); returns its length
//   20004 void *make_buffer(u32 size)                  a new zeroed VM region of size bytes
//   20005 long free_buffer(void *buffer)               frees it: 0, or -EINVAL
//
// Only C data crosses the plugin boundary: the types of mimic_plugin.h, C function pointers,
// and VM addresses. This library has its own Swift world; it never sees the host's Swift types.

import CMimicPlugin
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The entry point Mimic looks up with dlsym.
@_cdecl("mimic_plugin_entry")
public func mimicPluginEntry(_ host: UnsafePointer<mimic_host>?) -> UnsafePointer<mimic_plugin>? {
    guard let host, host.pointee.abi_major == UInt32(MIMIC_PLUGIN_ABI_MAJOR) else { return nil }
    return CounterPlugin.descriptor
}

enum CounterPlugin {
    /// The counters, shared by every process in the host.
    static let counters = Mutex<[UInt64: UInt64]>([:])

    /// Stops the program with `message` (naming the helper) and the status of the failed service.
    static func fail(_ host: UnsafePointer<mimic_host>, _ call: UnsafeMutablePointer<mimic_call>?, _ status: Int32,
                     _ message: String) -> UInt64 {
        host.pointee.fail?(call, status, message)
        return 0
    }

    static let counterAdd: mimic_helper_fn = { _, _, key, delta, _, _, _ in
        counters.withLock { counters in
            counters[key, default: 0] &+= delta
            return counters[key, default: 0]
        }
    }

    static let counterGet: mimic_helper_fn = { _, _, key, _, _, _, _ in
        counters.withLock { $0[key] ?? 0 }
    }

    static let fnv1a: mimic_helper_fn = { host, call, address, length, _, _, _ in
        guard let host else { return 0 }
        let count = Int(length & 0xFFFF_FFFF)
        guard count <= 1 << 20 else { return fail(host, call, Int32(MIMIC_ERR_INVALID.rawValue), "fnv1a: length \(count) is over 1 MiB") }
        var bytes = [UInt8](repeating: 0, count: count)
        let status = bytes.withUnsafeMutableBytes { host.pointee.read?(call, address, $0.baseAddress, UInt64(count)) ?? -1 }
        guard status == MIMIC_OK.rawValue else { return fail(host, call, status, "fnv1a: cannot read the data") }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return hash
    }

    static let greet: mimic_helper_fn = { host, call, address, size, _, _, _ in
        guard let host else { return 0 }
        let text = Array("hello from Swift".utf8)
        let capacity = Int(size & 0xFFFF_FFFF)
        guard capacity > 0 else { return 0 }
        let written = Array(text.prefix(capacity - 1)) + [0]
        let status = written.withUnsafeBytes { host.pointee.write?(call, address, $0.baseAddress, UInt64($0.count)) ?? -1 }
        guard status == MIMIC_OK.rawValue else { return fail(host, call, status, "greet: cannot write the greeting") }
        return UInt64(written.count - 1)
    }

    static let makeBuffer: mimic_helper_fn = { host, call, size, _, _, _, _ in
        guard let host else { return 0 }
        var address: UInt64 = 0
        let status = host.pointee.allocate?(call, size & 0xFFFF_FFFF, nil, 0, "buffer", &address) ?? -1
        guard status == MIMIC_OK.rawValue else { return fail(host, call, status, "make_buffer: the host refused \(size) bytes") }
        return address
    }

    static let freeBuffer: mimic_helper_fn = { host, call, address, _, _, _, _ in
        guard let host else { return 0 }
        let status = host.pointee.free?(call, address) ?? -1
        return status == MIMIC_OK.rawValue ? 0 : UInt64(bitPattern: -22)  // -EINVAL
    }

    /// The description, built once and kept forever (the host never unloads the library).
    nonisolated(unsafe) static let descriptor: UnsafePointer<mimic_plugin> = {
        let table: [(Int32, String, mimic_helper_fn)] = [
            (20000, "counter_add", counterAdd),
            (20001, "counter_get", counterGet),
            (20002, "fnv1a", fnv1a),
            (20003, "greet", greet),
            (20004, "make_buffer", makeBuffer),
            (20005, "free_buffer", freeBuffer),
        ]
        let helpers = UnsafeMutablePointer<mimic_helper>.allocate(capacity: table.count)
        for (i, (id, name, function)) in table.enumerated() {
            helpers[i] = mimic_helper(id: id, flags: 0, name: UnsafePointer(strdup(name)), function: function, data: nil)
        }
        // Start from zeros and set the fields used: fields later ABI versions append stay NULL,
        // and the code keeps compiling against newer headers.
        var description = mimic_plugin()
        description.abi_major = UInt32(MIMIC_PLUGIN_ABI_MAJOR)
        description.abi_minor = UInt32(MIMIC_PLUGIN_ABI_MINOR)
        description.size = UInt32(MemoryLayout<mimic_plugin>.size)
        description.name = UnsafePointer(strdup("counter"))
        description.version = UnsafePointer(strdup("1.0"))
        description.description = UnsafePointer(strdup("Counters, FNV-1a, a greeting and VM buffers, in Swift (helpers 20000-20005)"))
        description.helper_count = UInt32(table.count)
        description.helpers = UnsafePointer(helpers)
        let plugin = UnsafeMutablePointer<mimic_plugin>.allocate(capacity: 1)
        plugin.initialize(to: description)
        return UnsafePointer(plugin)
    }()
}
