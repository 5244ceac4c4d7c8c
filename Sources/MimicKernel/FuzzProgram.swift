import MimicCore
import MimicLinux

/// A small deterministic random generator (SplitMix64): the same seed gives the same programs
/// on every machine and Swift version.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in `0..<bound` (bound > 0).
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(max(1, bound))) }

    /// True with probability `percent`/100.
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }

    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
}

/// One piece of a generated program. Jumps are structured (a conditional skip, an if/else, a
/// counted loop, a call), so items can be removed while minimizing and the jump offsets
/// recomputed when the program is laid out.
public indirect enum FuzzItem: Sendable, Equatable {
    /// One instruction slot (never a jump).
    case instruction(RawInstruction)
    /// A two-slot `lddw`.
    case wide(RawInstruction, RawInstruction)
    /// `if (condition) skip body`: the condition's offset is set to the body's length.
    case skip(condition: RawInstruction, body: [FuzzItem])
    /// `if (condition) goto then; else-body; goto end; then: then-body; end:` — the `goto` is
    /// `ja` or, with `longJump`, the v4 `gotol` (JMP32 `ja` with the offset in `imm`).
    case ifElse(condition: RawInstruction, elseBody: [FuzzItem], thenBody: [FuzzItem], longJump: Bool)
    /// `counter = times; loop: body; counter -= 1; if counter != 0 goto loop` (JMP or JMP32).
    case loop(counter: UInt8, times: Int32, body: [FuzzItem], jump32: Bool)
    /// A BPF-to-BPF call of `functions[function]`.
    case call(function: Int)
    /// Items the minimizer keeps whole: the stack initialization (the kernel lets privileged
    /// programs read uninitialized stack, whose bytes differ from Mimic's zeros).
    case fixed([FuzzItem])

    /// The number of slots the item takes.
    var slotCount: Int {
        switch self {
        case .instruction: 1
        case .wide: 2
        case .skip(_, let body): 1 + body.slotCount
        case .ifElse(_, let elseBody, let thenBody, _): 2 + elseBody.slotCount + thenBody.slotCount
        case .loop(_, _, let body, _): 3 + body.slotCount
        case .call: 1
        case .fixed(let items): items.slotCount
        }
    }
}

extension [FuzzItem] {
    var slotCount: Int { reduce(0) { $0 + $1.slotCount } }
}

/// A generated program: a main function and BPF-to-BPF callees, plus the packets to run it on.
public struct FuzzProgram: Sendable, Equatable {
    /// `functions[0]` is the entry; the others are called with `.call(function:)`.
    public var functions: [[FuzzItem]]
    /// The packets the program runs on (as an XDP program), each `FuzzGenerator.packetSize` bytes.
    public var packets: [[UInt8]]

    /// The bytecode: the functions one after another, jumps and calls resolved.
    public var instructions: [RawInstruction] {
        var entries: [Int] = []
        var slot = 0
        for function in functions {
            entries.append(slot)
            slot += function.slotCount
        }
        var code: [RawInstruction] = []
        code.reserveCapacity(slot)
        for function in functions { Self.emit(function, entries: entries, into: &code) }
        return code
    }

    /// The program without `functions[function]` and its calls; later functions move down one.
    public func removingFunction(_ function: Int) -> FuzzProgram {
        guard function > 0, function < functions.count else { return self }
        var copy = self
        copy.functions.remove(at: function)
        copy.functions = copy.functions.map { Self.removeCalls(to: function, in: $0) }
        return copy
    }

    /// The program without the callees no reachable function calls (the verifier refuses
    /// unreachable code).
    func pruned() -> FuzzProgram {
        var program = self
        while true {
            var reachable: Set<Int> = [0]
            var work = [0]
            while let function = work.popLast() {
                for target in Self.calls(in: program.functions[function]) where target < program.functions.count {
                    if reachable.insert(target).inserted { work.append(target) }
                }
            }
            guard let unused = program.functions.indices.last(where: { !reachable.contains($0) }) else {
                return program
            }
            program = program.removingFunction(unused)
        }
    }

    static func calls(in items: [FuzzItem]) -> [Int] {
        items.flatMap { item -> [Int] in
            switch item {
            case .call(let target): [target]
            case .skip(_, let body): calls(in: body)
            case .ifElse(_, let elseBody, let thenBody, _): calls(in: elseBody) + calls(in: thenBody)
            case .loop(_, _, let body, _): calls(in: body)
            default: []
            }
        }
    }

    /// `items` without calls of `function`; calls of later functions are renumbered.
    static func removeCalls(to function: Int, in items: [FuzzItem]) -> [FuzzItem] {
        items.compactMap { item -> FuzzItem? in
            switch item {
            case .call(let target):
                if target == function { return nil }
                return .call(function: target > function ? target - 1 : target)
            case .skip(let condition, let body):
                return .skip(condition: condition, body: removeCalls(to: function, in: body))
            case .ifElse(let condition, let elseBody, let thenBody, let long):
                return .ifElse(
                    condition: condition, elseBody: removeCalls(to: function, in: elseBody),
                    thenBody: removeCalls(to: function, in: thenBody), longJump: long)
            case .loop(let counter, let times, let body, let jump32):
                return .loop(counter: counter, times: times, body: removeCalls(to: function, in: body), jump32: jump32)
            default:
                return item
            }
        }
    }

    static func emit(_ items: [FuzzItem], entries: [Int], into code: inout [RawInstruction]) {
        for item in items {
            switch item {
            case .instruction(let instruction):
                code.append(instruction)
            case .wide(let first, let second):
                code.append(first)
                code.append(second)
            case .skip(var condition, let body):
                condition.offset = Int16(clamping: body.slotCount)
                code.append(condition)
                emit(body, entries: entries, into: &code)
            case .ifElse(var condition, let elseBody, let thenBody, let longJump):
                condition.offset = Int16(clamping: elseBody.slotCount + 1)
                code.append(condition)
                emit(elseBody, entries: entries, into: &code)
                if longJump {
                    code.append(RawInstruction(opcode: 0x06, imm: Int32(thenBody.slotCount)))
                } else {
                    code.append(RawInstruction(opcode: 0x05, offset: Int16(clamping: thenBody.slotCount)))
                }
                emit(thenBody, entries: entries, into: &code)
            case .loop(let counter, let times, let body, let jump32):
                code.append(RawInstruction(opcode: 0xb4, destination: counter, imm: times)) // w_counter = times
                emit(body, entries: entries, into: &code)
                code.append(RawInstruction(opcode: 0x07, destination: counter, imm: -1)) // counter += -1
                // if counter != 0 goto loop
                code.append(
                    RawInstruction(
                        opcode: jump32 ? 0x56 : 0x55, destination: counter,
                        offset: Int16(clamping: -(body.slotCount + 2))))
            case .fixed(let items):
                emit(items, entries: entries, into: &code)
            case .call(let function):
                let pc = code.count
                let entry = function < entries.count ? entries[function] : pc + 1
                code.append(RawInstruction(opcode: 0x85, source: 1, imm: Int32(entry - (pc + 1))))
            }
        }
    }
}

/// Generates random programs the kernel's verifier accepts, for differential testing.
///
/// Every program is an XDP program that reads eight 64-bit words of its packet (after the bounds
/// check the verifier demands) into registers, so values are unknown to the verifier and both
/// sides of each branch are checked; then random code: ALU32/ALU64 with every operator
/// (division and modulo by registers that may be zero, signed `sdiv`/`smod`, shifts by in-range
/// immediates and by masked or unmasked registers), byte swaps (`le`, `be`, `bswap`), sign
/// extension (`movsx`), 64-bit constants, conditional jumps of both widths, `ja` and `gotol`,
/// aligned stack stores and loads (also sign-extending `ldsx`), atomics on the stack, counted
/// loops and BPF-to-BPF calls. Every register is written before it is read (the generator
/// tracks which are); every stack byte is stored before it is loaded. At the end, registers and
/// stack are folded into R0 and its upper half into the lower, so the 32-bit return value the
/// kernel reports depends on all of it.
public struct FuzzGenerator: Sendable {
    /// Which instruction groups to generate (all by default).
    public struct Features: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let alu = Features(rawValue: 1 << 0)
        public static let division = Features(rawValue: 1 << 1)
        public static let shifts = Features(rawValue: 1 << 2)
        public static let byteSwaps = Features(rawValue: 1 << 3)
        public static let signExtension = Features(rawValue: 1 << 4)
        public static let jumps = Features(rawValue: 1 << 5)
        public static let stack = Features(rawValue: 1 << 6)
        public static let atomics = Features(rawValue: 1 << 7)
        public static let loops = Features(rawValue: 1 << 8)
        public static let calls = Features(rawValue: 1 << 9)
        public static let all = Features(rawValue: 0x3FF)
    }

    /// Bytes per packet (eight 64-bit words are read from it).
    public static let packetSize = 64
    /// Stack bytes each function initializes and uses (`r10 - stackSize ..< r10`).
    static let stackSize = 64

    public var features: Features
    /// Items per function body (before nesting), at most.
    public var maxItems: Int
    /// Packets per program.
    public var packetsPerProgram: Int

    public init(features: Features = .all, maxItems: Int = 24, packetsPerProgram: Int = 2) {
        self.features = features
        self.maxItems = max(1, maxItems)
        self.packetsPerProgram = max(1, packetsPerProgram)
    }

    /// The program for `seed`.
    public func program(seed: UInt64) -> FuzzProgram {
        var random = SeededRandom(seed: seed)
        var builder = Builder(features: features, random: random, maxItems: maxItems)
        let calleeCount = features.contains(.calls) ? builder.random.below(3) : 0
        builder.calleeCount = calleeCount
        var functions = [builder.mainFunction()]
        for index in 0..<calleeCount {
            builder.currentFunction = index + 1
            functions.append(builder.callee())
        }
        random = builder.random
        var packets: [[UInt8]] = []
        for _ in 0..<packetsPerProgram { packets.append(Self.packet(&random)) }
        return FuzzProgram(functions: functions, packets: packets).pruned()
    }

    /// Values that trip edge cases: 0, ±1, the extremes of each width, sign bits.
    static let interesting: [UInt64] = [
        0, 1, 2, 0xFFFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x0000_0000_8000_0000,
        0x0000_0000_FFFF_FFFF, 0xFFFF_FFFF_8000_0000, 0x0000_0000_7FFF_FFFF, 0x80, 0xFF, 0x8000, 0xFFFF, 63, 64, 31, 32,
        0xFFFF_FFFF_0000_0000, 0x1_0000_0000, 0xFFFF_FFFF_FFFF_FF80,
    ]

    static func value(_ random: inout SeededRandom) -> UInt64 {
        switch random.below(4) {
        case 0: return interesting[random.below(interesting.count)]
        case 1: return UInt64(random.below(17))
        case 2: return UInt64(bitPattern: Int64(random.below(33)) - 16)
        default: return random.next()
        }
    }

    static func packet(_ random: inout SeededRandom) -> [UInt8] {
        var bytes: [UInt8] = []
        for _ in 0..<(packetSize / 8) {
            let word = value(&random)
            for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: word >> (8 * i))) }
        }
        return bytes
    }

    /// Builds one function at a time, tracking which registers hold values.
    struct Builder {
        let features: Features
        var random: SeededRandom
        let maxItems: Int
        var calleeCount = 0
        var currentFunction = 0
        /// Registers r0–r9 that hold a value on every path reaching the current point.
        var initialized: Set<UInt8> = []
        /// Registers the enclosing loops count with; never written in their bodies.
        var protected: Set<UInt8> = []
        var depth = 0

        init(features: Features, random: SeededRandom, maxItems: Int) {
            self.features = features
            self.random = random
            self.maxItems = maxItems
        }

        // MARK: Functions

        mutating func mainFunction() -> [FuzzItem] {
            var items: [FuzzItem] = []
            // r2 = data, r3 = data_end; if r2 + 64 > r3 return 0.
            items.append(.instruction(RawInstruction(opcode: 0x61, destination: 2, source: 1, offset: 0)))
            items.append(.instruction(RawInstruction(opcode: 0x61, destination: 3, source: 1, offset: 4)))
            items.append(.instruction(RawInstruction(opcode: 0xbf, destination: 4, source: 2)))
            items.append(
                .instruction(RawInstruction(opcode: 0x07, destination: 4, imm: Int32(FuzzGenerator.packetSize))))
            items.append(
                .skip(
                    condition: RawInstruction(opcode: 0xbd, destination: 4, source: 3), // if r4 <= r3 skip
                    body: [
                        .instruction(RawInstruction(opcode: 0xb7, destination: 0, imm: 0)),
                        .instruction(RawInstruction(opcode: 0x95)),
                    ]))
            // Eight packet words into registers (r2 last, it is the base).
            // Kept whole by the minimizer (`.fixed`): without them a register would still hold
            // a pointer (ctx, data, data_end), whose value differs between kernel and Mimic.
            var setup: [FuzzItem] = []
            let order: [UInt8] = [0, 1, 3, 4, 5, 6, 7, 8, 9].shuffledPrefix(7, &random) + [2]
            for (i, register) in order.enumerated() {
                let signed = features.contains(.signExtension) && random.chance(15)
                let sizes: [(UInt8, UInt8)] =
                    signed
                    ? [(0x81, 4), (0x89, 2), (0x91, 1)] : [(0x79, 8), (0x79, 8), (0x61, 4), (0x69, 2), (0x71, 1)]
                let (opcode, _) = random.pick(sizes)
                setup.append(
                    .instruction(RawInstruction(opcode: opcode, destination: register, source: 2, offset: Int16(i * 8)))
                )
            }
            initialized = Set(order)
            for register in UInt8(0)...9 where !initialized.contains(register) { setup.append(constant(register)) }
            items.append(.fixed(setup))
            initialized = Set(0...9)
            items += stackPrologue()
            items += body(count: 1 + random.below(maxItems))
            items += fold(returnsFolded32: true)
            return items
        }

        mutating func callee() -> [FuzzItem] {
            // Arguments r1–r5 hold values (callers set them); r0 and r6–r9 start empty.
            initialized = Set(1...5)
            protected = []
            var items: [FuzzItem] = []
            for register: UInt8 in [0, 6, 7, 8, 9] {
                if random.chance(50) {
                    items.append(
                        .instruction(
                            RawInstruction(opcode: 0xbf, destination: register, source: UInt8(1 + random.below(5)))))
                } else {
                    items.append(constant(register))
                }
            }
            initialized = Set(0...9)
            items += stackPrologue()
            items += body(count: 1 + random.below(max(1, maxItems / 2)))
            items += fold(returnsFolded32: false)
            return items
        }

        /// Stores to every stack word the function uses.
        mutating func stackPrologue() -> [FuzzItem] { [.fixed(stackStores())] }

        mutating func stackStores() -> [FuzzItem] {
            var items: [FuzzItem] = []
            for word in 1...(FuzzGenerator.stackSize / 8) {
                let offset = Int16(-8 * word)
                if random.chance(60) {
                    items.append(
                        .instruction(
                            RawInstruction(opcode: 0x7b, destination: 10, source: anyRegister(), offset: offset)))
                } else {
                    items.append(
                        .instruction(RawInstruction(opcode: 0x7a, destination: 10, offset: offset, imm: immediate())))
                }
            }
            return items
        }

        /// Mixes every register and stack word into R0; for main, folds R0's upper half in too.
        mutating func fold(returnsFolded32: Bool) -> [FuzzItem] {
            var items: [FuzzItem] = []
            for register in UInt8(1)...9 {
                items.append(.instruction(RawInstruction(opcode: 0x27, destination: 0, imm: 0x0100_0193))) // r0 *= FNV prime
                items.append(.instruction(RawInstruction(opcode: 0xaf, destination: 0, source: register))) // r0 ^= rN
            }
            for word in 1...(FuzzGenerator.stackSize / 8) {
                items.append(
                    .instruction(RawInstruction(opcode: 0x79, destination: 1, source: 10, offset: Int16(-8 * word))))
                items.append(.instruction(RawInstruction(opcode: 0x27, destination: 0, imm: 0x0100_0193)))
                items.append(.instruction(RawInstruction(opcode: 0xaf, destination: 0, source: 1)))
            }
            if returnsFolded32 {
                items.append(.instruction(RawInstruction(opcode: 0xbf, destination: 1, source: 0)))
                items.append(.instruction(RawInstruction(opcode: 0x77, destination: 1, imm: 32)))
                items.append(.instruction(RawInstruction(opcode: 0xaf, destination: 0, source: 1)))
            }
            items.append(.instruction(RawInstruction(opcode: 0x95)))
            return items
        }

        // MARK: Bodies

        mutating func body(count: Int) -> [FuzzItem] {
            var items: [FuzzItem] = []
            for _ in 0..<count { items += item() }
            return items
        }

        mutating func item() -> [FuzzItem] {
            var kinds: [Int] = []
            if features.contains(.alu) { kinds += [0, 0, 0, 0] }
            if features.contains(.division) { kinds += [1, 1] }
            if features.contains(.shifts) { kinds += [2, 2] }
            if features.contains(.byteSwaps) { kinds += [3] }
            if features.contains(.signExtension) { kinds += [4] }
            if features.contains(.stack) { kinds += [5, 5] }
            if features.contains(.atomics) { kinds += [6] }
            if depth < 2 {
                if features.contains(.jumps) { kinds += [7, 7, 8] }
                if features.contains(.loops) && depth == 0 { kinds += [9] }
            }
            if features.contains(.calls) && calleeCount > currentFunction { kinds += [10] }
            kinds += [11] // constants
            switch random.pick(kinds) {
            case 0: return [alu()]
            case 1: return [division()]
            case 2: return shift()
            case 3: return [byteSwap()]
            case 4: return [signExtension()]
            case 5: return [stackAccess()]
            case 6: return atomic()
            case 7: return [skip()]
            case 8: return [ifElse()]
            case 9: return loop()
            case 10: return call()
            default: return [constant(writable())]
            }
        }

        /// A register that holds a value (to read).
        mutating func anyRegister() -> UInt8 {
            let choices = initialized.sorted()
            return choices.isEmpty ? 0 : random.pick(choices)
        }

        /// A register that holds a value and may be written (read-modify-write destinations).
        mutating func writable() -> UInt8 {
            let choices = initialized.subtracting(protected).sorted()
            return choices.isEmpty ? 0 : random.pick(choices)
        }

        mutating func immediate() -> Int32 {
            Int32(truncatingIfNeeded: FuzzGenerator.value(&random))
        }

        mutating func constant(_ register: UInt8) -> FuzzItem {
            initialized.insert(register)
            if random.chance(30) {
                let value = FuzzGenerator.value(&random)
                return .wide(
                    RawInstruction(opcode: 0x18, destination: register, imm: Int32(truncatingIfNeeded: value)),
                    RawInstruction(opcode: 0, imm: Int32(truncatingIfNeeded: value >> 32)))
            }
            return .instruction(
                RawInstruction(opcode: random.chance(50) ? 0xb7 : 0xb4, destination: register, imm: immediate()))
        }

        mutating func alu() -> FuzzItem {
            // add sub mul or and xor mov neg
            let operation = random.pick([0x00, 0x10, 0x20, 0x40, 0x50, 0xa0, 0xb0, 0x80] as [UInt8])
            let wide = random.chance(50)
            let cls: UInt8 = wide ? 0x07 : 0x04
            let destination = writable()
            if operation == 0x80 { return .instruction(RawInstruction(opcode: cls | 0x80, destination: destination)) }
            if random.chance(50) {
                return .instruction(
                    RawInstruction(opcode: cls | operation | 0x08, destination: destination, source: anyRegister()))
            }
            return .instruction(RawInstruction(opcode: cls | operation, destination: destination, imm: immediate()))
        }

        mutating func division() -> FuzzItem {
            let operation: UInt8 = random.chance(50) ? 0x30 : 0x90 // div / mod
            let cls: UInt8 = random.chance(50) ? 0x07 : 0x04
            let signed: Int16 = random.chance(50) ? 1 : 0
            let destination = writable()
            if random.chance(60) {
                return .instruction(
                    RawInstruction(
                        opcode: cls | operation | 0x08, destination: destination, source: anyRegister(), offset: signed)
                )
            }
            var imm = immediate()
            if imm == 0 { imm = random.chance(50) ? -1 : 3 } // the verifier refuses a zero immediate divisor
            return .instruction(
                RawInstruction(opcode: cls | operation, destination: destination, offset: signed, imm: imm))
        }

        mutating func shift() -> [FuzzItem] {
            let operation = random.pick([0x60, 0x70, 0xc0] as [UInt8]) // lsh rsh arsh
            let wide = random.chance(50)
            let cls: UInt8 = wide ? 0x07 : 0x04
            let bits: Int32 = wide ? 64 : 32
            let destination = writable()
            if random.chance(50) {
                return [
                    .instruction(
                        RawInstruction(
                            opcode: cls | operation, destination: destination, imm: Int32(random.below(Int(bits)))))
                ]
            }
            let amount = anyRegister()
            if random.chance(25) || protected.contains(amount) || amount == destination {
                // By a register whatever its value: the ISA masks the amount (RFC 9669).
                return [
                    .instruction(
                        RawInstruction(opcode: cls | operation | 0x08, destination: destination, source: amount))
                ]
            }
            // Mask the amount into range first.
            let temporary = writable()
            guard temporary != destination else {
                return [
                    .instruction(
                        RawInstruction(
                            opcode: cls | operation, destination: destination, imm: Int32(random.below(Int(bits)))))
                ]
            }
            return [
                .instruction(RawInstruction(opcode: 0x57, destination: temporary, imm: bits - 1)),
                .instruction(
                    RawInstruction(opcode: cls | operation | 0x08, destination: destination, source: temporary)),
            ]
        }

        mutating func byteSwap() -> FuzzItem {
            let width = random.pick([16, 32, 64] as [Int32])
            let opcode = random.pick([0xd4, 0xdc, 0xd7] as [UInt8]) // le, be, bswap
            return .instruction(RawInstruction(opcode: opcode, destination: writable(), imm: width))
        }

        mutating func signExtension() -> FuzzItem {
            let destination = writable()
            let source = anyRegister()
            initialized.insert(destination)
            if random.chance(50) {
                return .instruction(
                    RawInstruction(
                        opcode: 0xbf, destination: destination, source: source, offset: random.pick([8, 16, 32])))
            }
            return .instruction(
                RawInstruction(opcode: 0xbc, destination: destination, source: source, offset: random.pick([8, 16])))
        }

        /// A random aligned stack offset for an access of `size` bytes.
        mutating func stackOffset(size: Int) -> Int16 {
            let slots = FuzzGenerator.stackSize / size
            return Int16(-size * (1 + random.below(slots)))
        }

        mutating func stackAccess() -> FuzzItem {
            let sizes: [(size: Int, bits: UInt8)] = [(1, 0x10), (2, 0x08), (4, 0x00), (8, 0x18)]
            let (size, bits) = random.pick(sizes)
            let offset = stackOffset(size: size)
            switch random.below(4) {
            case 0: // stx
                return .instruction(
                    RawInstruction(opcode: 0x63 | bits, destination: 10, source: anyRegister(), offset: offset))
            case 1: // st imm
                return .instruction(
                    RawInstruction(opcode: 0x62 | bits, destination: 10, offset: offset, imm: immediate()))
            default:
                let destination = writable()
                initialized.insert(destination)
                if features.contains(.signExtension), size < 8, random.chance(40) {
                    return .instruction(
                        RawInstruction(opcode: 0x81 | bits, destination: destination, source: 10, offset: offset))
                }
                return .instruction(
                    RawInstruction(opcode: 0x61 | bits, destination: destination, source: 10, offset: offset))
            }
        }

        mutating func atomic() -> [FuzzItem] {
            let wide = random.chance(50)
            let opcode: UInt8 = wide ? 0xdb : 0xc3
            let offset = stackOffset(size: wide ? 8 : 4)
            var operation = random.pick([0x00, 0x40, 0x50, 0xa0, 0xe1, 0xf1] as [Int32]) // add or and xor xchg cmpxchg
            if operation < 0xe0, random.chance(50) { operation |= 0x01 } // fetch
            let fetches = operation & 1 == 1
            if operation == 0xf1 {
                // cmpxchg compares with and writes r0.
                guard !protected.contains(0) else { return [] }
                let exchange = FuzzItem.instruction(
                    RawInstruction(
                        opcode: opcode, destination: 10, source: anyRegister(), offset: offset, imm: operation))
                guard !wide else { return [exchange] }
                // Kernel quirk (x86-64 JIT, 6.18): after a 32-bit cmpxchg that succeeds, R0's
                // upper half is sometimes left as it was instead of zero-extended as RFC 9669
                // says; Mimic follows the RFC. Zero-extend explicitly so the quirk does not
                // mask other differences (see Docs/Testing.md).
                return [.fixed([exchange, .instruction(RawInstruction(opcode: 0xbc, destination: 0, source: 0))])]
            }
            let source = fetches ? writable() : anyRegister()
            return [
                .instruction(
                    RawInstruction(opcode: opcode, destination: 10, source: source, offset: offset, imm: operation))
            ]
        }

        /// A conditional jump of either width comparing a register with a register or immediate.
        mutating func condition() -> RawInstruction {
            let operation = random.pick([0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0] as [UInt8])
            let cls: UInt8 = random.chance(50) ? 0x05 : 0x06
            if random.chance(50) {
                return RawInstruction(opcode: cls | operation | 0x08, destination: anyRegister(), source: anyRegister())
            }
            return RawInstruction(opcode: cls | operation, destination: anyRegister(), imm: immediate())
        }

        mutating func nested(count: Int) -> [FuzzItem] {
            let saved = initialized
            depth += 1
            let items = body(count: count)
            depth -= 1
            initialized = saved // only what held on every path counts after a branch
            return items
        }

        mutating func skip() -> FuzzItem {
            let condition = condition()
            return .skip(condition: condition, body: nested(count: 1 + random.below(4)))
        }

        mutating func ifElse() -> FuzzItem {
            let condition = condition()
            let elseBody = nested(count: 1 + random.below(3))
            let thenBody = nested(count: 1 + random.below(3))
            return .ifElse(condition: condition, elseBody: elseBody, thenBody: thenBody, longJump: random.chance(30))
        }

        mutating func loop() -> [FuzzItem] {
            // The counter lives in a callee-saved register, so calls in the body keep it.
            let candidates = ([6, 7, 8, 9] as [UInt8]).filter { !protected.contains($0) }
            guard !candidates.isEmpty else { return [] }
            let counter = random.pick(candidates)
            initialized.insert(counter)
            protected.insert(counter)
            let body = nested(count: 1 + random.below(4))
            protected.remove(counter)
            return [.loop(counter: counter, times: Int32(1 + random.below(6)), body: body, jump32: random.chance(50))]
        }

        mutating func call() -> [FuzzItem] {
            guard !protected.contains(0) else { return [] }
            let target = currentFunction + 1 + random.below(calleeCount - currentFunction)
            var items: [FuzzItem] = [.call(function: target)]
            // R0 holds the result; R1–R5 are clobbered: give them values again.
            initialized.subtract([1, 2, 3, 4, 5])
            initialized.insert(0)
            for register: UInt8 in 1...5 {
                if random.chance(50) {
                    let source = anyRegister()
                    items.append(
                        .instruction(
                            RawInstruction(
                                opcode: random.chance(50) ? 0xbf : 0xbc, destination: register, source: source)))
                    initialized.insert(register)
                } else {
                    items.append(constant(register))
                }
            }
            return items
        }
    }
}

extension Array {
    /// `count` elements in random order.
    fileprivate func shuffledPrefix(_ count: Int, _ random: inout SeededRandom) -> [Element] {
        var pool = self
        var result: [Element] = []
        while result.count < count, !pool.isEmpty { result.append(pool.remove(at: random.below(pool.count))) }
        return result
    }
}
