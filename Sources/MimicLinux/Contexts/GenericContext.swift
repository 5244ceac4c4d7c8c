import MimicCore
import MimicJSON
import MimicMemory

/// Any memory layout and register values, built from named memories (JSON type `generic`).
///
/// Memories:
/// - `block`: bytes, mapped as their own region.
/// - `ptr`: a pointer to `offset` bytes into another memory (a `block` or `struct`). As in the Go
///   mimic and the example files, `size` 32 makes a 4-byte pointer — its target is then placed in
///   the 32-bit window so the 32-bit value is a usable address (as `xdp_md.data` is); any other
///   `size` (64, or a pointee size as in `contexts.md`) makes an 8-byte pointer.
/// - `int`: an integer of 8, 16, 32 or 64 bits in native (little-endian) order.
/// - `struct`: named memories laid out one after another (a `block` or `struct` inside is copied
///   in), mapped as their own region.
///
/// Registers R1–R5 name memories: a `block` or `struct` gives its address, an `int` its value, a
/// `ptr` the pointer. `emulator` data is kept for emulators; Mimic reads the `TaskEnvironment`
/// keys from it (`pid`, `comm`, `ktime_ns`, ...).
///
/// Mimic's memory is little-endian, like the kernel on x86: a block's `byteorder` is validated and
/// kept (`byteOrder`) but does not change how the program's loads decode the bytes.
public struct GenericContext: Context, Sendable {
    /// A block's declared byte order.
    public enum ByteOrder: String, Sendable, Equatable {
        case littleEndian = "little-endian"
        case bigEndian = "big-endian"
    }

    /// One named memory's contents.
    public enum Memory: Sendable, Equatable {
        case block([UInt8], byteOrder: ByteOrder? = nil)
        /// A pointer to `offset` bytes into memory `target`; `bits` 32 or 64 is its width.
        case pointer(target: String, offset: Int, bits: Int)
        /// An integer of `bits` (8, 16, 32, 64) bits; only the low `bits` of `value` are stored.
        case integer(UInt64, bits: Int)
        /// Fields `(name, memory)` laid out in order.
        case structure([(name: String, memory: String)])

        public static func == (a: Memory, b: Memory) -> Bool {
            switch (a, b) {
            case let (.block(x, o1), .block(y, o2)): x == y && o1 == o2
            case let (.pointer(t1, f1, b1), .pointer(t2, f2, b2)): t1 == t2 && f1 == f2 && b1 == b2
            case let (.integer(x, b1), .integer(y, b2)): x == y && b1 == b2
            case let (.structure(x), .structure(y)): x.count == y.count && zip(x, y).allSatisfy { $0 == $1 }
            default: false
            }
        }
    }

    public var name: String
    /// The memories, in order; names are unique.
    public var memories: [(name: String, memory: Memory)]
    /// Register number (1...5) → memory name.
    public var registers: [Int: String]
    /// The `emulator` object of the context file, for emulators that want it.
    public var emulatorData: JSONValue?
    /// Task, clock and random settings for helpers; nil keeps the process's defaults.
    public var environment: TaskEnvironment?

    public init(
        name: String = "generic", memories: [(name: String, memory: Memory)] = [], registers: [Int: String] = [:],
        emulatorData: JSONValue? = nil, environment: TaskEnvironment? = nil
    ) {
        self.name = name
        self.memories = memories
        self.registers = registers
        self.emulatorData = emulatorData
        self.environment = environment
    }

    /// Reads the `ctx` object of a `generic` context file (`registers`, `memory`, `emulator`) and
    /// checks it: unknown memory types, sizes, references to missing memories, pointers to
    /// integers, structs that contain themselves.
    public init(json ctx: JSONField, name: String) throws(ContextError) {
        try ctx.object(knownMembers: ["registers", "memory", "emulator"])
        var memories: [(name: String, memory: Memory)] = []
        var seen: [String: String] = [:] // name -> path
        for entry in try ctx["memory"].optionalElements() {
            try entry.object(knownMembers: ["name", "type", "value"])
            let memoryName = try entry["name"].string()
            guard !memoryName.isEmpty else { throw entry["name"].error("must not be empty") }
            if let first = seen[memoryName] {
                throw entry["name"].error("memory \"\(memoryName)\" is already defined at \(first)")
            }
            seen[memoryName] = entry.path
            let type = try entry["type"].string()
            let value = entry["value"]
            let memory: Memory
            switch type {
            case "block":
                try value.object(knownMembers: ["value", "byteorder"])
                let bytes = try value["value"].optionalBase64()
                var order: ByteOrder?
                if let text = try value["byteorder"].optionalString(), !text.isEmpty {
                    switch text.lowercased() {
                    case "le", "littleendian", "little-endian": order = .littleEndian
                    case "be", "bigendian", "big-endian": order = .bigEndian
                    default:
                        throw value["byteorder"].error("expected big-endian, be, little-endian or le, got \"\(text)\"")
                    }
                }
                memory = .block(bytes, byteOrder: order)
            case "ptr":
                try value.object(knownMembers: ["memory", "offset", "size"])
                let target = try value["memory"].string()
                let offset = try value["offset"].optionalInteger(Int.self) ?? 0
                guard offset >= 0, offset <= AddressSpace.lowWindowLimit else {
                    throw value["offset"].error("expected 0...\(AddressSpace.lowWindowLimit), got \(offset)")
                }
                let size = try value["size"].optionalInteger(Int.self) ?? 64
                memory = .pointer(target: target, offset: offset, bits: size == 32 ? 32 : 64)
            case "int":
                try value.object(knownMembers: ["size", "value"])
                let size = try value["size"].integer(Int.self)
                guard [8, 16, 32, 64].contains(size) else {
                    throw value["size"].error("expected 8, 16, 32 or 64, got \(size)")
                }
                memory = .integer(try value["value"].bits64(), bits: size)
            case "struct":
                var fields: [(name: String, memory: String)] = []
                for field in try value.optionalElements() {
                    try field.object(knownMembers: ["name", "memory"])
                    fields.append((try field["name"].optionalString() ?? "", try field["memory"].string()))
                }
                memory = .structure(fields)
            default:
                throw entry["type"].error("expected block, ptr, int or struct, got \"\(type)\"")
            }
            memories.append((memoryName, memory))
        }
        var registers: [Int: String] = [:]
        let registerField = ctx["registers"]
        if !registerField.isMissing {
            for (key, field) in try registerField.members() {
                guard key.count == 2, key.first == "r", let number = Int(key.dropFirst()), (1...5).contains(number)
                else {
                    throw field.error("only r1 ... r5 can be set")
                }
                guard let memory = try field.optionalString(), !memory.isEmpty else { continue }
                registers[number] = memory
            }
        }
        self.init(
            name: name, memories: memories, registers: registers, emulatorData: ctx["emulator"].value,
            environment: ctx["emulator"].isMissing ? nil : try TaskEnvironment(emulatorData: ctx["emulator"]))
        if let problem = validate() {
            // Name the JSON field the problem is in.
            let path: String
            switch problem.location {
            case .memory(let index, let detail): path = "\(ctx.path).memory[\(index)].\(detail)"
            case .register(let number): path = "\(ctx.path).registers.r\(number)"
            }
            throw ContextError(path: path, problem.message)
        }
    }

    struct Problem: Error {
        enum Location { case memory(Int, String), register(Int) }
        var location: Location
        var message: String
    }

    /// The first thing that keeps the layout from being built, if any.
    func validate() -> Problem? {
        var index: [String: Int] = [:]
        for (i, entry) in memories.enumerated() where index[entry.name] == nil { index[entry.name] = i }
        for (i, entry) in memories.enumerated() {
            switch entry.memory {
            case .pointer(let target, let offset, _):
                guard let t = index[target] else {
                    return Problem(location: .memory(i, "value.memory"), message: "no memory named \"\(target)\"")
                }
                switch memories[t].memory {
                case .block(let bytes, _) where offset > bytes.count:
                    return Problem(
                        location: .memory(i, "value.offset"),
                        message: "\(offset) is past the end of \"\(target)\" (\(bytes.count) bytes)")
                case .block, .structure: break
                default:
                    return Problem(
                        location: .memory(i, "value.memory"),
                        message: "a pointer must point to a block or struct, \"\(target)\" is not")
                }
            case .integer(_, let bits) where ![8, 16, 32, 64].contains(bits):
                return Problem(location: .memory(i, "value.size"), message: "expected 8, 16, 32 or 64, got \(bits)")
            case .structure(let fields):
                for (f, field) in fields.enumerated() where index[field.memory] == nil {
                    return Problem(
                        location: .memory(i, "value[\(f)].memory"), message: "no memory named \"\(field.memory)\"")
                }
            default: break
            }
        }
        if case .failure(let problem) = layout() { return problem }
        for (number, memory) in registers.sorted(by: { $0.key < $1.key }) where index[memory] == nil {
            return Problem(location: .register(number), message: "no memory named \"\(memory)\"")
        }
        for number in registers.keys where !(1...5).contains(number) {
            return Problem(location: .register(number), message: "only r1 ... r5 can be set")
        }
        return nil
    }

    // MARK: Layout

    /// The deepest nesting of structs in structs (a struct of blocks is level 1).
    public static let maxNesting = 64

    /// The size in bytes of every memory, each worked out once (structs sharing members cost no
    /// more than their definitions), or the problem with the layout: a struct that contains
    /// itself, nests deeper than `maxNesting`, or is larger than a region can be.
    func layout() -> Result<[String: Int], Problem> {
        var index: [String: Int] = [:]
        for (i, entry) in memories.enumerated() where index[entry.name] == nil { index[entry.name] = i }
        var sizes: [String: Int] = [:]
        var nesting: [String: Int] = [:]
        var inProgress: Set<String> = []

        func measure(_ name: String, depth: Int) -> Problem? {
            if sizes[name] != nil { return nil }
            guard let i = index[name] else { return nil } // reported by `validate`
            guard case .structure(let fields) = memories[i].memory else {
                switch memories[i].memory {
                case .block(let bytes, _): sizes[name] = bytes.count
                case .pointer(_, _, let bits), .integer(_, let bits): sizes[name] = bits / 8
                case .structure: break
                }
                nesting[name] = 0
                return nil
            }
            guard !inProgress.contains(name) else {
                return Problem(location: .memory(i, "value"), message: "struct \"\(name)\" contains itself")
            }
            guard depth < Self.maxNesting else {
                return Problem(
                    location: .memory(i, "value"),
                    message: "structs are nested deeper than \(Self.maxNesting) levels at \"\(name)\"")
            }
            inProgress.insert(name)
            var total = 0
            var deepest = 0
            for field in fields {
                if let problem = measure(field.memory, depth: depth + 1) { return problem }
                total += sizes[field.memory] ?? 0
                deepest = max(deepest, nesting[field.memory] ?? 0)
                guard total <= AddressSpace.regionLimit else {
                    return Problem(
                        location: .memory(i, "value"),
                        message: "struct \"\(name)\" is larger than the \(AddressSpace.regionLimit)-byte region limit")
                }
            }
            guard deepest + 1 <= Self.maxNesting else {
                return Problem(
                    location: .memory(i, "value"),
                    message: "structs are nested deeper than \(Self.maxNesting) levels at \"\(name)\"")
            }
            inProgress.remove(name)
            sizes[name] = total
            nesting[name] = deepest + 1
            return nil
        }

        for entry in memories {
            if let problem = measure(entry.name, depth: 0) { return .failure(problem) }
        }
        return .success(sizes)
    }

    /// Writes the bytes of memory `name` at `offset` of `storage`: a struct's fields one after
    /// another (`layout` bounds the nesting and the sizes). A memory's bytes do not depend on
    /// where they go, so each memory is built once and copied where it appears again
    /// (`written` remembers where), which keeps structs that share members linear.
    private func write(
        _ name: String, into storage: RegionStorage, at offset: Int, index: [String: Int],
        sizes: [String: Int], addresses: [String: UInt64],
        written: inout [String: (storage: RegionStorage, offset: Int)]
    ) {
        guard let i = index[name] else { return }
        if let first = written[name] {
            (storage.pointer + offset).copyMemory(
                from: first.storage.pointer + first.offset, byteCount: sizes[name] ?? 0)
            return
        }
        defer { written[name] = (storage, offset) }
        func littleEndian(_ value: UInt64, bits: Int) -> [UInt8] {
            (0..<bits / 8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
        }
        switch memories[i].memory {
        case .block(let bytes, _): storage.write(bytes, at: offset)
        case .pointer(let target, let pointerOffset, let bits):
            storage.write(littleEndian((addresses[target] ?? 0) &+ UInt64(pointerOffset), bits: bits), at: offset)
        case .integer(let value, let bits): storage.write(littleEndian(value, bits: bits), at: offset)
        case .structure(let fields):
            var cursor = offset
            for field in fields {
                write(
                    field.memory, into: storage, at: cursor, index: index, sizes: sizes, addresses: addresses,
                    written: &written)
                cursor += sizes[field.memory] ?? 0
            }
        }
    }

    public func attach(to process: MimicCore.Process) throws(SetupError) {
        if let problem = validate() { throw .message("generic context \(name): \(problem.message)") }
        let sizes: [String: Int]
        switch layout() {
        case .success(let measured): sizes = measured
        case .failure(let problem): throw .message("generic context \(name): \(problem.message)")
        }
        var index: [String: Int] = [:]
        for (i, entry) in memories.enumerated() where index[entry.name] == nil { index[entry.name] = i }
        func size(of name: String) -> Int { sizes[name] ?? 0 }
        func allocate(_ count: Int, _ what: String) throws(SetupError) -> RegionStorage {
            do {
                return try RegionStorage(
                    count: count, charging: process.vm.memoryBudget, for: "generic context \(name): \(what)")
            } catch {
                throw .message(error.description)
            }
        }
        // Blocks and structs get regions; targets of 32-bit pointers share the 32-bit window.
        var low: [String] = []
        var isLow: Set<String> = []
        for entry in memories {
            if case .pointer(let target, _, 32) = entry.memory, isLow.insert(target).inserted { low.append(target) }
        }
        var storages: [String: (RegionStorage, Int)] = [:]
        var addresses: [String: UInt64] = [:]
        do {
            if !low.isEmpty {
                var offsets: [Int] = []
                var total = 0
                for target in low {
                    offsets.append(total)
                    total += (size(of: target) + 7) & ~7
                }
                guard total <= AddressSpace.lowWindowLimit else {
                    throw HelperFailure.message(
                        "generic context \(name): the targets of 32-bit pointers take \(total) bytes, "
                            + "more than the 32-bit window's \(AddressSpace.lowWindowLimit)")
                }
                let arena = try allocate(low.count == 1 ? size(of: low[0]) : total, "32-bit memories")
                let base = try process.memory.map(
                    arena, name: low.count == 1 ? low[0] : "\(name) 32-bit memories",
                    placement: .low32)
                for (target, offset) in zip(low, offsets) {
                    storages[target] = (arena, offset)
                    addresses[target] = base + UInt64(offset)
                }
            }
            for entry in memories where storages[entry.name] == nil {
                switch entry.memory {
                case .block, .structure:
                    let storage = try allocate(size(of: entry.name), "memory \"\(entry.name)\"")
                    addresses[entry.name] = try process.memory.map(storage, name: entry.name)
                    storages[entry.name] = (storage, 0)
                default: break
                }
            }
        } catch let failure as SetupError {
            throw failure
        } catch {
            throw .message("generic context \(name): cannot map its memory: \(error)")
        }
        var written: [String: (storage: RegionStorage, offset: Int)] = [:]
        for (memoryName, (storage, offset)) in storages {
            write(
                memoryName, into: storage, at: offset, index: index, sizes: sizes, addresses: addresses,
                written: &written)
        }
        for (number, memoryName) in registers {
            switch index[memoryName].map({ memories[$0].memory }) {
            case .block, .structure: process.registers[number] = addresses[memoryName] ?? 0
            case .integer(let value, let bits):
                process.registers[number] = bits == 64 ? value : value & ((1 << UInt64(bits)) - 1)
            case .pointer(let target, let offset, let bits):
                let value = (addresses[target] ?? 0) &+ UInt64(offset)
                process.registers[number] = bits == 32 ? value & 0xFFFF_FFFF : value
            case nil: break
            }
        }
        if let environment {
            LinuxProcessState.forContext(process).environment = environment.inSystem(of: process)
        }
    }
}
