import MimicCore

/// The `join` shape: two paths that meet, so that the verifier stores its state at the meeting
/// point on the first path and, when the second arrives, decides whether the stored state covers
/// it (`states_equal`). A verifier that prunes where the kernel does not accepts programs the
/// kernel refuses; one that does not prune where the kernel does only works harder. So each
/// mutation is a pair of states the two paths leave, drawn at random from a family (linked
/// copies, scalar ranges, stack pointers, spills, slot types, packet ranges, NULL checks, a
/// scalar's uses), and a tail after the meeting point that is safe for some of the family's states
/// and not for others.
///
/// Layout (XDP):
///
///     prologue: R6 = ctx, R7 and R8 = 0..255 from the context, fp-32..fp-1 zeroed, R9 = 0
///     call bpf_get_prandom_u32; if R0 == 0 goto second
///     first path's state; padding (2 jumps, 9 instructions: the kernel stores a state only
///       after 2 jumps and 8 instructions); goto join
///     second: second path's state
///     join: tail
///     out: R0 = XDP_PASS; exit
///
/// The fall-through (the first path) is explored first, by the kernel and by MimicVerifier, so
/// its state is the stored one.
extension NearMissBuilder {
    /// One state a path may leave, and whether the family's tail is safe after it.
    struct JoinState {
        var lines: [String]
        var safe: Bool
    }

    /// The mutations of the `join` shape.
    static let joinMutations: [NearMissMutation] = [
        .linkedCopy, .scalarRange, .stackPointer, .spilledScalar, .slotType, .packetRange, .nullness, .scalarUse,
    ]

    mutating func join(_ mutation: NearMissMutation) {
        type = .xdp
        let family = mutation == .valid ? random.pick(Self.joinMutations) : mutation
        // Indexed reads of more than a byte must be aligned on the stack; valid programs read
        // bytes, mutated ones mostly so.
        let indexSize = mutation == .valid ? 1 : random.pick([1, 1, 1, 2, 4, 8])
        var beforeCall: [String] = []
        var afterCall: [String] = []
        var tail: [String] = []
        var states: [JoinState] = []
        switch family {
        case .linkedCopy:
            // R4 is made from R7 (or R8) by copies and constants; the tail bounds R7 or R4 and
            // indexes the 32 bytes with R4. A copy shares R7's id, so the bound on R7 bounds it
            // too; so does a copy with a constant added (64- or 32-bit, `BPF_ADD_CONST`), moved
            // by the constant; copying a register so linked unlinks it from R7.
            let limit = random.pick([7, 15, 23])
            let size = indexSize
            let k = random.pick([4, 8])
            let onR7 = random.chance(60)
            // How R4 is made, and its largest value after the bound on R7.
            let ways: [(lines: [String], high: Int)] = [
                (["mov %r4, %r7"], limit),
                (["mov32 %r4, %r7"], limit),
                (["mov %r4, %r8"], 255),
                (["mov %r4, %r7", "add %r4, \(k)"], limit + k),
                (["mov32 %r4, %r7", "add32 %r4, \(k)"], limit + k),
                (["mov %r4, %r7", "sub %r4, \(k)"], limit - k),
                (["mov %r4, %r7", "add %r4, \(k)", "mov %r5, %r4", "mov %r4, %r5"], 255 + k),
                (["mov %r4, %r7", "and %r4, 15"], 15),
            ]
            for way in ways {
                // A bound on R4 itself bounds it to the limit (from below by 0, unsigned).
                let high = onR7 ? way.high : limit
                states.append(JoinState(lines: way.lines, safe: high + size <= 32))
            }
            tail = ["jgt \(onR7 ? "%r7" : "%r4"), \(limit), out"] + Self.stackIndex("%r4", size: size)
        case .scalarRange:
            let size = indexSize
            for mask in [0, 1, 3, 7, 8, 15, 16, 24, 31, 63] {
                states.append(JoinState(lines: ["mov %r4, %r7", "and %r4, \(mask)"], safe: mask + size <= 32))
            }
            for constant in [0, 4, 8, 16, 24, 28, 31, 32] {
                states.append(JoinState(lines: ["mov %r4, \(constant)"], safe: constant + size <= 32))
            }
            tail = Self.stackIndex("%r4", size: size)
        case .stackPointer:
            // The context pointer is spilled at fp-8; a byte written through fp-32 + (R7 & mask)
            // may land in that slot (mask 24 or more), after which it holds unknown bytes.
            beforeCall = ["stxdw [%r10-8], %r6"]
            let multiplies = random.chance(50)
            for mask in [0, 3, 7, 15, 23, 24, 31] {
                let clobbers = mask >= 24
                states.append(
                    JoinState(
                        lines: ["mov %r1, %r10", "add %r1, -32", "mov %r3, %r7", "and %r3, \(mask)", "add %r1, %r3"],
                        safe: multiplies == clobbers))
            }
            tail = ["mov %r2, 0", "stxb [%r1+0], %r2"]
            tail += multiplies ? ["ldxdw %r0, [%r10-8]", "mul %r0, 3"] : ["ldxdw %r2, [%r10-8]", "ldxw %r0, [%r2+0]"]
        case .spilledScalar:
            // A scalar spilled to fp-16 (8 or 4 bytes), filled back (8 or 4 bytes) and used as
            // an index: safe when the fill gives the spilled bounds back and they leave room.
            let size = indexSize
            let fill = random.pick([8, 4])
            for width in [8, 4] {
                for mask in [3, 7, 15, 31, 255] {
                    states.append(
                        JoinState(
                            lines: [
                                "mov %r3, %r7", "and %r3, \(mask)", "stx\(Self.sizeSuffix(width)) [%r10-16], %r3",
                            ],
                            safe: width == fill && mask + size <= 32))
                }
                states.append(
                    JoinState(
                        lines: [
                            "mov %r3, \(random.pick([0, 8, 24, 40]))", "stx\(Self.sizeSuffix(width)) [%r10-16], %r3",
                        ],
                        safe: false))
            }
            // The constants' safety depends on their value: left to the mutations only.
            tail = ["ldx\(Self.sizeSuffix(fill)) %r4, [%r10-16]"] + Self.stackIndex("%r4", size: size)
        case .slotType:
            // What fp-16 holds, filled back whole and then used as an index, dereferenced or
            // multiplied.
            let use = random.below(3)
            let kinds: [(lines: [String], isScalar: Bool, small: Bool)] = [
                ([], true, true), // zero (the prologue's)
                (["mov %r3, %r7", "and %r3, 7", "stxdw [%r10-16], %r3"], true, true),
                (["stxdw [%r10-16], %r6"], false, false),
                (["stxb [%r10-13], %r7"], true, false),
                (["mov %r3, %r10", "add %r3, -32", "stxdw [%r10-16], %r3"], false, false),
            ]
            for (index, kind) in kinds.enumerated() {
                // A dereference is safe through either pointer, but one load instruction may not
                // go through the context on one path and the stack on another ("same insn cannot
                // be used with different pointers"): valid programs dereference the context only.
                let safe = use == 0 ? kind.small : use == 1 ? !kind.isScalar && index == 2 : kind.isScalar
                states.append(JoinState(lines: kind.lines.isEmpty ? ["mov %r3, 0"] : kind.lines, safe: safe))
            }
            tail = ["ldxdw %r4, [%r10-16]"]
            switch use {
            case 0: tail += Self.stackIndex("%r4", size: 1)
            case 1: tail += ["ldxw %r0, [%r4+0]"]
            default: tail += ["mul %r4, 3", "mov %r0, %r4"]
            }
        case .packetRange:
            afterCall = ["ldxw %r2, [%r6+0]", "ldxw %r3, [%r6+4]"]
            let size = random.pick([1, 2, 4])
            let offset = random.below(42 - size + 1)
            for checked in [14, 20, 34, 42] {
                states.append(
                    JoinState(
                        lines: ["mov %r4, %r2", "add %r4, \(checked)", "jgt %r4, %r3, out"],
                        safe: offset + size <= checked))
            }
            tail = ["ldx\(Self.sizeSuffix(size)) %r0, [%r2+\(offset)]"]
        case .scalarUse:
            // Whether the stored state must compare R4 depends on whether an instruction after
            // the meeting point needs its value: the walk back through the copies and the spill
            // below must reach the meeting point.
            let chain = random.pick([
                [], ["mov %r3, %r4", "mov %r4, %r3"], ["stxdw [%r10-24], %r4", "ldxdw %r4, [%r10-24]"],
                ["mov %r3, %r4", "stxdw [%r10-24], %r3", "ldxdw %r4, [%r10-24]"],
            ])
            let use = random.below(4)
            var values: [(lines: [String], high: Int)] = []
            for mask in [3, 7, 15, 31, 63] { values.append((["mov %r4, %r7", "and %r4, \(mask)"], mask)) }
            for constant in [0, 8, 24, 40] { values.append((["mov %r4, \(constant)"], constant)) }
            for value in values {
                let safe: Bool
                switch use {
                case 0: safe = value.high + 1 <= 32 // bpf_xdp_load_bytes of R4 + 1 bytes into 32
                case 1: safe = value.high + indexSize <= 32
                case 2: safe = value.high <= 40 // the branch to the bad read is never taken
                default: safe = true
                }
                states.append(JoinState(lines: value.lines, safe: safe))
            }
            tail = chain
            switch use {
            case 0:
                tail += [
                    "add %r4, 1", "mov %r1, %r6", "mov %r2, 0", "mov %r3, %r10", "add %r3, -32", "call 189",
                ]
            case 1:
                tail += Self.stackIndex("%r4", size: indexSize)
            case 2:
                // Reads above the frame (always refused) when R4 > 40.
                tail += ["jle %r4, 40, out", "ldxdw %r0, [%r10+8]"]
            default:
                tail += ["mov %r0, %r4"]
            }
        default: // .nullness
            // A map lookup before the paths meet; each path checks the result for NULL or not.
            let array = random.chance(30)
            maps = [
                MapAttributes(
                    name: "values", type: array ? .array : .hash, keySize: 4, valueSize: 16, maxEntries: 4)
            ]
            beforeCall = [
                "stw [%r10-40], 0", "ldmap %r1, 0", "mov %r2, %r10", "add %r2, -40", "call 1", "mov %r7, %r0",
            ]
            states = [
                JoinState(lines: ["jeq %r7, 0, out"], safe: true),
                JoinState(lines: ["mov %r4, %r7", "jeq %r4, 0, out"], safe: true),
                // An array lookup of the constant key 0 is never NULL.
                JoinState(lines: ["mov %r4, 0"], safe: array),
            ]
            tail = [random.chance(50) ? "ldxw %r0, [%r7+0]" : "stw [%r7+8], 1"]
        }
        let pool = mutation == .valid ? states.filter(\.safe) : states
        let first = random.pick(pool.isEmpty ? states : pool)
        let second = random.pick(pool.isEmpty ? states : pool)
        // Some programs also leave R5 different on the two paths and read it after the meeting
        // point: a live scalar that changes what the stored state covers but is always safe.
        let noise = random.chance(30)
        lines += [
            "mov %r6, %r1", "stdw [%r10-8], 0", "stdw [%r10-16], 0", "stdw [%r10-24], 0", "stdw [%r10-32], 0",
            "ldxw %r7, [%r6+16]", "and %r7, 255", "ldxw %r8, [%r6+12]", "and %r8, 255", "mov %r9, 0",
        ]
        lines += beforeCall + ["call 7"] + afterCall + ["jeq %r0, 0, second"]
        lines += first.lines
        if noise { lines.append("mov %r5, \(random.below(4))") }
        lines += ["jne %r9, 0, join"] + Array(repeating: "mov %r9, 0", count: 9) + ["ja join", "second:"]
        lines += second.lines
        if noise { lines += ["mov %r5, %r8", "and %r5, \(random.pick([1, 3, 255]))"] }
        // R5 is read where the paths meet, before a tail's helper call can clobber it.
        lines += ["join:"] + (noise && random.chance(50) ? ["mov %r0, %r5"] : []) + tail
        lines += ["out:", "mov %r0, 2", "exit"]
    }

    /// Reads `size` bytes at fp-32 + `index` (the zeroed 32 bytes): in bounds while the index's
    /// largest value plus `size` is at most 32.
    static func stackIndex(_ index: String, size: Int) -> [String] {
        ["mov %r1, %r10", "add %r1, -32", "add %r1, \(index)", "ldx\(sizeSuffix(size)) %r0, [%r1+0]"]
    }
}
