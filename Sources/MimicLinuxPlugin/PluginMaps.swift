// The map callbacks of the Linux plugin (ABI 1.1): creating an object's maps in an instance,
// resolving map references, adopting the host's global data, filling prog arrays and maps of
// maps, and the host's generic access to the maps.

import CMimicPlugin
import MimicCore
import MimicLinux
import MimicMemory

enum PluginMaps {
    typealias Text = UnsafeMutablePointer<CChar>

    static func instance(_ data: UnsafeMutableRawPointer?) -> Instance? {
        data.map { Unmanaged<Instance>.fromOpaque($0).takeUnretainedValue() }
    }

    /// A status for an errno (negative, as bpf(2) fails).
    static func status(_ errno: Errno) -> Int32 { -errno.rawValue }

    /// `count` bytes the host passed.
    static func bytes(_ pointer: UnsafeRawPointer?, _ count: Int) -> [UInt8]? {
        guard let pointer else { return count == 0 ? [] : nil }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// Copies `bytes` to the host's buffer.
    static func store(_ bytes: [UInt8], to pointer: UnsafeMutableRawPointer) {
        bytes.withUnsafeBytes { if let base = $0.baseAddress { pointer.copyMemory(from: base, byteCount: $0.count) } }
    }

    static func isPerCPU(_ map: any BPFMap) -> Bool {
        [.perCPUHash, .perCPUArray, .lruPerCPUHash].contains(map.attributes.type)
    }

    /// The instance and the map with `handle`.
    static func map(_ data: UnsafeMutableRawPointer?, _ handle: UInt64) -> (Instance, any BPFMap)? {
        guard let instance = instance(data), let map = instance.emulator.map(handle: handle) else { return nil }
        return (instance, map)
    }

    /// The attributes of a C spec (and of its inner template); the ELF-only fields pinning and
    /// NUMA node do not change an emulated map (`map_extra`, a bloom filter's hash count, is
    /// passed beside them).
    static func attributes(_ c: mimic_map_spec) -> MapAttributes {
        let name = c.name.map { String(cString: $0) } ?? ""
        return MapAttributes(
            name: name, type: MapType(rawValue: c.type), keySize: Int(c.key_size), valueSize: Int(c.value_size),
            maxEntries: Int(c.max_entries), flags: c.flags, innerMap: c.inner.map { attributes($0.pointee) },
            spinLockOffset: c.spin_lock_offset >= 0 ? Int(c.spin_lock_offset) : nil)
    }

    // MARK: Loading

    static let createMap:
        @convention(c) (
            UnsafeMutableRawPointer?, UnsafePointer<mimic_map_spec>?, UnsafeMutablePointer<UInt64>?,
            Text?, Int
        ) -> Int32 = { data, cSpec, handle, message, capacity in
            guard let instance = instance(data), let cSpec, let handle else { return status(.invalid) }
            do throws(MapError) {
                let map = try instance.emulator.createObjectMap(
                    attributes(cSpec.pointee), mapExtra: cSpec.pointee.map_extra, in: instance.vm)
                // The host reads records through the plugin (`drain`): it is the perf buffer's reader.
                (map as? PerfEventArrayMap)?.attachReaders()
                handle.pointee = map.handle
                return 0
            } catch {
                // The text a statically linked emulator gives (LinuxEmulator.createObjectMap).
                LinuxPlugin.copy("\(error) (\(error.errno))", to: message, capacity: capacity)
                return status(error.errno)
            }
        }

    static let resolveLoadImm64:
        @convention(c) (
            UnsafeMutableRawPointer?, UInt32, Int32, Int32, UnsafeMutablePointer<UInt64>?,
            Text?, Int
        ) -> Int32 = { data, kind, imm, nextImm, value, message, capacity in
            guard let instance = instance(data), let value,
                let kind = UInt8(exactly: kind).flatMap(LoadImm64Kind.init(rawValue:))
            else {
                LinuxPlugin.copy("lddw source \(kind) is not a known pseudo kind", to: message, capacity: capacity)
                return status(.invalid)
            }
            do throws(LoadError.Reason) {
                value.pointee = try instance.emulator.resolveLoadImm64(
                    kind: kind, imm: imm, nextImm: nextImm, in: instance.vm)
                return 0
            } catch {
                LinuxPlugin.copy(text(of: error), to: message, capacity: capacity)
                return status(.invalid)
            }
        }

    static let adoptGlobalData:
        @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<mimic_global_data>?, Text?, Int) -> Int32 = {
            data, global, message, capacity in
            guard let instance = instance(data), let global, let pointer = global.pointee.pointer,
                global.pointee.length <= UInt64(AddressSpace.regionLimit)
            else {
                LinuxPlugin.copy("invalid global data description", to: message, capacity: capacity)
                return status(.invalid)
            }
            let g = global.pointee
            let name = g.name.map { String(cString: $0) } ?? ".data"
            let readOnly = g.flags & MIMIC_REGION_READ_ONLY.rawValue != 0
            // The host owns the bytes; mirror them at the host's address so programs' pointers work here.
            let storage = RegionStorage(borrowing: pointer, count: Int(g.length))
            do {
                try instance.vm.mapShared(storage, name: name, kind: readOnly ? .readOnly : .plain, at: g.address)
            } catch {
                LinuxPlugin.copy(
                    "global data \(name): cannot mirror it at \(g.address): \(error)", to: message, capacity: capacity)
                return status(.invalid)
            }
            let spec = GlobalDataSpec(
                name: name, contents: Array(UnsafeRawBufferPointer(start: pointer, count: Int(g.length))),
                isReadOnly: readOnly)
            do throws(LoadError.Reason) {
                try instance.emulator.adoptGlobalData(spec, storage: storage, address: g.address, in: instance.vm)
                return 0
            } catch {
                LinuxPlugin.copy(text(of: error), to: message, capacity: capacity)
                return status(.invalid)
            }
        }

    /// The words of a load error's reason (the host adds where it happened).
    static func text(of reason: LoadError.Reason) -> String {
        reason.detail ?? "\(reason)"
    }

    static let setSlot: @convention(c) (UnsafeMutableRawPointer?, UInt64, UInt32, UInt32, UInt64, Text?, Int) -> Int32 =
        {
            data, handle, index, kind, value, message, capacity in
            guard let (instance, outer) = map(data, handle) else {
                LinuxPlugin.copy("no map has handle 0x\(String(handle, radix: 16))", to: message, capacity: capacity)
                return status(.invalid)
            }
            func fail(_ errno: Errno, _ text: String) -> Int32 {
                LinuxPlugin.copy(text, to: message, capacity: capacity)
                return status(errno)
            }
            switch outer {
            case let array as ProgramArrayMap:
                var program: Program?
                switch kind {
                case MIMIC_SLOT_CLEAR.rawValue: program = nil
                case MIMIC_SLOT_PROGRAM.rawValue:
                    do throws(PluginFailure) {
                        program = try instance.standIn(forHostProgram: value)
                    } catch {
                        return fail(.invalid, error.description)
                    }
                default: return fail(.invalid, "\(outer.name) is a prog array: its slots hold programs")
                }
                if let errno = array.setProgram(program, at: Int(index)) { return fail(errno, "\(errno)") }
                return 0
            case let mapOfMaps as MapOfMaps:
                let key = withUnsafeBytes(of: index.littleEndian, Array.init)
                var inner: (any BPFMap)?
                switch kind {
                case MIMIC_SLOT_CLEAR.rawValue: inner = nil
                case MIMIC_SLOT_MAP.rawValue:
                    guard let found = instance.emulator.map(handle: value) else {
                        return fail(.invalid, "no map has handle 0x\(String(value, radix: 16))")
                    }
                    inner = found
                default: return fail(.invalid, "\(outer.name) is a map of maps: its slots hold maps")
                }
                guard mapOfMaps.attributes.keySize == 4 else {
                    return fail(
                        .invalid,
                        "slots need 4-byte (index) keys; \(outer.name) has \(mapOfMaps.attributes.keySize)-byte keys")
                }
                if let errno = mapOfMaps.setInnerMap(inner, forKey: key) {
                    return fail(
                        errno, "\(errno)" + (errno == .invalid ? " (it does not match the inner map definition)" : ""))
                }
                return 0
            default:
                return fail(
                    .invalid, "\(outer.name) is a \(outer.attributes.type.cName), not a prog array or a map of maps")
            }
        }

    // MARK: Host access

    static let mapCount: @convention(c) (UnsafeMutableRawPointer?) -> UInt32 = { data in
        UInt32(clamping: instance(data)?.emulator.allMaps.count ?? 0)
    }

    static let mapInfo:
        @convention(c) (UnsafeMutableRawPointer?, UInt32, UnsafeMutablePointer<mimic_map_info>?) -> Int32 = {
            data, index, info in
            guard let instance = instance(data), let info else { return status(.invalid) }
            let maps = instance.emulator.allMaps
            guard Int(index) < maps.count else { return status(.noEntry) }
            let map = maps[Int(index)]
            let d = map.attributes
            info.pointee.type = d.type.rawValue
            info.pointee.key_size = UInt32(clamping: d.keySize)
            info.pointee.value_size = UInt32(clamping: d.valueSize)
            info.pointee.max_entries = UInt32(clamping: d.maxEntries)
            info.pointee.flags = d.flags
            info.pointee.value_count = UInt32(clamping: isPerCPU(map) ? instance.emulator.configuration.cpuCount : 1)
            info.pointee.handle = map.handle
            info.pointee.name = instance.cName(of: map)
            return 0
        }

    static let lookup:
        @convention(c) (UnsafeMutableRawPointer?, UInt64, UnsafeRawPointer?, Int32, UnsafeMutableRawPointer?) -> Int32 =
            {
                data, handle, keyPointer, cpu, value in
                guard let (instance, map) = map(data, handle), let key = bytes(keyPointer, map.attributes.keySize),
                    let value
                else {
                    return status(.invalid)
                }
                let cpus = instance.emulator.configuration.cpuCount
                let values: [[UInt8]]?
                if cpu == MIMIC_ALL_CPUS {
                    values = map.perCPUValues(forKey: key)
                } else {
                    guard cpu >= 0, Int(cpu) < cpus else { return status(.invalid) }
                    values =
                        isPerCPU(map)
                        ? map.perCPUValues(forKey: key).map { [$0[Int(cpu)]] } : map.value(forKey: key).map { [$0] }
                }
                guard let values else { return status(.noEntry) }
                store(values.flatMap { $0 }, to: value)
                return 0
            }

    static let update:
        @convention(c) (UnsafeMutableRawPointer?, UInt64, UnsafeRawPointer?, UnsafeRawPointer?, Int32, UInt64) -> Int32 =
            {
                data, handle, keyPointer, valuePointer, cpu, flags in
                guard let (instance, map) = map(data, handle), let key = bytes(keyPointer, map.attributes.keySize)
                else { return status(.invalid) }
                let size = map.attributes.valueSize
                let updateFlags = MapUpdateFlags(rawValue: flags)
                if cpu == MIMIC_ALL_CPUS, isPerCPU(map) {
                    let cpus = instance.emulator.configuration.cpuCount
                    guard let all = bytes(valuePointer, size * cpus) else { return status(.invalid) }
                    let values = (0..<cpus).map { Array(all[$0 * size..<($0 + 1) * size]) }
                    let errno: Errno?
                    switch map {
                    case let array as ArrayMap: errno = array.update(key: key, perCPUValues: values, flags: updateFlags)
                    case let hash as HashTableMap:
                        errno = hash.update(key: key, perCPUValues: values, flags: updateFlags)
                    default: errno = .invalid
                    }
                    return errno.map(status) ?? 0
                }
                guard let value = bytes(valuePointer, size), cpu >= MIMIC_ALL_CPUS else { return status(.invalid) }
                return map.update(key: key, value: value, flags: updateFlags, cpu: max(0, Int(cpu))).map(status) ?? 0
            }

    static let delete: @convention(c) (UnsafeMutableRawPointer?, UInt64, UnsafeRawPointer?) -> Int32 = {
        data, handle, keyPointer in
        guard let (_, map) = map(data, handle), let key = bytes(keyPointer, map.attributes.keySize) else {
            return status(.invalid)
        }
        return map.delete(key: key).map(status) ?? 0
    }

    static let nextKey:
        @convention(c) (UnsafeMutableRawPointer?, UInt64, UnsafeRawPointer?, UnsafeMutableRawPointer?) -> Int32 = {
            data, handle, keyPointer, next in
            guard let (_, map) = map(data, handle), let next else { return status(.invalid) }
            let key = keyPointer.flatMap { bytes($0, map.attributes.keySize) }
            guard let found = map.nextKey(after: key) else { return status(.noEntry) }
            store(found, to: next)
            return 0
        }

    static let lookupAddress:
        @convention(c) (
            UnsafeMutableRawPointer?, UInt64, UnsafeRawPointer?, Int32,
            UnsafeMutablePointer<UInt64>?
        ) -> Int32 = { data, handle, keyPointer, cpu, address in
            guard let (_, map) = map(data, handle), let key = bytes(keyPointer, map.attributes.keySize), let address,
                cpu >= 0
            else {
                return status(.invalid)
            }
            guard let found = map.lookupAddress(key: key, cpu: Int(cpu)) else { return status(.noEntry) }
            address.pointee = found
            return 0
        }

    static let popRecord:
        @convention(c) (
            UnsafeMutableRawPointer?, UInt64, UnsafeMutableRawPointer?, UInt64,
            UnsafeMutablePointer<Int32>?
        ) -> Int64 = { data, handle, buffer, capacity, cpu in
            guard let (instance, map) = map(data, handle) else { return Int64(status(.invalid)) }
            let refill: () -> [(cpu: Int32, data: [UInt8])]
            switch map {
            case let ring as RingBufferMap: refill = { ring.drainRecords().map { (-1, $0) } }
            case let perf as PerfEventArrayMap:
                refill = { perf.drainRecords().map { (Int32(clamping: $0.cpu), $0.data) } }
            case let queue as QueueStackMap:
                refill = {
                    guard case .success(let value) = queue.pop() else { return [] }
                    return [(-1, value)]
                }
            default: return Int64(status(.invalid))
            }
            return instance.withPendingRecords(of: handle) { pending in
                if pending.isEmpty { pending = refill() }
                guard let record = pending.first else { return Int64(status(.noEntry)) }
                guard UInt64(record.data.count) <= capacity else { return Int64(record.data.count) }
                if let buffer { store(record.data, to: buffer) }
                cpu?.pointee = record.cpu
                pending.removeFirst()
                return Int64(record.data.count)
            }
        }
}
