/// The map mode of the JIT's differential fuzzer: random programs (those of `program(seed:)`'s
/// generator) that also call `bpf_map_lookup_elem`, `bpf_map_update_elem` and
/// `bpf_map_delete_elem` (helpers 1–3) on the maps a `World` provides, and use the returned
/// pointer. The calls take their arguments in the forms the JIT treats apart: the proven form
/// (`lddw r1, handle` and `mov r2, r10; add r2, k` just before the call, `ProvenArguments`),
/// keys computed otherwise, keys out of the frame or out of range, faulting key pointers and
/// handles that name no map. The value pointer is used null-checked, unchecked (faulting on a
/// miss) and kept in R6–R9 for the random accesses that follow.
///
/// MimicCore has no maps: the world (a VM whose emulator has the maps, e.g. MimicLinux's
/// `LinuxEmulator`) comes from the caller, fresh for each run, and must be the same for both
/// engines. Besides the outcome `run(seed:count:)` compares, the maps' contents at the end are
/// compared.
extension JITDifferential {
    /// A map the generated programs use: its handle and shape.
    public struct FuzzMap: Sendable {
        public enum Kind: Sendable { case array, hash }
        public var handle: UInt64
        public var kind: Kind
        public var keySize: Int
        public var valueSize: Int
        public var maxEntries: Int

        public init(handle: UInt64, kind: Kind, keySize: Int, valueSize: Int, maxEntries: Int) {
            self.handle = handle
            self.kind = kind
            self.keySize = keySize
            self.valueSize = valueSize
            self.maxEntries = maxEntries
        }
    }

    /// A fresh VM whose emulator holds the maps `maps` describes (the same handles each time),
    /// a description of the maps' contents for the comparison, and the context that puts the
    /// fuzzer's 64-byte buffer in R1 (one that makes every helper `callx` may reach answer the
    /// same in both runs: a manual clock, seeded random numbers).
    public struct World {
        public var vm: VM
        public var contents: () -> String
        public var context: (_ buffer: [UInt8]) -> any Context

        public init(
            vm: VM, contents: @escaping () -> String,
            context: @escaping (_ buffer: [UInt8]) -> any Context = { MemoryContext($0) }
        ) {
            self.vm = vm
            self.contents = contents
            self.context = context
        }
    }

    /// Runs `count` map programs (seeds `seed`, `seed + 1`, ...) under both engines, each in a
    /// world `makeWorld` makes with the run's configuration (engine, call depth); the outcomes and the maps' contents must agree.
    /// Odd seeds run on vCPU 1 (per-CPU maps), even ones on vCPU 0.
    public static func runMaps(
        seed: UInt64, count: Int, maps: [FuzzMap], makeWorld: (VMConfiguration) throws -> World
    ) -> Report {
        compare(seed: seed, count: count, program: { program(seed: $0, maps: maps) }) {
            instructions, engine, depth, seed, notCompiled in
            try mapOutcome(
                instructions, world: makeWorld(VMConfiguration(maxCallDepth: depth, engine: engine)),
                vCPU: Int(seed & 1), compiled: notCompiled)
        }
    }

    static func mapOutcome(
        _ instructions: [RawInstruction], world: World, vCPU: Int,
        compiled notCompiled: UnsafeMutablePointer<Int>?
    ) throws -> Outcome {
        let vm = world.vm
        let program = try vm.load(instructions, name: "fuzz")
        if let notCompiled, program.jitCache.compiled(program) == nil { notCompiled.pointee += 1 }
        let buffer = (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        let context = world.context(buffer)
        let process = try vm.makeProcess(for: program, context: context, vCPU: vCPU)
        var outcome = record(process, context: context, buffer: buffer)
        outcome.text += " maps " + world.contents()
        return outcome
    }

    /// A map call (helper 1, 2 or 3) on one of `maps`, its arguments set up in one of the forms
    /// the type's comment lists, and for a lookup some use of R0.
    static func mapCall(_ random: inout Random, maps: [FuzzMap]) -> [Item] {
        var items: [Item] = []
        let map = random.pick(maps)
        let helper = random.pick([1, 1, 1, 1, 2, 2, 3])
        // The key, in the frame (16-byte keys need two words).
        let keyOffset = Int16(-8 * (1 + random.below(8)) - (map.keySize > 8 ? 8 : 0))
        if random.chance(92) {
            let key: Int32
            if map.kind == .array {
                key = random.pick([0, 0, 1, Int32(map.maxEntries - 1), Int32(map.maxEntries), -1, 2, 3])
            } else {
                key = random.chance(90) ? random.pick([0, 1, 2, 3, 5, -1]) : Int32(truncatingIfNeeded: random.next())
            }
            switch map.keySize {
            case 4: items.append(.plain(encode(.store32Imm, dst: 10, off: keyOffset, imm: key)))
            case 8: items.append(.plain(encode(.store64Imm, dst: 10, off: keyOffset, imm: key)))
            default:
                items.append(.plain(encode(.store64Imm, dst: 10, off: keyOffset, imm: key)))
                items.append(
                    .plain(encode(.store64Imm, dst: 10, off: keyOffset + 8, imm: random.pick([0, 0, 1, -1]))))
            }
        }
        var setup: [[Item]] = []
        // R1: the map's handle, mostly by `lddw`.
        switch random.below(40) {
        case 0: setup.append([loadWide(dst: 1, MapHandleGuess.missing)]) // no such map
        case 1: setup.append([loadWide(dst: 1, random.next())])
        case 2: setup.append([.plain(encode(.mov64Reg, dst: 1, src: UInt8(random.below(10))))])
        case 3: setup.append([]) // R1 as it is
        default: setup.append([loadWide(dst: 1, map.handle)])
        }
        // R2: the key pointer.
        let key = Int32(keyOffset)
        switch random.below(40) {
        case 0..<26:
            setup.append([
                .plain(encode(.mov64Reg, dst: 2, src: 10)), .plain(encode(.add64Imm, dst: 2, imm: key)),
            ])
        case 26..<30:
            setup.append([
                .plain(encode(.mov64Reg, dst: 0, src: 10)), .plain(encode(.add64Imm, dst: 0, imm: key)),
                .plain(encode(.mov64Reg, dst: 2, src: 0)),
            ])
        case 30, 31:
            setup.append([
                .plain(encode(.mov64Reg, dst: 2, src: 10)), .plain(encode(.add64Imm, dst: 2, imm: key + 8)),
                .plain(encode(.add64Imm, dst: 2, imm: -8)),
            ])
        case 32, 33:
            // Out of the frame, across its top, or far off.
            let k = random.pick([-2, -4, -6, 0, 8, -512, -510, -516, -600, -4096, Int32(map.keySize) - 512])
            setup.append([
                .plain(encode(.mov64Reg, dst: 2, src: 10)), .plain(encode(.add64Imm, dst: 2, imm: k)),
            ])
        case 34: setup.append([.plain(encode(.mov64Reg, dst: 2, src: UInt8(random.below(10))))])
        case 35: setup.append([.plain(encode(.mov64Imm, dst: 2, imm: random.pick([0, 8, -1])))])
        case 36, 37: setup.append([.plain(encode(.mov64Reg, dst: 2, src: 6))]) // R6: often a stack pointer
        default: setup.append([])
        }
        if helper == 2 {
            // R3: a value in the frame; R4: the flags (ANY, NOEXIST, EXIST, an invalid one).
            let valueOffset = Int32(-80 - 8 * random.below(6) - (map.valueSize > 8 ? 8 : 0))
            var value: [Item] = [
                .plain(encode(.store64Imm, dst: 10, off: Int16(valueOffset), imm: Int32(truncatingIfNeeded: random.next())))
            ]
            if map.valueSize > 8 {
                value.append(.plain(encode(.store32Imm, dst: 10, off: Int16(valueOffset + 8), imm: random.pick([0, 7, -1]))))
            }
            items += value
            if random.chance(90) {
                setup.append([
                    .plain(encode(.mov64Reg, dst: 3, src: 10)), .plain(encode(.add64Imm, dst: 3, imm: valueOffset)),
                ])
            } else {
                setup.append([.plain(encode(.mov64Imm, dst: 3, imm: random.pick([0, -8, 4096])))])
            }
            setup.append([.plain(encode(.mov64Imm, dst: 4, imm: random.pick([0, 0, 0, 1, 2, 4])))])
        }
        // Mostly R2 last (as compilers emit it), sometimes R1 last, sometimes an instruction
        // between that may or may not touch the arguments.
        if random.chance(25) { setup.swapAt(0, 1) }
        for (index, part) in setup.enumerated() {
            items += part
            if index + 1 < setup.count || random.chance(10) {
                if random.chance(15) {
                    let dst = UInt8(random.pick([0, 3, 4, 5, 2]))
                    items.append(.plain(encode(.add64Imm, dst: dst, imm: random.pick([0, 1, -4]))))
                } else if random.chance(10) {
                    items.append(.plain(encode(.store32Imm, dst: 10, off: keyOffset, imm: random.pick([0, 1]))))
                }
            }
        }
        items.append(.plain(encode(.callHelper, imm: Int32(helper))))
        guard helper == 1 else { return items }
        // Uses of the value pointer.
        switch random.below(20) {
        case 0..<11:
            // if (r0) { loads and stores within (or just past) the value }
            var body: [Item] = []
            for _ in 0..<(1 + random.below(4)) { body.append(.plain(valueAccess(&random, map: map))) }
            items.append(.plain(encode(.jumpEqual64Imm, dst: 0, off: Int16(body.count))))
            items += body
        case 11..<13: items.append(.plain(valueAccess(&random, map: map))) // unchecked: faults on NULL
        case 13..<18: items.append(.plain(encode(.mov64Reg, dst: UInt8(6 + random.below(4)), src: 0)))
        default: break
        }
        return items
    }

    /// A load or store at R0 + an offset within the value (sometimes just past it).
    static func valueAccess(_ random: inout Random, map: FuzzMap) -> RawInstruction {
        let op = random.pick(loads + stores)
        let size = [4, 2, 1, 8][Int(InstructionSet.form(of: op).opcode >> 3 & 3)]
        let limit = max(1, map.valueSize - size + 1)
        var offset = Int16(random.below(limit) & ~(size - 1))
        if random.chance(8) { offset = Int16(map.valueSize + random.below(8) - 4) }
        switch InstructionSet.form(of: op).shape {
        case .load: return encode(op, dst: UInt8(random.pick([3, 4, 5, 0])), src: 0, off: offset)
        case .storeImm: return encode(op, dst: 0, off: offset, imm: Int32(truncatingIfNeeded: random.next()))
        default: return encode(op, dst: 0, src: UInt8(random.below(10)), off: offset)
        }
    }

    static func loadWide(dst: UInt8, _ value: UInt64) -> Item {
        .wide(
            RawInstruction(opcode: 0x18, destination: dst, imm: Int32(truncatingIfNeeded: value)),
            RawInstruction(opcode: 0, imm: Int32(truncatingIfNeeded: value >> 32)))
    }

    /// A handle no map has (the tag of MimicLinux's map handles with an id never given).
    enum MapHandleGuess {
        static let missing: UInt64 = 0xFFFF_FFFD_0000_FFFF
    }
}
