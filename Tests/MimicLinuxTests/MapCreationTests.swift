import MimicCore
import MimicLinux
import Testing

@Suite("Maps: creation checks")
struct MapCreationTests {
    @Test func everySupportedTypeCreatesAndRegisters() throws {
        let (vm, emulator) = makeLinuxVM()
        let inner = MapAttributes(name: "inner", type: .array, keySize: 4, valueSize: 8, maxEntries: 4)
        let definitions: [MapAttributes] = [
            .init(name: "hash", type: .hash, keySize: 4, valueSize: 8, maxEntries: 8),
            .init(name: "array", type: .array, keySize: 4, valueSize: 8, maxEntries: 8),
            .init(name: "pchash", type: .perCPUHash, keySize: 4, valueSize: 8, maxEntries: 8),
            .init(name: "pcarray", type: .perCPUArray, keySize: 4, valueSize: 8, maxEntries: 8),
            .init(name: "lru", type: .lruHash, keySize: 4, valueSize: 8, maxEntries: 8),
            .init(name: "lrupc", type: .lruPerCPUHash, keySize: 4, valueSize: 8, maxEntries: 8),
            .init(
                name: "lpm", type: .lpmTrie, keySize: 8, valueSize: 8, maxEntries: 8,
                flags: MapFlags.noPrealloc.rawValue),
            .init(name: "progs", type: .progArray, keySize: 4, valueSize: 4, maxEntries: 8),
            .init(name: "perf", type: .perfEventArray, keySize: 4, valueSize: 4, maxEntries: 0),
            .init(name: "ring", type: .ringBuffer, keySize: 0, valueSize: 0, maxEntries: 4096),
            .init(name: "queue", type: .queue, keySize: 0, valueSize: 8, maxEntries: 8),
            .init(name: "stack", type: .stack, keySize: 0, valueSize: 8, maxEntries: 8),
            .init(name: "aom", type: .arrayOfMaps, keySize: 4, valueSize: 4, maxEntries: 8, innerMap: inner),
            .init(name: "hom", type: .hashOfMaps, keySize: 8, valueSize: 4, maxEntries: 8, innerMap: inner),
            .init(name: "dev", type: .devMap, keySize: 4, valueSize: 4, maxEntries: 8),
            .init(name: "devhash", type: .devMapHash, keySize: 4, valueSize: 8, maxEntries: 8),
            .init(name: "cpu", type: .cpuMap, keySize: 4, valueSize: 4, maxEntries: 2),
            .init(name: "xsk", type: .xskMap, keySize: 4, valueSize: 4, maxEntries: 8),
        ]
        for attributes in definitions {
            let map = try emulator.createMap(attributes, in: vm)
            #expect(emulator.map(handle: map.handle) === map)
            #expect(emulator.map(named: attributes.name) === map)
            #expect(MapHandle.id(of: map.handle) != nil)
        }
        // libbpf's rule: a perf event array without max_entries gets one entry per CPU.
        #expect(emulator.map(named: "perf")?.attributes.maxEntries == 2)
        #expect(Set(emulator.allMaps.map(\.handle)).count == definitions.count)
    }

    static let invalid: [(String, MapAttributes, Errno)] = [
        ("hash key 0", .init(name: "x", type: .hash, keySize: 0, valueSize: 4, maxEntries: 1), .invalid),
        ("hash value 0", .init(name: "x", type: .hash, keySize: 4, valueSize: 0, maxEntries: 1), .invalid),
        ("hash max 0", .init(name: "x", type: .hash, keySize: 4, valueSize: 4, maxEntries: 0), .invalid),
        ("hash key too big", .init(name: "x", type: .hash, keySize: 513, valueSize: 4, maxEntries: 1), .tooBig),
        (
            "hash mmapable",
            .init(name: "x", type: .hash, keySize: 4, valueSize: 4, maxEntries: 1, flags: MapFlags.mmapable.rawValue),
            .invalid
        ),
        (
            "hash no common lru",
            .init(
                name: "x", type: .hash, keySize: 4, valueSize: 4, maxEntries: 1, flags: MapFlags.noCommonLRU.rawValue),
            .invalid
        ),
        (
            "lru not prealloc",
            .init(
                name: "x", type: .lruHash, keySize: 4, valueSize: 4, maxEntries: 1, flags: MapFlags.noPrealloc.rawValue),
            .notSupported
        ),
        (
            "percpu value too big", .init(name: "x", type: .perCPUHash, keySize: 4, valueSize: 32769, maxEntries: 1),
            .tooBig
        ),
        ("array key 8", .init(name: "x", type: .array, keySize: 8, valueSize: 4, maxEntries: 1), .invalid),
        ("array value 0", .init(name: "x", type: .array, keySize: 4, valueSize: 0, maxEntries: 1), .invalid),
        (
            "percpu array mmapable",
            .init(
                name: "x", type: .perCPUArray, keySize: 4, valueSize: 4, maxEntries: 1,
                flags: MapFlags.mmapable.rawValue), .invalid
        ),
        ("queue with key", .init(name: "x", type: .queue, keySize: 4, valueSize: 4, maxEntries: 1), .invalid),
        (
            "stack no prealloc",
            .init(
                name: "x", type: .stack, keySize: 0, valueSize: 4, maxEntries: 1, flags: MapFlags.noPrealloc.rawValue),
            .invalid
        ),
        (
            "ringbuf not power of two",
            .init(name: "x", type: .ringBuffer, keySize: 0, valueSize: 0, maxEntries: 3 * 4096), .invalid
        ),
        (
            "ringbuf not page multiple",
            .init(name: "x", type: .ringBuffer, keySize: 0, valueSize: 0, maxEntries: 1024), .invalid
        ),
        ("ringbuf with key", .init(name: "x", type: .ringBuffer, keySize: 4, valueSize: 0, maxEntries: 4096), .invalid),
        (
            "ringbuf with value", .init(name: "x", type: .ringBuffer, keySize: 0, valueSize: 4, maxEntries: 4096),
            .invalid
        ),
        (
            "lpm without no_prealloc", .init(name: "x", type: .lpmTrie, keySize: 8, valueSize: 4, maxEntries: 1),
            .invalid
        ),
        (
            "lpm key without data", .init(name: "x", type: .lpmTrie, keySize: 4, valueSize: 4, maxEntries: 1, flags: 1),
            .invalid
        ),
        (
            "lpm key too long", .init(name: "x", type: .lpmTrie, keySize: 261, valueSize: 4, maxEntries: 1, flags: 1),
            .invalid
        ),
        ("prog array value 8", .init(name: "x", type: .progArray, keySize: 4, valueSize: 8, maxEntries: 1), .invalid),
        ("perf key 8", .init(name: "x", type: .perfEventArray, keySize: 8, valueSize: 4, maxEntries: 1), .invalid),
        (
            "array of maps without inner",
            .init(name: "x", type: .arrayOfMaps, keySize: 4, valueSize: 4, maxEntries: 1), .invalid
        ),
        (
            "hash of maps value 8",
            .init(
                name: "x", type: .hashOfMaps, keySize: 4, valueSize: 8, maxEntries: 1,
                innerMap: .init(name: "i", type: .array, keySize: 4, valueSize: 4, maxEntries: 1)), .invalid
        ),
        (
            "map of maps of maps",
            .init(
                name: "x", type: .arrayOfMaps, keySize: 4, valueSize: 4, maxEntries: 1,
                innerMap: .init(name: "i", type: .arrayOfMaps, keySize: 4, valueSize: 4, maxEntries: 1)), .invalid
        ),
        ("devmap value 12", .init(name: "x", type: .devMap, keySize: 4, valueSize: 12, maxEntries: 1), .invalid),
        ("cpumap key 8", .init(name: "x", type: .cpuMap, keySize: 8, valueSize: 4, maxEntries: 1), .invalid),
        ("xskmap value 8", .init(name: "x", type: .xskMap, keySize: 4, valueSize: 8, maxEntries: 1), .invalid),
        (
            "spin lock in a per-CPU hash",
            .init(name: "x", type: .perCPUHash, keySize: 4, valueSize: 8, maxEntries: 1, spinLockOffset: 0),
            .notSupported
        ),
        (
            "spin lock past the value",
            .init(name: "x", type: .hash, keySize: 4, valueSize: 8, maxEntries: 1, spinLockOffset: 6), .invalid
        ),
        ("sockmap value not an fd", .init(name: "x", type: .sockMap, keySize: 4, valueSize: 16, maxEntries: 1), .invalid),
        ("arena", .init(name: "x", type: .arena, keySize: 0, valueSize: 0, maxEntries: 1), .notSupported),
    ]

    @Test(arguments: invalid.indices)
    func refusesWhatTheKernelRefuses(index: Int) {
        let (label, attributes, errno) = Self.invalid[index]
        let (vm, emulator) = makeLinuxVM()
        #expect(throws: MapError.self, "\(label)") { try emulator.createMap(attributes, in: vm) }
        do {
            _ = try emulator.createMap(attributes, in: vm)
        } catch {
            #expect(error.errno == errno, "\(label): \(error)")
            #expect(error.description.contains(attributes.type.cName), "\(label): \(error)")
        }
    }

    @Test func unsupportedTypeIsNamed() {
        let (vm, emulator) = makeLinuxVM()
        do {
            _ = try emulator.createMap(
                .init(name: "ops", type: .structOps, keySize: 4, valueSize: 4, maxEntries: 1), in: vm)
            Issue.record("created a struct_ops map")
        } catch {
            #expect(error.description == "map ops: BPF_MAP_TYPE_STRUCT_OPS: not supported by Mimic")
        }
    }
}
