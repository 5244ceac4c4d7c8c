import MimicCore
import MimicMemory

/// A map's share of its VM's memory budget (`VM.memoryBudget`).
///
/// Maps the kernel preallocates (arrays, preallocated and LRU hash maps, fd arrays, queues,
/// rings, device maps) are charged in full when created, as `BPF_MAP_CREATE` allocates them:
/// one that does not fit fails before anything is allocated. Maps the kernel fills element by
/// element (hash maps with `BPF_F_NO_PREALLOC`, LPM tries, `DEVMAP_HASH`, hash of maps with
/// `BPF_F_NO_PREALLOC`) are charged `elementCost` per slot as the slot is first used; an
/// update that does not fit fails with `-ENOMEM`, as the kernel's allocation would.
struct MapMemory: Sendable {
    let reservation: MemoryReservation
    /// Bytes charged per new element; 0 for preallocated maps.
    let elementCost: Int

    init(_ attributes: MapAttributes, mapExtra: UInt64 = 0, cpuCount: Int, budget: MemoryBudget) throws(MapError) {
        let (upfront, perElement) = Self.cost(of: attributes, mapExtra: mapExtra, cpuCount: cpuCount)
        do {
            reservation = try budget.reserve(
                upfront,
                for: "map '\(attributes.name)' (\(attributes.type.cName), "
                    + "max_entries \(attributes.maxEntries), key_size \(attributes.keySize), value_size \(attributes.valueSize))"
            )
        } catch {
            throw MapError(map: attributes.name, error.description, errno: .noMemory)
        }
        elementCost = perElement
    }

    /// A slot index of `capacity` slots, charging this map's elements if they are not preallocated.
    func slotIndex(capacity: Int) -> SlotIndex {
        elementCost > 0
            ? SlotIndex(capacity: capacity, charging: reservation, elementCost: elementCost)
            : SlotIndex(capacity: capacity)
    }

    /// Bookkeeping bytes per hash element besides key and value (index entry, order links).
    static let elementOverhead = 48

    /// The bytes charged at creation and per element (`Int.max` when the product overflows,
    /// which no budget holds).
    static func cost(of d: MapAttributes, mapExtra: UInt64 = 0, cpuCount: Int) -> (upfront: Int, perElement: Int) {
        func times(_ a: Int, _ b: Int) -> Int {
            let (product, overflow) = a.multipliedReportingOverflow(by: b)
            return overflow ? .max : product
        }
        let entries = max(0, d.maxEntries)
        let stride = roundUp8(max(d.valueSize, 1))
        let key = roundUp8(max(d.keySize, 0))
        let flags = MapFlags(rawValue: d.flags)
        switch d.type {
        case .hash, .perCPUHash, .lruHash, .lruPerCPUHash:
            let perCPU = d.type == .perCPUHash || d.type == .lruPerCPUHash
            let lru = d.type == .lruHash || d.type == .lruPerCPUHash
            let element = times(stride, perCPU ? cpuCount : 1).addingReportingOverflow(key + elementOverhead)
            let perElement = element.overflow ? Int.max : element.partialValue
            return !lru && flags.contains(.noPrealloc) ? (0, perElement) : (times(perElement, entries), 0)
        case .array, .perCPUArray:
            return (times(times(stride, d.type == .perCPUArray ? cpuCount : 1), entries), 0)
        case .lpmTrie:
            return (0, stride + key + elementOverhead)
        case .devMapHash:
            return (0, stride + key + elementOverhead)
        case .hashOfMaps:
            let perElement = key + 8 + elementOverhead
            return flags.contains(.noPrealloc) ? (0, perElement) : (times(perElement, entries), 0)
        case .progArray, .perfEventArray, .arrayOfMaps, .cgroupArray, .sockMap, .reuseportSockarray:
            return (times(8, entries), 0) // the kernel's array of pointers
        case .sockHash:
            return (0, key + elementOverhead)
        case .queue, .stack:
            return (times(stride, entries), 0)
        case .ringBuffer, .userRingBuffer:
            return (entries, 0)
        case .bloomFilter:
            let hashes = BloomFilterMap.hashCount(mapExtra: mapExtra)
            return (BloomFilterMap.bitCount(maxEntries: entries, hashCount: hashes) / 8, 0)
        default:
            return (times(stride, entries), 0)
        }
    }
}

extension LinuxEmulator {
    /// Creates a map in `vm`'s shared memory, as `BPF_MAP_CREATE` does: checks the attributes
    /// the way the kernel's map type checks it, registers the map (so `map(handle:)` and
    /// `map(named:)` find it) and returns it.
    ///
    /// The map's values appear in processes `vm` creates afterwards.
    ///
    /// - Throws: `MapError` naming the map and the rule broken, with the errno the kernel
    ///   returns (`EINVAL`, `E2BIG`, `EOPNOTSUPP` for map types Mimic does not emulate).
    ///
    /// - Parameter mapExtra: `map_extra`: a bloom filter's hash-function count in its low 4 bits;
    ///   0 for every other map type.
    public func createMap(_ attributes: MapAttributes, mapExtra: UInt64 = 0, in vm: VM) throws(MapError) -> any BPFMap {
        var attributes = attributes
        // libbpf sizes a perf event array without max_entries to the number of CPUs.
        if attributes.type == .perfEventArray, attributes.maxEntries == 0 {
            attributes.maxEntries = configuration.cpuCount
        }
        guard Self.emulates(attributes.type) else {
            throw MapError(
                map: attributes.name, "\(attributes.type.cName): not supported by Mimic", errno: .notSupported)
        }
        let warnings: [String]
        (attributes, warnings) = relaxedForCompatibility(attributes)
        try Self.validate(attributes, cpuCount: configuration.cpuCount, innerOptional: !warnings.isEmpty)
        if attributes.type == .bloomFilter, mapExtra & ~0xF != 0 {
            throw MapError(
                map: attributes.name,
                "BPF_MAP_TYPE_BLOOM_FILTER: map_extra 0x\(String(mapExtra, radix: 16)) sets more than the hash-function count (low 4 bits)"
            )
        } else if attributes.type != .bloomFilter, mapExtra != 0 {
            throw MapError(
                map: attributes.name,
                "\(attributes.type.cName): map_extra must be 0, got 0x\(String(mapExtra, radix: 16))")
        }
        addCompatibilityWarnings(warnings)
        let cpus = configuration.cpuCount
        let memory = try MapMemory(attributes, mapExtra: mapExtra, cpuCount: cpus, budget: vm.memoryBudget)
        let id = reserveMapID()
        let map: any BPFMap
        switch attributes.type {
        case .hash, .perCPUHash, .lruHash, .lruPerCPUHash:
            map = try HashTableMap(attributes: attributes, id: id, cpuCount: cpus, vm: vm, memory: memory)
        case .array, .perCPUArray:
            map = try ArrayMap(attributes: attributes, id: id, cpuCount: cpus, vm: vm, memory: memory)
        case .lpmTrie:
            map = try LPMTrieMap(attributes: attributes, id: id, vm: vm, memory: memory)
        case .queue, .stack:
            map = QueueStackMap(attributes: attributes, id: id, memory: memory)
        case .bloomFilter:
            map = BloomFilterMap(attributes: attributes, mapExtra: mapExtra, id: id, memory: memory)
        case .ringBuffer:
            map = try RingBufferMap(attributes: attributes, id: id, vm: vm, memory: memory)
        case .perfEventArray:
            map = PerfEventArrayMap(attributes: attributes, id: id, cpuCount: cpus, memory: memory)
        case .progArray:
            map = ProgramArrayMap(attributes: attributes, id: id, memory: memory)
        case .arrayOfMaps, .hashOfMaps:
            map = MapOfMaps(attributes: attributes, id: id, emulator: self, memory: memory)
        case .devMap, .devMapHash, .cpuMap, .xskMap:
            map = try RedirectMap(attributes: attributes, id: id, cpuCount: cpus, vm: vm, memory: memory)
        case .userRingBuffer:
            map = UserRingBufferMap(attributes: attributes, id: id, memory: memory)
        case .stackTrace:
            map = try StackTraceMap(attributes: attributes, id: id, memory: memory)
        case .taskStorage, .inodeStorage, .cgrpStorage:
            map = try LocalStorageMap(attributes: attributes, id: id, vm: vm)
        case .cgroupStorage, .perCPUCgroupStorage:
            map = try CgroupStorageMap(attributes: attributes, id: id, cpuCount: cpus, vm: vm, memory: memory)
        case .skStorage:
            map = try SocketStorageMap(attributes: attributes, id: id, vm: vm, memory: memory)
        case .sockMap, .sockHash:
            map = SocketMap(
                attributes: attributes, id: id, network: networkState, membership: socketMapMembership, memory: memory)
        case .reuseportSockarray:
            map = ReuseportSocketArray(
                attributes: attributes, id: id, network: networkState, membership: socketMapMembership, memory: memory)
        case .cgroupArray:
            map = CgroupArrayMap(
                attributes: attributes, id: id, system: configuration.system ?? EmulatedSystem(), memory: memory)
        default:
            throw MapError(
                map: attributes.name, "\(attributes.type.cName): not supported by Mimic", errno: .notSupported)
        }
        register(map)
        return map
    }

    /// Whether `createMap` emulates maps of `type` (object loading makes an `UnsupportedMap`
    /// of the other types the kernel defines).
    public static func emulates(_ type: MapType) -> Bool {
        switch type {
        case .hash, .perCPUHash, .lruHash, .lruPerCPUHash, .array, .perCPUArray, .lpmTrie, .queue, .stack, .ringBuffer,
            .perfEventArray, .progArray, .arrayOfMaps, .hashOfMaps, .devMap, .devMapHash, .cpuMap, .xskMap,
            .bloomFilter, .stackTrace, .taskStorage, .inodeStorage, .cgrpStorage, .userRingBuffer, .cgroupStorage,
            .perCPUCgroupStorage, .skStorage, .sockMap, .sockHash, .reuseportSockarray, .cgroupArray:
            true
        default:
            false
        }
    }

    /// The kernel's attribute checks for each map type (the `map_alloc_check` / `map_alloc`
    /// functions of `kernel/bpf/*.c`).
    /// `innerOptional`: a map of maps may lack its inner definition (`LinuxCompatibility.goMimic`).
    static func validate(_ d: MapAttributes, cpuCount: Int, innerOptional: Bool = false) throws(MapError) {
        func fail(_ message: String, _ errno: Errno = .invalid) -> MapError {
            MapError(map: d.name, "\(d.type.cName): \(message)", errno: errno)
        }
        func allowFlags(_ allowed: MapFlags) throws(MapError) {
            let unknown = d.flags & ~allowed.rawValue
            guard unknown == 0 else {
                throw fail("flags 0x\(String(unknown, radix: 16)) are not valid for this map type")
            }
        }
        func positive(_ value: Int, _ what: String) throws(MapError) {
            guard value > 0 else { throw fail("\(what) must be greater than 0, got \(value)") }
        }
        func exactly(_ value: Int, _ expected: Int, _ what: String) throws(MapError) {
            guard value == expected else { throw fail("\(what) must be \(expected), got \(value)") }
        }
        // `htab_map_alloc`: n_buckets = roundup_pow_of_two(max_entries) must stay within
        // U32_MAX / sizeof(struct bucket) (16 bytes), so at most 2^27 entries.
        func bucketLimit() throws(MapError) {
            guard d.maxEntries <= 1 << 27 else {
                throw fail("max_entries \(d.maxEntries) needs more hash buckets than the kernel's 2^27", .tooBig)
            }
        }
        guard d.keySize >= 0, d.valueSize >= 0, d.maxEntries >= 0 else {
            throw fail("sizes and max_entries must not be negative")
        }
        let flags = MapFlags(rawValue: d.flags)
        let common: MapFlags = [.numaNode, .accessMask]

        // Spin locks are allowed in hash and array values only (`map_check_btf`).
        if let offset = d.spinLockOffset {
            guard d.type == .hash || d.type == .array else {
                throw fail("a bpf_spin_lock in the value is not supported for this map type", .notSupported)
            }
            guard offset >= 0, offset % 4 == 0, offset + 4 <= d.valueSize else {
                throw fail(
                    "the bpf_spin_lock at offset \(offset) does not fit, 4-byte aligned, in the \(d.valueSize)-byte value"
                )
            }
        }

        switch d.type {
        case .hash, .perCPUHash, .lruHash, .lruPerCPUHash:
            let lru = d.type == .lruHash || d.type == .lruPerCPUHash
            let perCPU = d.type == .perCPUHash || d.type == .lruPerCPUHash
            try allowFlags(common.union([.noPrealloc, .noCommonLRU, .zeroSeed]))
            if !lru, flags.contains(.noCommonLRU) { throw fail("BPF_F_NO_COMMON_LRU is for LRU maps only") }
            if lru, flags.contains(.noPrealloc) { throw fail("LRU maps must be preallocated", .notSupported) }
            try positive(d.keySize, "key_size")
            try positive(d.valueSize, "value_size")
            try positive(d.maxEntries, "max_entries")
            try bucketLimit()
            guard d.keySize <= maxBPFStack else { throw fail("key_size \(d.keySize) exceeds \(maxBPFStack)", .tooBig) }
            guard d.valueSize < kmallocMaxSize - maxBPFStack - 64 else {
                throw fail("value_size \(d.valueSize) is too large", .tooBig)
            }
            if perCPU, d.valueSize > perCPUValueLimit {
                throw fail("per-CPU value_size \(d.valueSize) exceeds \(perCPUValueLimit)", .tooBig)
            }
        case .array, .perCPUArray:
            try allowFlags(common.union([.mmapable, .innerMap, .preserveElements]))
            if d.type == .perCPUArray, flags.contains(.mmapable) {
                throw fail("per-CPU arrays cannot be BPF_F_MMAPABLE")
            }
            try positive(d.maxEntries, "max_entries")
            try exactly(d.keySize, 4, "key_size")
            try positive(d.valueSize, "value_size")
            if d.type == .perCPUArray, d.valueSize > perCPUValueLimit {
                throw fail("per-CPU value_size \(d.valueSize) exceeds \(perCPUValueLimit)", .tooBig)
            }
            guard d.valueSize <= kmallocMaxSize else { throw fail("value_size \(d.valueSize) is too large", .tooBig) }
        case .progArray, .perfEventArray, .arrayOfMaps, .cgroupArray:
            try allowFlags(common.union([.preserveElements, .innerMap]))
            if flags.contains(.readOnlyProgram) || flags.contains(.writeOnlyProgram) {
                throw fail("BPF_F_RDONLY_PROG / BPF_F_WRONLY_PROG are not valid for this map type")
            }
            if flags.contains(.preserveElements), d.type != .perfEventArray {
                throw fail("BPF_F_PRESERVE_ELEMS is for perf event arrays only")
            }
            try positive(d.maxEntries, "max_entries")
            try exactly(d.keySize, 4, "key_size")
            try exactly(d.valueSize, 4, "value_size")
            if d.type == .arrayOfMaps, !(innerOptional && d.innerMap == nil) { try validateInner(d, fail: fail) }
        case .hashOfMaps:
            try allowFlags(common.union([.noPrealloc, .zeroSeed]))
            try positive(d.keySize, "key_size")
            try positive(d.maxEntries, "max_entries")
            try bucketLimit()
            guard d.keySize <= maxBPFStack else { throw fail("key_size \(d.keySize) exceeds \(maxBPFStack)", .tooBig) }
            try exactly(d.valueSize, 4, "value_size")
            if !(innerOptional && d.innerMap == nil) { try validateInner(d, fail: fail) }
        case .lpmTrie:
            guard flags.contains(.noPrealloc) else { throw fail("BPF_F_NO_PREALLOC is required") }
            try allowFlags(common.union(.noPrealloc))
            try positive(d.maxEntries, "max_entries")
            guard d.keySize >= 4 + 1, d.keySize <= 4 + 256 else {
                throw fail("key_size must be 4 (prefix length) plus 1 to 256 data bytes, got \(d.keySize)")
            }
            guard d.valueSize >= 1, d.valueSize <= kmallocMaxSize - 256 - 32 else {
                throw fail("value_size \(d.valueSize) is out of range")
            }
        case .queue, .stack:
            try allowFlags(common)
            try positive(d.maxEntries, "max_entries")
            try exactly(d.keySize, 0, "key_size")
            try positive(d.valueSize, "value_size")
            guard d.valueSize <= kmallocMaxSize else { throw fail("value_size \(d.valueSize) is too large", .tooBig) }
        case .bloomFilter:
            try allowFlags(common.union(.zeroSeed))
            try positive(d.maxEntries, "max_entries")
            try exactly(d.keySize, 0, "key_size")
            try positive(d.valueSize, "value_size")
            guard d.valueSize <= kmallocMaxSize else { throw fail("value_size \(d.valueSize) is too large", .tooBig) }
        case .ringBuffer, .userRingBuffer:
            try allowFlags(.numaNode)
            try exactly(d.keySize, 0, "key_size")
            try exactly(d.valueSize, 0, "value_size")
            let size = d.maxEntries
            guard size > 0, size & (size - 1) == 0, size % linuxPageSize == 0 else {
                throw fail(
                    "max_entries must be a power of two and a multiple of the \(linuxPageSize)-byte page, got \(size)")
            }
            guard size <= AddressSpace.regionLimit else {
                throw fail("max_entries \(size) exceeds Mimic's \(AddressSpace.regionLimit)-byte ring limit", .tooBig)
            }
        case .devMap, .devMapHash:
            try allowFlags(common)
            try positive(d.maxEntries, "max_entries")
            try exactly(d.keySize, 4, "key_size")
            guard d.valueSize == 4 || d.valueSize == 8 else {
                throw fail("value_size must be 4 (ifindex) or 8 (struct bpf_devmap_val), got \(d.valueSize)")
            }
        case .cpuMap:
            try allowFlags(common)
            try positive(d.maxEntries, "max_entries")
            try exactly(d.keySize, 4, "key_size")
            guard d.valueSize == 4 || d.valueSize == 8 else {
                throw fail("value_size must be 4 (queue size) or 8 (struct bpf_cpumap_val), got \(d.valueSize)")
            }
        case .xskMap:
            try allowFlags(common)
            try positive(d.maxEntries, "max_entries")
            try exactly(d.keySize, 4, "key_size")
            try exactly(d.valueSize, 4, "value_size")
        case .stackTrace:
            // `stack_map_alloc`; the depth limit is checked by `StackTraceMap`.
            try allowFlags(common.union([.stackBuildID]))
            try positive(d.maxEntries, "max_entries")
            try exactly(d.keySize, 4, "key_size")
            guard d.valueSize >= 8, d.valueSize % 8 == 0 else {
                throw fail("value_size must be a multiple of 8, got \(d.valueSize)")
            }
            if flags.contains(.stackBuildID) {
                throw fail("BPF_F_STACK_BUILD_ID is not supported by Mimic (no build ids)", .notSupported)
            }
        case .taskStorage, .inodeStorage, .cgrpStorage:
            // `bpf_local_storage_map_alloc_check`.
            try allowFlags([.noPrealloc, .clone])
            guard flags.contains(.noPrealloc) else { throw fail("needs BPF_F_NO_PREALLOC") }
            try exactly(d.maxEntries, 0, "max_entries")
            try exactly(d.keySize, 4, "key_size")
            try positive(d.valueSize, "value_size")
        case .cgroupStorage, .perCPUCgroupStorage:
            // `cgroup_storage_map_alloc`: the key is struct bpf_cgroup_storage_key or a u64,
            // max_entries 0, the value at most a page.
            try allowFlags(common)
            guard d.keySize == 16 || d.keySize == 8 else {
                throw fail("key_size must be 16 (struct bpf_cgroup_storage_key) or 8, got \(d.keySize)")
            }
            try exactly(d.maxEntries, 0, "max_entries")
            try positive(d.valueSize, "value_size")
            guard d.valueSize <= 4096 else { throw fail("value_size \(d.valueSize) exceeds a page (4096)", .tooBig) }
        case .sockMap, .sockHash:
            // `sock_map_alloc`, `sock_hash_alloc`: SOCK_CREATE_FLAG_MASK, a u32 or u64 value (an fd).
            try allowFlags([.numaNode, .readOnly, .writeOnly])
            try positive(d.maxEntries, "max_entries")
            if d.type == .sockMap {
                try exactly(d.keySize, 4, "key_size")
            } else {
                try positive(d.keySize, "key_size")
            }
            guard d.valueSize == 4 || d.valueSize == 8 else {
                throw fail("value_size must be 4 or 8 (a socket fd), got \(d.valueSize)")
            }
            if d.type == .sockHash {
                guard d.keySize <= maxBPFStack else { throw fail("key_size \(d.keySize) exceeds \(maxBPFStack)", .tooBig) }
                try bucketLimit()
            }
        case .reuseportSockarray:
            // `reuseport_array_alloc_check`, then `array_map_alloc_check`.
            guard d.valueSize == 4 || d.valueSize == 8 else {
                throw fail("value_size must be 4 or 8 (a socket fd), got \(d.valueSize)")
            }
            try allowFlags(common.union([.mmapable, .innerMap, .preserveElements]))
            try positive(d.maxEntries, "max_entries")
            try exactly(d.keySize, 4, "key_size")
        case .skStorage:
            // `bpf_local_storage_map_alloc_check`.
            try allowFlags(common.union(.noPrealloc))
            guard flags.contains(.noPrealloc) else { throw fail("map_flags must include BPF_F_NO_PREALLOC") }
            try exactly(d.keySize, 4, "key_size")
            try exactly(d.maxEntries, 0, "max_entries")
            try positive(d.valueSize, "value_size")
            guard d.valueSize <= AddressSpace.regionLimit / SocketStorageMap.capacity else {
                throw fail("value_size \(d.valueSize) is too big", .tooBig)
            }
        default:
            throw fail("not supported by Mimic", .notSupported)
        }
    }

    /// Map-in-map: the inner attributes must exist, describe a plain map, and be valid themselves.
    private static func validateInner(_ d: MapAttributes, fail: (String, Errno) -> MapError) throws(MapError) {
        guard let inner = d.innerMap else {
            throw fail("a map of maps needs an inner map definition", .invalid)
        }
        switch inner.type {
        case .arrayOfMaps, .hashOfMaps:
            throw fail("inner maps cannot themselves be maps of maps", .invalid)
        case .progArray, .perfEventArray:
            throw fail("\(inner.type.cName) cannot be an inner map", .notSupported)
        default:
            break
        }
        do {
            try validate(inner, cpuCount: 1)
        } catch {
            throw fail("inner map: \(error.message)", error.errno)
        }
    }
}
