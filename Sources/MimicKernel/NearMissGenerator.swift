import MimicCore

/// What a near-miss program does before it is mutated: the program shapes eBPF developers write.
public enum NearMissShape: String, Sendable, CaseIterable, Codable {
    /// XDP: load `data` / `data_end`, compare, read packet bytes.
    case packet
    /// XDP: `bpf_map_lookup_elem` with a stack key, NULL check, reads and writes of the value.
    case mapLookup
    /// XDP: stores to the stack, loads back.
    case stack
    /// tc: `bpf_sk_lookup_tcp` with a tuple on the stack, NULL check, field reads, `bpf_sk_release`.
    case socket
    /// XDP: `bpf_ringbuf_reserve`, NULL check, stores, `bpf_ringbuf_submit` / `discard`.
    case ringbuf
    /// XDP: a loop whose bound comes from the context, masked.
    case loop
    /// tc: reads of `__sk_buff` fields and a write of `mark`.
    case context
    /// XDP: two paths that leave different states and meet, then a tail that is safe for some
    /// of those states (`NearMissJoin.swift`): measures state pruning.
    case join
}

/// The small change a near-miss program makes to a valid one (`valid`: none). Each is written
/// so that, depending on the rest of the program, it sometimes breaks the program and sometimes
/// does not (a check dropped where another check still covers the reads, a release skipped
/// only on a path the verifier knows is dead) — so agreement needs the verifier's reasoning,
/// not the mutation's name.
public enum NearMissMutation: String, Sendable, CaseIterable, Codable {
    /// The program as generated.
    case valid
    /// packet: the comparison with `data_end` before the reads is removed.
    case dropBoundsCheck
    /// packet: the checked range is one byte shorter; map value / ring buffer record: one access
    /// moves by its own size (it may leave the value).
    case offByOne
    /// packet: the packet pointer is advanced after the check, before the reads.
    case advanceAfterCheck
    /// mapLookup, socket, ringbuf: the NULL check of the helper's result is removed.
    case dropNullCheck
    /// mapLookup, socket, stack: a stack store the program later reads (or hands to a helper)
    /// is removed; in the stack shape it may be the spill of a pointer read through later.
    case uninitializedStack
    /// any shape: a register nothing wrote is read (directly, on a path the verifier walks, or
    /// on one it knows is dead).
    case uninitializedRegister
    /// socket, ringbuf: the release / submit is removed, or skipped on a path that is live or
    /// dead.
    case skipRelease
    /// socket, ringbuf: the object is used after its release / submit (always, or on a path
    /// that is live or dead).
    case useAfterRelease
    /// loop: the bound's mask is widened (to 8, 12, 16 or 18 bits) or dropped.
    case widenLoopBound
    /// loop: the counter's increment is removed.
    case dropLoopIncrement
    /// stack: one access moves to an offset near or past the frame's ends.
    case stackOutOfBounds
    /// context: one read moves to another (maybe invalid or misaligned) offset.
    case contextOffset
    /// context: the write goes to another `__sk_buff` field (maybe read-only).
    case contextWrite
    /// join: an index copied from the bounded register, from another one, or with a constant
    /// added (copies share an id; the kernel links `r4 = r7 + k` too).
    case linkedCopy
    /// join: an index masked or set to a constant, different on each path.
    case scalarRange
    /// join: a stack pointer whose variable offset may or may not reach a spilled pointer.
    case stackPointer
    /// join: a scalar spilled (8 or 4 bytes) and filled back (8 or 4 bytes) as an index.
    case spilledScalar
    /// join: a stack slot holding zero, a scalar, a pointer or unknown bytes.
    case slotType
    /// join: packet bounds checked to different lengths.
    case packetRange
    /// join: a map value checked for NULL on some paths.
    case nullness
    /// join: a scalar, maybe copied, spilled and filled, then a helper's size, an index, the
    /// operand of a branch its bounds decide, or unused (precision tracking).
    case scalarUse

    /// The mutations that apply to `shape` (besides `valid`).
    public static func applicable(to shape: NearMissShape) -> [NearMissMutation] {
        switch shape {
        case .packet: [.dropBoundsCheck, .offByOne, .advanceAfterCheck, .uninitializedRegister]
        case .mapLookup: [.dropNullCheck, .offByOne, .uninitializedStack, .uninitializedRegister]
        case .stack: [.uninitializedStack, .stackOutOfBounds, .uninitializedRegister]
        case .socket: [.dropNullCheck, .skipRelease, .useAfterRelease, .uninitializedStack, .uninitializedRegister]
        case .ringbuf: [.dropNullCheck, .offByOne, .skipRelease, .useAfterRelease, .uninitializedRegister]
        case .loop: [.widenLoopBound, .dropLoopIncrement, .uninitializedRegister]
        case .context: [.contextOffset, .contextWrite, .uninitializedRegister]
        case .join: NearMissBuilder.joinMutations
        }
    }
}

/// A generated program for measuring a verifier against the kernel's: bytecode, its program
/// type and the maps it uses, and what it was made from.
///
/// Map references are `lddw` with `src = 5` (`BPF_PSEUDO_MAP_IDX`) and `imm` = the index into
/// `maps`, as in `ObjectFile` programs; `kernelInstructions(mapDescriptors:)` turns them into
/// the kernel's `BPF_PSEUDO_MAP_FD`.
public struct NearMissProgram: Sendable, Equatable {
    public var seed: UInt64
    public var shape: NearMissShape
    public var mutation: NearMissMutation
    public var type: ProgramType
    public var maps: [MapAttributes]
    public var instructions: [RawInstruction]
    /// The assembler text the instructions were assembled from (`ldmap %rN, I` is the `lddw`
    /// of map `I`).
    public var assembly: String

    /// `shape.mutation`, the class agreement is tallied by ("packet.dropBoundsCheck").
    public var mutationClass: String { "\(shape.rawValue).\(mutation.rawValue)" }

    /// The instructions with map `i`'s references rewritten to `BPF_PSEUDO_MAP_FD` with
    /// `mapDescriptors[i]`.
    public func kernelInstructions(mapDescriptors: [Int32]) throws(KernelError) -> [RawInstruction] {
        var code = instructions
        var slot = 0
        while slot < code.count {
            if code[slot].opcode == 0x18 {
                if code[slot].source == LoadImm64Kind.mapIndex.rawValue {
                    let index = Int(code[slot].imm)
                    guard index >= 0, index < mapDescriptors.count else {
                        throw KernelError.invalidArgument("slot \(slot): map index \(index) has no map")
                    }
                    code[slot].source = LoadImm64Kind.mapFileDescriptor.rawValue
                    code[slot].imm = mapDescriptors[index]
                }
                slot += 2
            } else {
                slot += 1
            }
        }
        return code
    }
}

/// Generates near-miss programs, deterministically from a seed: a valid program of one of the
/// `NearMissShape`s with random sizes, offsets and branch forms, then (most of the time) one
/// `NearMissMutation` that applies to it.
public struct NearMissGenerator: Sendable {
    /// Per hundred programs, how many stay valid (the rest get a mutation).
    public var validPercent: Int
    /// The shapes programs are drawn from (all of them by default).
    public var shapes: [NearMissShape]

    public init(validPercent: Int = 15, shapes: [NearMissShape] = NearMissShape.allCases) {
        self.validPercent = validPercent
        self.shapes = shapes.isEmpty ? NearMissShape.allCases : shapes
    }

    /// The program for `seed`.
    public func program(seed: UInt64) -> NearMissProgram {
        var random = SeededRandom(seed: seed)
        let shape = random.pick(shapes)
        let mutation =
            random.chance(validPercent) ? .valid : random.pick(NearMissMutation.applicable(to: shape))
        return program(shape: shape, mutation: mutation, seed: seed)
    }

    /// The program of `shape` with `mutation` for `seed` (the mutation must apply to the shape;
    /// one that does not leaves the program valid).
    public func program(shape: NearMissShape, mutation: NearMissMutation, seed: UInt64) -> NearMissProgram {
        var builder = NearMissBuilder(random: SeededRandom(seed: seed ^ 0x6E65_6172_6D69_7373))
        switch shape {
        case .packet: builder.packet(mutation)
        case .mapLookup: builder.mapLookup(mutation)
        case .stack: builder.stack(mutation)
        case .socket: builder.socket(mutation)
        case .ringbuf: builder.ringbuf(mutation)
        case .loop: builder.loop(mutation)
        case .context: builder.context(mutation)
        case .join: builder.join(mutation)
        }
        if mutation == .uninitializedRegister { builder.readUninitializedRegister() }
        let (instructions, text) = builder.assemble()
        return NearMissProgram(
            seed: seed, shape: shape, mutation: mutation, type: builder.type, maps: builder.maps,
            instructions: instructions, assembly: text)
    }
}

/// Builds one near-miss program as assembler lines. Registers: R6 holds the context, R7 the
/// object a helper returned; R8 is never written (the uninitialized register a mutation reads)
/// and R9 is the guard register of mutations placed on a live or dead path.
struct NearMissBuilder {
    var random: SeededRandom
    var type: ProgramType = .xdp
    var maps: [MapAttributes] = []
    var lines: [String] = []

    init(random: SeededRandom) { self.random = random }

    // MARK: Shapes

    mutating func packet(_ mutation: NearMissMutation) {
        type = .xdp
        let range = random.pick([14, 20, 34, 42, 54, 60])
        // An optional earlier check: when it covers the reads, dropping the main one is harmless.
        let earlier = random.chance(40) ? random.pick([14, 34, 60, 64]) : 0
        let covered = max(range, earlier)
        lines += ["mov %r6, %r1", "ldxw %r2, [%r6+0]", "ldxw %r3, [%r6+4]", "mov %r0, 2"]
        if earlier > 0 { lines += ["mov %r4, %r2", "add %r4, \(earlier)", "jgt %r4, %r3, out"] }
        let checked = mutation == .offByOne ? range - 1 : range
        if mutation != .dropBoundsCheck {
            lines += ["mov %r4, %r2", "add %r4, \(checked)"]
            lines.append(random.chance(50) ? "jgt %r4, %r3, out" : "jlt %r3, %r4, out")
        }
        if mutation == .advanceAfterCheck { lines.append("add %r2, \(random.pick([1, 2, 4, 8, 14]))") }
        for _ in 0..<(1 + random.below(3)) {
            let size = random.pick([1, 2, 4, 8])
            // Reads end inside the covered range; one in two ends exactly at its end.
            let end = random.chance(50) ? covered : size + random.below(covered - size + 1)
            let offset = end - size
            lines += ["ldx\(Self.sizeSuffix(size)) %r5, [%r2+\(offset)]", "add %r0, %r5"]
        }
        lines += ["out:", "exit"]
    }

    mutating func mapLookup(_ mutation: NearMissMutation) {
        type = .xdp
        let valueSize = random.pick([8, 16, 32, 64])
        maps = [
            MapAttributes(
                name: "values", type: random.chance(50) ? .array : .hash, keySize: 4, valueSize: valueSize,
                maxEntries: 4)
        ]
        lines += ["mov %r6, %r1"]
        if mutation != .uninitializedStack || random.chance(30) {
            // With the mutation, 30% keep a partial key: one byte of four stored.
            lines.append(mutation == .uninitializedStack ? "stb [%r10-4], 0" : "stw [%r10-4], \(random.below(4))")
        }
        lines += ["ldmap %r1, 0", "mov %r2, %r10", "add %r2, -4", "call 1"]
        if mutation != .dropNullCheck { lines.append("jeq %r0, 0, out") }
        let accesses = random.below(4) // none: the program only asks whether the key exists
        let moved = accesses > 0 && mutation == .offByOne ? random.below(accesses) : -1
        for index in 0..<accesses {
            let size = random.pick([1, 2, 4, 8].filter { $0 <= valueSize })
            var offset = random.below(valueSize / size) * size
            if index == moved { offset += size }
            if random.chance(50) {
                lines += ["ldx\(Self.sizeSuffix(size)) %r1, [%r0+\(offset)]", "add %r1, 1"]
            } else {
                lines.append("st\(Self.sizeSuffix(size)) [%r0+\(offset)], \(random.below(100))")
            }
        }
        lines += ["out:", "mov %r0, 2", "exit"]
    }

    mutating func stack(_ mutation: NearMissMutation) {
        type = .xdp
        let slots = 2 + random.below(6)
        var stores: [(offset: Int, size: Int)] = []
        for index in 0..<slots {
            let size = random.pick([1, 2, 4, 8])
            stores.append((-8 * (index + 1), size))
        }
        // Half the programs also spill the context pointer to r10-64 and fill it back to read
        // through it: without the spill, the fill is of an unknown scalar.
        let spillsPointer = random.chance(50)
        let dropped = mutation == .uninitializedStack ? random.below(slots + (spillsPointer ? 1 : 0)) : -1
        let moved = mutation == .stackOutOfBounds ? random.below(slots) : -1
        lines += ["mov %r6, %r1", "ldxw %r2, [%r6+16]", "mov %r0, 0"]
        if spillsPointer, dropped != slots { lines.append("stxdw [%r10-64], %r6") }
        for (index, store) in stores.enumerated() where index != dropped {
            var offset = store.offset
            if index == moved { offset = random.pick([-512, -520, -516, 0, 8, -504]) }
            lines.append("stx\(Self.sizeSuffix(store.size)) [%r10\(Self.signed(offset))], %r2")
        }
        for (index, store) in stores.enumerated() where random.chance(70) || index == dropped {
            lines += ["ldx\(Self.sizeSuffix(store.size)) %r3, [%r10\(Self.signed(store.offset))]", "add %r0, %r3"]
        }
        if spillsPointer { lines += ["ldxdw %r4, [%r10-64]", "ldxw %r5, [%r4+16]", "add %r0, %r5"] }
        lines += ["and %r0, 3", "exit"]
    }

    mutating func socket(_ mutation: NearMissMutation) {
        type = .schedCls
        lines += ["mov %r6, %r1"]
        let dropped = mutation == .uninitializedStack ? random.below(5) : -1
        for index in 0..<5 where index != dropped { lines.append("stdw [%r10-\(8 * (index + 1))], 0") }
        lines += [
            "mov %r1, %r6", "mov %r2, %r10", "add %r2, -40", "mov %r3, \(random.pick([12, 36]))", "mov %r4, -1",
            "mov %r5, 0", "call 84", "mov %r7, %r0", "mov %r0, 0",
        ]
        if mutation != .dropNullCheck { lines.append("jeq %r7, 0, out") }
        // struct bpf_sock: bound_dev_if, family, type, protocol, mark, priority (u32 each).
        if random.chance(60) { lines += ["ldxw %r0, [%r7+\(4 * random.below(6))]", "and %r0, 1"] }
        release(mutation, call: "mov %r1, %r7\ncall 86")
        if mutation == .useAfterRelease { useAfterRelease(["ldxw %r1, [%r7+4]", "add %r0, %r1"]) }
        lines += ["out:", "exit"]
    }

    mutating func ringbuf(_ mutation: NearMissMutation) {
        type = .xdp
        maps = [MapAttributes(name: "events", type: .ringBuffer, keySize: 0, valueSize: 0, maxEntries: 4096)]
        let size = random.pick([8, 16, 32])
        lines += ["mov %r6, %r1", "ldmap %r1, 0", "mov %r2, \(size)", "mov %r3, 0", "call 131", "mov %r7, %r0"]
        if mutation != .dropNullCheck { lines.append("jeq %r7, 0, out") }
        let stores = random.below(3)
        let moved = stores > 0 && mutation == .offByOne ? random.below(stores) : -1
        for index in 0..<stores {
            let width = random.pick([1, 2, 4, 8])
            var offset = random.below(size / width) * width
            if index == moved { offset += width }
            lines.append("st\(Self.sizeSuffix(width)) [%r7+\(offset)], \(random.below(100))")
        }
        let finish = random.chance(70) ? "mov %r1, %r7\nmov %r2, 0\ncall 132" : "mov %r1, %r7\nmov %r2, 0\ncall 133"
        release(mutation, call: finish)
        if mutation == .useAfterRelease { useAfterRelease(["stb [%r7+0], 1"]) }
        lines += ["out:", "mov %r0, 2", "exit"]
    }

    mutating func loop(_ mutation: NearMissMutation) {
        type = .xdp
        let bits = random.below(8) // 0 bits: the loop never runs
        var mask: Int? = (1 << bits) - 1
        if mutation == .widenLoopBound { mask = random.pick([0xFF, 0xFFF, 0xFFFF, 0x3FFFF, nil]) }
        let jump32 = random.chance(50)
        lines += ["mov %r6, %r1", "ldxw %r2, [%r6+16]"]
        if let mask { lines.append("and %r2, \(mask)") }
        lines += ["mov %r3, 0", "mov %r0, 0", "loop:", jump32 ? "jge32 %r3, %r2, done" : "jge %r3, %r2, done"]
        lines.append("add %r0, %r3")
        if mutation != .dropLoopIncrement { lines.append("add %r3, \(random.pick([1, 1, 2]))") }
        lines += ["ja loop", "done:", "and %r0, 3", "exit"]
    }

    mutating func context(_ mutation: NearMissMutation) {
        type = .schedCls
        // Fields of struct __sk_buff a tc program may read (all u32): len, pkt_type, mark,
        // queue_mapping, protocol, vlan_present, vlan_tci, vlan_proto, priority,
        // ingress_ifindex, ifindex, tc_index, cb[0..4], hash, tc_classid.
        let readable = Array(stride(from: 0, to: 84, by: 4)).filter { $0 != 76 && $0 != 80 }
        lines += ["mov %r6, %r1", "mov %r0, 0"]
        let reads = 1 + random.below(3)
        let moved = mutation == .contextOffset ? random.below(reads) : -1
        for index in 0..<reads {
            var offset = random.pick(readable)
            var size = 4
            if index == moved {
                offset = random.below(256)
                size = random.pick([1, 2, 4, 8])
            }
            lines += ["ldx\(Self.sizeSuffix(size)) %r2, [%r6+\(offset)]", "add %r0, %r2"]
        }
        // mark (8) is writable; the mutation writes some other field.
        let field = mutation == .contextWrite ? random.pick(readable) : 8
        lines += ["stxw [%r6+\(field)], %r0", "and %r0, 1", "exit"]
    }

    // MARK: Mutations shared by shapes

    /// The release `call` lines, or with `skipRelease`: nothing, or the release skipped when
    /// R9 (unknown, or a constant that makes the skip dead) equals 7.
    mutating func release(_ mutation: NearMissMutation, call: String) {
        guard mutation == .skipRelease else {
            lines += call.split(separator: "\n").map(String.init)
            return
        }
        switch random.below(3) {
        case 0: return
        case 1: guardWith(live: true)
        default: guardWith(live: false)
        }
        lines += ["jeq %r9, 7, skip"] + call.split(separator: "\n").map(String.init) + ["skip:"]
    }

    /// `use` after the release: always, or when R9 (unknown, or a constant that makes the use
    /// dead) equals 7.
    mutating func useAfterRelease(_ use: [String]) {
        let kind = random.below(3)
        guard kind > 0 else {
            lines += use
            return
        }
        guardWith(live: kind == 1)
        lines += ["jne %r9, 7, used"] + use + ["used:"]
    }

    /// Sets R9 at the start of the program: from the context (unknown to the verifier) or the
    /// constant 3 (so `jeq %r9, 7` is known never to jump).
    mutating func guardWith(live: Bool) {
        let source = type == .xdp ? "ldxw %r9, [%r1+16]" : "ldxw %r9, [%r1+8]"
        lines.insert(live ? source : "mov %r9, 3", at: 0)
    }

    /// Reads R8, which nothing writes, at a random point: unguarded, or where R9 equals 7 (a
    /// live path, or one the verifier knows is dead).
    mutating func readUninitializedRegister() {
        let kind = random.below(3)
        if kind > 0 { guardWith(live: kind == 1) }
        let exits = lines.indices.filter { lines[$0] == "exit" }
        let last = exits.last ?? lines.count
        let start = kind > 0 ? 1 : 0
        let position = start + random.below(max(1, last - start + 1))
        let read = kind > 0 ? ["jne %r9, 7, uninit", "mov %r9, %r8", "uninit:"] : ["mov %r9, %r8"]
        lines.insert(contentsOf: read, at: min(position, last))
    }

    // MARK: Assembling

    /// The instructions and the text (`ldmap` assembled as `lddw` with `BPF_PSEUDO_MAP_IDX`).
    func assemble() -> ([RawInstruction], String) {
        var text: [String] = []
        var mapSlots: [(slot: Int, map: Int32)] = []
        var slot = 0
        for line in lines {
            if line.hasSuffix(":") {
                text.append(line)
                continue
            }
            if line.hasPrefix("ldmap ") {
                let parts = line.dropFirst(6).split(separator: ",").map { $0.trimmingCharacters(in: " ") }
                mapSlots.append((slot, Int32(parts.last ?? "0") ?? 0))
                text.append("lddw \(parts.first ?? "%r1"), 0")
                slot += 2
            } else {
                text.append(line)
                slot += line.hasPrefix("lddw") ? 2 : 1
            }
        }
        let source = lines.joined(separator: "\n")
        // The lines come from the builder above, never from outside input: a failure is a bug
        // in a shape, reported as a program of one invalid instruction the kernel refuses.
        guard var code = try? Assembler.assemble(text.joined(separator: "\n")) else {
            return ([RawInstruction(opcode: 0)], source)
        }
        for (slot, map) in mapSlots where slot < code.count {
            code[slot].source = LoadImm64Kind.mapIndex.rawValue
            code[slot].imm = map
        }
        return (code, source)
    }

    static func sizeSuffix(_ size: Int) -> String {
        switch size {
        case 1: "b"
        case 2: "h"
        case 4: "w"
        default: "dw"
        }
    }

    static func signed(_ offset: Int) -> String { offset < 0 ? "\(offset)" : "+\(offset)" }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var text = self
        while let first = text.first, set.contains(first) { text = text.dropFirst() }
        while let last = text.last, set.contains(last) { text = text.dropLast() }
        return String(text)
    }
}
