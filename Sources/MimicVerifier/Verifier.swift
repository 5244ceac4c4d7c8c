import MimicCore

/// A map as the verifier sees it: its shape, and for read-only data its bytes (constant strings).
public struct VerifierMap: Sendable, Equatable {
    public var name: String
    public var type: MapType
    public var keySize: Int
    public var valueSize: Int
    public var maxEntries: Int
    /// The program may not write the values (`BPF_F_RDONLY_PROG`: `.rodata`, `.kconfig`).
    public var isReadOnly: Bool
    /// Where the value's `struct bpf_spin_lock` is, if it has one.
    public var spinLockOffset: Int?
    /// The initial bytes of a single-value array (global data), for constant strings.
    public var contents: [UInt8]
    /// For maps of maps: the index of the inner map's template in the program's map list.
    public var innerMap: Int?

    public init(
        name: String, type: MapType, keySize: Int, valueSize: Int, maxEntries: Int, isReadOnly: Bool = false,
        spinLockOffset: Int? = nil, contents: [UInt8] = [], innerMap: Int? = nil
    ) {
        self.innerMap = innerMap
        self.name = name
        self.type = type
        self.keySize = keySize
        self.valueSize = valueSize
        self.maxEntries = maxEntries
        self.isReadOnly = isReadOnly
        self.spinLockOffset = spinLockOffset
        self.contents = contents
    }

    /// The map of an object's `MapSpec`.
    public init(_ spec: MapSpec) { self.init(spec.attributes) }

    /// The map `BPF_MAP_CREATE` makes of `a` (an inner-map template is not listed: see `innerMap`).
    public init(_ a: MapAttributes) {
        self.init(
            name: a.name, type: a.type, keySize: a.keySize, valueSize: a.valueSize, maxEntries: a.maxEntries,
            isReadOnly: a.flags & 0x80 != 0, spinLockOffset: a.spinLockOffset)
    }

    /// A global-data section as libbpf loads it: a one-element array.
    public init(_ global: GlobalDataSpec) {
        self.init(
            name: global.name, type: .array, keySize: 4, valueSize: max(global.size, 1), maxEntries: 1,
            isReadOnly: global.isReadOnly, contents: global.contents)
    }
}

/// One program to verify: bytecode with its maps, type and (optionally) source lines.
///
/// `lddw` map references use the kernel's pseudo forms with `imm` an index into `maps`:
/// `src = 1` or `5` for a map, `src = 2` or `6` for a map value (next `imm` the offset), which is
/// how `ObjectFile` rewrites an object's programs (`maps` then lists the object's maps followed by
/// its global-data sections).
public struct VerifierProgram: Sendable {
    public var name: String
    public var instructions: [RawInstruction]
    public var type: ProgramType
    public var attachType: AttachType?
    public var maps: [VerifierMap]
    /// Source lines by instruction (from `.BTF.ext`), for messages.
    public var lineInfo: [SourceLineInfo]
    /// The license; helpers marked GPL-only need a GPL-compatible one.
    public var license: String
    /// Names of external symbols by `lddw` slot (`__ksym`, `__kconfig`), for objects.
    public var externs: [Int: String]
    /// The BTF of the kernel the program is for (`/sys/kernel/btf/vmlinux`): it types the
    /// contexts of fentry, fexit, tp_btf, LSM and iterator programs and what reads through
    /// kernel pointers give. Without it those reads give numbers, which the kernel may not agree
    /// with (Docs/Verifier.md).
    public var kernelBTF: BTF?
    /// What a BTF-typed tracing or LSM program attaches to (`ObjectProgram.kernelAttachTarget`).
    public var attachTarget: KernelAttachTarget?
    /// A sleepable program (`fentry.s/`, `lsm.s/`...): outside `bpf_rcu_read_lock` it is not in an
    /// RCU read section, which decides whether walked kernel pointers are trusted.
    public var isSleepable: Bool

    public init(
        name: String = "", instructions: [RawInstruction], type: ProgramType, attachType: AttachType? = nil,
        maps: [VerifierMap] = [], lineInfo: [SourceLineInfo] = [], license: String = "GPL",
        externs: [Int: String] = [:],
        kernelBTF: BTF? = nil, attachTarget: KernelAttachTarget? = nil, isSleepable: Bool = false
    ) {
        self.kernelBTF = kernelBTF
        self.attachTarget = attachTarget
        self.isSleepable = isSleepable
        self.name = name
        self.instructions = instructions
        self.type = type
        self.attachType = attachType
        self.maps = maps
        self.lineInfo = lineInfo
        self.license = license
        self.externs = externs
    }

    /// A program of an object, with the object's maps and global data and its line info, as
    /// libbpf would load it: calls to external functions become kfunc calls (`src = 2`).
    /// `kernelBTF` is the BTF of the kernel it is for (see `kernelBTF`); `kconfig` the bytes of
    /// `.kconfig` as the loader resolves its `__kconfig` externs (`LINUX_KERNEL_VERSION`,
    /// `CONFIG_*`), which the verifier reads as constants (nil: zeros, as the section holds).
    public init(object: ObjectFile, program: ObjectProgram, kernelBTF: BTF? = nil, kconfig: [UInt8]? = nil) {
        var externs: [Int: String] = [:]
        var instructions = program.instructions
        for reference in program.references {
            guard case .external(let name) = reference.target else { continue }
            let slot = reference.instructionIndex
            externs[slot] = name
            if slot < instructions.count, instructions[slot].opcode == 0x85 {
                instructions[slot].source = 2
                instructions[slot].imm = 0
            }
        }
        var maps = object.maps.map(VerifierMap.init) + object.globals.map(VerifierMap.init)
        if let kconfig, let index = maps.firstIndex(where: { $0.name == ObjectExtern.kconfigSection }),
            kconfig.count == maps[index].contents.count
        {
            maps[index].contents = kconfig
        }
        // Inner-map templates follow, so a lookup in a map of maps can name its result.
        for (index, spec) in object.maps.enumerated() {
            guard let inner = spec.innerMap else { continue }
            maps[index].innerMap = maps.count
            maps.append(VerifierMap(inner))
        }
        self.init(
            name: program.name, instructions: instructions, type: program.type,
            attachType: program.attachType, maps: maps,
            lineInfo: program.lineInfo, license: object.license ?? "", externs: externs, kernelBTF: kernelBTF,
            attachTarget: program.kernelAttachTarget,
            isSleepable: SectionDefinition.find(program.sectionName)?.isSleepable ?? false)
    }
}

/// Settings of a verification.
public struct VerifierOptions: Sendable {
    /// Instructions processed before giving up, as the kernel does (`BPF_COMPLEXITY_LIMIT_INSNS`).
    public var complexityLimit = 1_000_000
    /// Write the kernel-style log (every instruction processed, states at branches).
    public var log = false
    /// Verify as a privileged loader (root: `CAP_BPF` + `CAP_PERFMON`), as `mimic compare` does:
    /// bounded loops allowed, uninitialised stack readable.
    public var privileged = true

    public init(complexityLimit: Int = 1_000_000, log: Bool = false, privileged: Bool = true) {
        self.complexityLimit = complexityLimit
        self.log = log
        self.privileged = privileged
    }
}

/// Why the verifier refuses a program, by the class of mistake.
public enum VerificationErrorKind: String, Sendable, CaseIterable {
    case invalidInstruction = "invalid-instruction"
    case controlFlow = "control-flow"
    case uninitializedRegister = "uninitialized-register"
    case packetBounds = "packet-bounds"
    case mapValueBounds = "map-value-bounds"
    case memoryBounds = "memory-bounds"
    case stackAccess = "stack-access"
    case contextAccess = "context-access"
    case nullPointer = "null-pointer"
    case invalidPointer = "invalid-pointer"
    case pointerArithmetic = "pointer-arithmetic"
    case helperArgument = "helper-argument"
    case unknownHelper = "unknown-helper"
    case unreleasedReference = "unreleased-reference"
    case invalidRelease = "invalid-release"
    case returnValue = "return-value"
    case loop = "loop"
    case complexity = "complexity"
    case stackDepth = "stack-depth"
    case lock = "lock"
    case readOnly = "read-only"
}

/// A register as shown in a message: its number and its abstract value in the kernel's notation.
public struct RegisterSnapshot: Sendable, Equatable {
    public var register: Int
    public var value: String
}

/// The first error on the first failing path.
public struct VerificationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var kind: VerificationErrorKind
    /// The instruction index (slot) the kernel reports.
    public var instructionIndex: Int
    /// The instruction in the kernel's notation (`r0 = *(u32 *)(r2 +12)`).
    public var instruction: String
    /// The kernel's message (the line the verifier log ends with).
    public var message: String
    /// The source line from BTF line info, when the object has it.
    public var sourceLine: SourceLineInfo?
    /// The registers the instruction uses, as they were.
    public var registers: [RegisterSnapshot]
    /// What to do about it, in plain words.
    public var advice: String

    public var description: String { explanation }

    /// Several lines: where, what the kernel says, the registers, and the advice.
    public var explanation: String {
        var text = ""
        if let line = sourceLine {
            text += "\(line.file):\(line.line): "
        }
        text += "instruction \(instructionIndex): \(instruction)\n"
        if let line = sourceLine, !line.sourceText.isEmpty {
            text += "    \(line.sourceText.drop { $0 == " " || $0 == "\t" })\n"
        }
        text += "error: \(message)\n"
        for r in registers { text += "    R\(r.register) = \(r.value)\n" }
        if !advice.isEmpty { text += "advice: \(advice)\n" }
        return text
    }
}

/// What the verifier decided, with figures.
public struct VerificationReport: Sendable {
    /// The kernel would load the program.
    public var accepted: Bool { error == nil }
    public var error: VerificationError?
    /// Instructions processed over all paths (the kernel's `processed N insns`).
    public var processedInstructions: Int
    /// States stored for pruning (`total_states`).
    public var storedStates: Int
    /// Stack bytes each function uses, the entry first.
    public var stackDepths: [Int]
    /// The kernel-style log, when `VerifierOptions.log` is set.
    public var log: String?
}

/// Predicts whether the Linux kernel's verifier (6.18) accepts a program, and why not.
///
/// ```swift
/// let object = try ObjectFile(contentsOf: "prog.o")
/// let report = Verifier().verify(object: object, program: object.programs[0])
/// if let error = report.error { print(error.explanation) }
/// ```
public struct Verifier: Sendable {
    public var options: VerifierOptions

    public init(options: VerifierOptions = VerifierOptions()) {
        self.options = options
    }

    /// Verifies `program`.
    public func verify(_ program: VerifierProgram) -> VerificationReport {
        let analysis = Analysis(program: program, options: options)
        return analysis.run()
    }

    /// Verifies one program of an object with the object's maps and line info, for the kernel
    /// whose BTF is `kernelBTF` and with the `__kconfig` values `kconfig` (see
    /// `VerifierProgram.init(object:program:kernelBTF:kconfig:)`).
    public func verify(
        object: ObjectFile, program: ObjectProgram, kernelBTF: BTF? = nil, kconfig: [UInt8]? = nil
    ) -> VerificationReport {
        verify(VerifierProgram(object: object, program: program, kernelBTF: kernelBTF, kconfig: kconfig))
    }

    /// Verifies raw instructions of `type` with `maps`.
    public func verify(
        _ instructions: [RawInstruction], type: ProgramType, maps: [VerifierMap] = []
    ) -> VerificationReport {
        verify(VerifierProgram(instructions: instructions, type: type, maps: maps))
    }
}
