import MimicCore
import MimicLinux

/// The world of the JIT's differential fuzzer in its map mode (`JITDifferential.runMaps`): a
/// `LinuxEmulator` (two CPUs) with one map of each kind the JIT looks up its own way — an array
/// and a per-CPU array (`InlineArrayLookup`), plain hash maps with 4- and 8-byte keys (the
/// inline probe, `InlineHashProbe`), and hash maps the probe does not take (16-byte keys, a
/// per-CPU hash, an LRU hash: `InlineHashLookup`'s direct call) — made afresh for each run,
/// with the same handles, and the hash maps filled the same way: a few keys, one of them
/// deleted again (a tombstone in the table). The context is the fuzzer's buffer with a manual
/// clock, so helpers `callx` reaches by id answer the same under both engines.
///
/// Lives here, beside the kernel fuzzer, because MimicCore (the fuzzer) has no maps and
/// MimicLinux is what host apps embed.
public enum JITMapFuzz {
    /// The maps, in creation order (`MapAttributes`, and what the generator is told).
    static let attributes: [MapAttributes] = [
        MapAttributes(name: "array", type: .array, keySize: 4, valueSize: 12, maxEntries: 5),
        MapAttributes(name: "percpu_array", type: .perCPUArray, keySize: 4, valueSize: 8, maxEntries: 4),
        MapAttributes(name: "hash4", type: .hash, keySize: 4, valueSize: 8, maxEntries: 8),
        MapAttributes(name: "hash8", type: .hash, keySize: 8, valueSize: 16, maxEntries: 6),
        MapAttributes(name: "hash16", type: .hash, keySize: 16, valueSize: 8, maxEntries: 4),
        MapAttributes(name: "percpu_hash", type: .perCPUHash, keySize: 4, valueSize: 8, maxEntries: 4),
        MapAttributes(name: "lru_hash", type: .lruHash, keySize: 8, valueSize: 8, maxEntries: 4),
    ]

    /// The maps as the generator sees them (the same handles in every world).
    public static func maps() throws -> [JITDifferential.FuzzMap] { try world(VMConfiguration()).maps }

    /// Runs `count` map programs from `seed` (`JITDifferential.runMaps`) in this world.
    public static func run(seed: UInt64, count: Int) throws -> JITDifferential.Report {
        let maps = try maps()
        return JITDifferential.runMaps(seed: seed, count: count, maps: maps) { configuration in
            try world(configuration).world
        }
    }

    /// A fresh VM of `configuration` with the maps, filled; and the maps as the generator sees them.
    static func world(_ configuration: VMConfiguration) throws -> (
        world: JITDifferential.World, maps: [JITDifferential.FuzzMap]
    ) {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 2, randomSeed: 1))
        let vm = VM(emulator: emulator, configuration: configuration)
        var maps: [any BPFMap] = []
        for attributes in attributes {
            let map = try emulator.createMap(attributes, in: vm)
            maps.append(map)
            guard attributes.type != .array, attributes.type != .perCPUArray else { continue }
            for key: UInt64 in [1, 2, 5, 0x1_0000_0001] {
                let bytes = (0..<attributes.keySize).map { UInt8(truncatingIfNeeded: key >> (8 * ($0 % 8))) }
                let value = (0..<attributes.valueSize).map { UInt8(truncatingIfNeeded: Int(key) &+ $0) }
                _ = map.update(key: bytes, value: value, flags: .any, cpu: 0)
                if key == 5 { _ = map.delete(key: bytes) }
            }
        }
        let described = maps.map { map in
            JITDifferential.FuzzMap(
                handle: map.handle,
                kind: map.attributes.type == .array || map.attributes.type == .perCPUArray ? .array : .hash,
                keySize: map.attributes.keySize, valueSize: map.attributes.valueSize,
                maxEntries: map.attributes.maxEntries)
        }
        let world = JITDifferential.World(
            vm: vm,
            contents: {
                maps.map { map in
                    let keys = map.keys.sorted { $0.lexicographicallyPrecedes($1) }
                    return "\(map.attributes.name): "
                        + keys.map { "\($0) = \(map.perCPUValues(forKey: $0) ?? [])" }.joined(separator: ", ")
                }.joined(separator: "; ")
            },
            // `callx` reaches any helper by its id: the clock must not run on its own.
            context: { FuzzContext(buffer: $0) })
        return (world, described)
    }
}

/// The buffer in R1 and as the packet of `ld_abs` (`MemoryContext`), with a manual clock.
struct FuzzContext: Context {
    let buffer: [UInt8]

    func attach(to process: MimicCore.Process) throws(SetupError) {
        let environment = TaskEnvironment(clock: .manual(start: 1_000_000_000, step: 1_000))
        try GenericContext(environment: environment).attach(to: process)
        try MemoryContext(buffer).attach(to: process)
    }
}
