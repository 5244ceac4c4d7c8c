import MimicMemory
import Synchronization

/// One pre-decoded instruction, as the interpreter executes it.
///
/// Decoding happens once, at load: the operation is dense, jump and call targets are absolute
/// slot indexes, immediates are sign-extended to 64 bits, `lddw` carries its whole value, and a
/// helper call carries the index of its implementation in `Program.helpers`.
@frozen
public struct DecodedInstruction: Sendable {
    public var operation: Operation
    public var destination: UInt8
    public var source: UInt8
    /// Memory offset, or the absolute target of a jump or local call.
    public var offset: Int32
    /// Sign-extended immediate; `lddw`'s 64-bit value; a helper call's table index.
    public var imm: UInt64

    @inlinable
    public init(operation: Operation, destination: UInt8, source: UInt8, offset: Int32, imm: UInt64) {
        self.operation = operation
        self.destination = destination
        self.source = source
        self.offset = offset
        self.imm = imm
    }
}

/// A loaded, verified-for-safety, pre-decoded program, ready to run in any number of processes.
///
/// Load checks what the interpreter relies on (known opcodes, valid registers, jumps inside the
/// program and not into an `lddw`, a final `exit` or jump); it is not the kernel's verifier.
public final class Program: @unchecked Sendable {
    /// A name for messages (the ELF symbol, the file name).
    public let name: String
    /// The instructions as loaded, one per slot.
    public let instructions: [RawInstruction]
    /// Helper implementations, indexed by the `imm` of pre-decoded helper calls.
    public let helpers: [Helper]
    /// Slot indexes where program-local functions start (0 is the entry).
    public let functionEntries: [Int]
    /// The VM the program was loaded into. Held strongly, so a program keeps its VM (and the
    /// maps it refers to) alive. Maps of the VM hold its programs as `DetachedProgram`s, which
    /// do not hold the VM: no reference cycle keeps a dropped VM alive.
    public let vm: VM
    /// Source lines by instruction (from an object's BTF line info), sorted; empty for bytecode.
    public let lineInfo: [SourceLineInfo]
    /// The BTF of the object the program came from (nil for bytecode): the local types kfuncs
    /// such as `bpf_obj_new_impl` are given by id.
    public let objectBTF: BTF?

    /// Pre-decoded code, one record per slot; immutable after load. It lives in `Buffers`'s
    /// storage, after the run lengths (`runLength`).
    let code: UnsafeMutableBufferPointer<DecodedInstruction>
    /// The longest straight-line run (`runLength`): the interpreter's limit check is one compare
    /// until this many instructions before the limit.
    let longestRun: UInt32
    /// `helpers` again, in memory the interpreter reads without retaining an array: a run on
    /// one core must not write reference counts that runs on other cores share.
    let helperTable: UnsafeMutablePointer<Helper>
    /// `helpers` once more, boxed and unretained, as the interpreter calls them (`HelperBox`).
    let helperCalls: UnsafePointer<Unmanaged<HelperBox>>
    /// Helper table index by helper id, for `callx` with a helper id in a register.
    let helperIndexByID: [Int32: Int]
    /// Owns `code` and `helperTable`; shared by the `Program`s made from one load.
    private let buffers: Buffers

    /// The program's id: unique among the programs loaded in this process, from 1, as the
    /// kernel's `bpf_prog.id` is system-wide (what a devmap or cpumap entry's value shows).
    /// A detached program made whole again keeps it.
    public var id: UInt32 { buffers.id }

    /// The pre-decoded code (after its run lengths) and helper table, freed when the last
    /// program sharing them goes.
    final class Buffers: @unchecked Sendable {
        let code: UnsafeMutableBufferPointer<DecodedInstruction>
        let longestRun: UInt32
        let helperTable: UnsafeMutablePointer<Helper>
        let helperCount: Int
        let helperCalls: UnsafeMutablePointer<Unmanaged<HelperBox>>
        /// Owns the boxes `helperCalls` points to.
        private let helperBoxes: [HelperBox]
        /// The machine code compiled from `code`, made on first use (`VMConfiguration.engine`).
        let jit = JITCache()
        /// `StackReach.bytes` of the code, worked out on first use (-1: not yet).
        let stackReach = Atomic<Int>(-1)
        /// `Program.id`.
        let id: UInt32
        private let storage: UnsafeMutableRawPointer
        /// The last id given; ids wrap past `UInt32.max` and skip 0, as the kernel's cycle.
        private static let lastID = Atomic<UInt32>(0)

        init(code: [DecodedInstruction], helpers: [Helper]) {
            // One allocation: the run lengths (`runLength`), then the code.
            let runBytes = (code.count * MemoryLayout<UInt32>.stride + 15) & ~15
            storage = .allocate(
                byteCount: runBytes + code.count * MemoryLayout<DecodedInstruction>.stride, alignment: 16)
            let codeStart = (storage + runBytes).bindMemory(to: DecodedInstruction.self, capacity: code.count)
            self.code = UnsafeMutableBufferPointer(start: codeStart, count: code.count)
            _ = self.code.initialize(from: code)
            longestRun = Program.measureRuns(code, before: codeStart)
            helperTable = .allocate(capacity: max(helpers.count, 1))
            helperTable.initialize(from: helpers, count: helpers.count)
            helperCount = helpers.count
            helperBoxes = helpers.map(HelperBox.init)
            helperCalls = .allocate(capacity: max(helpers.count, 1))
            helperCalls.initialize(from: helperBoxes.map(Unmanaged.passUnretained), count: helpers.count)
            var id = Self.lastID.wrappingAdd(1, ordering: .relaxed).newValue
            while id == 0 { id = Self.lastID.wrappingAdd(1, ordering: .relaxed).newValue }
            self.id = id
        }

        deinit {
            storage.deallocate()
            helperTable.deinitialize(count: helperCount)
            helperTable.deallocate()
            helperCalls.deallocate()
        }
    }

    /// `lddw` with `BPF_PSEUDO_FUNC` yields `functionAddressTag | slot`: never a mapped address.
    public static let functionAddressTag: UInt64 = 0xFFFF_FFFE_0000_0000

    init(
        name: String, instructions: [RawInstruction], code: [DecodedInstruction], helpers: [Helper],
        helperIndexByID: [Int32: Int], functionEntries: [Int], lineInfo: [SourceLineInfo], vm: VM,
        objectBTF: BTF? = nil
    ) {
        self.objectBTF = objectBTF
        self.name = name
        self.instructions = instructions
        self.helpers = helpers
        self.helperIndexByID = helperIndexByID
        self.functionEntries = functionEntries
        self.lineInfo = lineInfo.sorted { $0.instructionIndex < $1.instructionIndex }
        self.vm = vm
        buffers = Buffers(code: code, helpers: helpers)
        self.code = buffers.code
        longestRun = buffers.longestRun
        helperTable = buffers.helperTable
        helperCalls = UnsafePointer(buffers.helperCalls)
    }

    /// The number of instructions the straight-line run from `pc` may execute: up to and
    /// including the next unconditional jump, call or `exit`, through conditional jumps not
    /// taken (an `lddw` counts once). The interpreter checks its instruction limit where a run
    /// starts (the entry, taken jumps, calls and returns) for the whole run at once.
    ///
    /// The lengths sit just before the code, in reverse slot order, so the interpreter reaches
    /// them from the code pointer it holds: one more pointer in the loop cost register spills.
    @inline(__always)
    static func runLength(_ code: UnsafePointer<DecodedInstruction>, _ pc: Int) -> UInt32 {
        UnsafeRawPointer(code).load(fromByteOffset: -MemoryLayout<UInt32>.stride &* (pc &+ 1), as: UInt32.self)
    }

    /// Writes the run lengths before `code` and returns the longest. The loader made sure the
    /// last slot ends a run.
    private static func measureRuns(
        _ code: [DecodedInstruction], before start: UnsafeMutablePointer<DecodedInstruction>
    ) -> UInt32 {
        let runs = UnsafeMutableRawPointer(start)
        func set(_ pc: Int, _ length: UInt32) {
            runs.storeBytes(of: length, toByteOffset: -MemoryLayout<UInt32>.stride * (pc + 1), as: UInt32.self)
        }
        var isSecondHalf = [Bool](repeating: false, count: code.count)
        var pc = 0
        while pc < code.count {
            if code[pc].operation == .loadImm64, pc + 1 < code.count {
                isSecondHalf[pc + 1] = true
                pc += 2
            } else {
                pc += 1
            }
        }
        var following: UInt32 = 0 // the run length of the next instruction slot
        var longest: UInt32 = 1
        for pc in code.indices.reversed() {
            if isSecondHalf[pc] {
                set(pc, 0)
                continue
            }
            switch InstructionSet.form(of: code[pc].operation).shape {
            case .jump, .jump32, .callHelper, .callLocal, .callRegister, .none: following = 1
            default: following &+= 1
            }
            set(pc, following)
            longest = max(longest, following)
        }
        return longest
    }

    /// This program without a strong reference to its VM, for storing inside the VM (a prog
    /// array's slots).
    public var detached: DetachedProgram { DetachedProgram(self) }

    /// A loaded program as the VM's own maps hold it: everything but a strong reference to the
    /// VM, so a VM whose prog array holds its programs is freed when the host drops it.
    /// `program` gives a runnable `Program` again while the VM lives.
    public struct DetachedProgram: @unchecked Sendable {
        private let template: Program.Template
        private weak var vm: VM?
        /// The program detached, while the host holds it: `program` gives it back itself.
        private weak var original: Program?

        init(_ program: Program) {
            template = Template(program)
            vm = program.vm
            original = program
        }

        /// The program, holding its VM again (the very object detached while the host holds
        /// it); nil once the VM is gone.
        public var program: Program? {
            if let original { return original }
            guard let vm else { return nil }
            return template.program(vm)
        }

        /// The program's name (also after its VM is gone).
        public var name: String { template.name }
    }

    /// A program's parts without the VM (`DetachedProgram`'s storage).
    final class Template: @unchecked Sendable {
        let name: String
        private let instructions: [RawInstruction]
        private let helpers: [Helper]
        private let helperIndexByID: [Int32: Int]
        private let functionEntries: [Int]
        private let lineInfo: [SourceLineInfo]
        private let objectBTF: BTF?
        private let buffers: Buffers

        init(_ program: Program) {
            name = program.name
            instructions = program.instructions
            helpers = program.helpers
            helperIndexByID = program.helperIndexByID
            functionEntries = program.functionEntries
            lineInfo = program.lineInfo
            objectBTF = program.objectBTF
            buffers = program.buffers
        }

        /// The parts as a program of `vm`.
        func program(_ vm: VM) -> Program {
            Program(
                name: name, instructions: instructions, helperIndexByID: helperIndexByID,
                functionEntries: functionEntries,
                lineInfo: lineInfo, objectBTF: objectBTF, helpers: helpers, buffers: buffers, vm: vm)
        }
    }

    private init(
        name: String, instructions: [RawInstruction], helperIndexByID: [Int32: Int], functionEntries: [Int],
        lineInfo: [SourceLineInfo], objectBTF: BTF?, helpers: [Helper], buffers: Buffers, vm: VM
    ) {
        self.objectBTF = objectBTF
        self.name = name
        self.instructions = instructions
        self.helpers = helpers
        self.helperIndexByID = helperIndexByID
        self.functionEntries = functionEntries
        self.lineInfo = lineInfo
        self.vm = vm
        self.buffers = buffers
        code = buffers.code
        longestRun = buffers.longestRun
        helperTable = buffers.helperTable
        helperCalls = UnsafePointer(buffers.helperCalls)
    }

    /// The number of instruction slots.
    public var count: Int { instructions.count }

    /// The bytes at the top of a `stackSize`-byte stack a run of this program can write
    /// (`StackReach`): what `Process.reset` zeroes. Worked out on first use, once per load.
    func stackReach(stackSize: Int) -> Int {
        let cached = buffers.stackReach.load(ordering: .relaxed)
        if cached >= 0 { return cached }
        let reach = StackReach.bytes(
            code: UnsafeBufferPointer(code), instructions: instructions, helpers: helpers,
            functionCount: functionEntries.count, stackSize: stackSize)
        buffers.stackReach.store(reach, ordering: .relaxed)
        return reach
    }

    /// The cache of this program's machine code (shared by the programs of one load).
    var jitCache: JITCache { buffers.jit }

    /// The source line in effect at `pc`, if the program came with line info.
    public func sourceLine(at pc: Int) -> SourceLineInfo? { lineInfo.line(at: pc) }

    /// The error `kind` at `pc`, with the instruction and its source line filled in.
    public func error(_ kind: ExecutionError.Kind, at pc: Int) -> ExecutionError {
        var error = ExecutionError(
            kind, pc: pc, instruction: pc >= 0 && pc < count ? instructions[pc] : nil, programName: name)
        error.sourceLine = sourceLine(at: pc)
        return error
    }

    /// The pre-decoded form of the instruction at `pc`.
    public func decoded(at pc: Int) -> DecodedInstruction? {
        pc >= 0 && pc < code.count ? code[pc] : nil
    }
}

/// How large programs may be and how deep they may call.
public struct VMConfiguration: Sendable, Equatable {
    /// Stack bytes per call frame (the kernel: 512).
    public var stackFrameSize: Int = 512
    /// The deepest BPF-to-BPF call chain, counting the entry frame (the kernel: 8).
    public var maxCallDepth: Int = 8
    /// The most tail calls in one run (the kernel: 33).
    public var tailCallLimit: Int = 33
    /// The most instruction slots a program may have (the kernel: 1,000,000).
    public var maxInstructions: Int = 1_000_000
    /// The VM's memory budget in bytes (`VM.memoryBudget`): maps, global data, contexts and
    /// packet buffers together. Default 1 GiB.
    public var memoryLimit: Int = MemoryBudget.defaultLimit
    /// What executes `Process.run()`: the interpreter, or machine code compiled from the program
    /// (`.jit`, `.automatic`: on x86-64 hosts). `step()`, tracing and debugging always interpret.
    public var engine: ExecutionEngine = .automatic

    public init(
        stackFrameSize: Int = 512, maxCallDepth: Int = 8, tailCallLimit: Int = 33, maxInstructions: Int = 1_000_000,
        memoryLimit: Int = MemoryBudget.defaultLimit, engine: ExecutionEngine = .automatic
    ) {
        self.engine = engine
        self.stackFrameSize = max(8, stackFrameSize)
        self.maxCallDepth = max(1, maxCallDepth)
        self.tailCallLimit = max(0, tailCallLimit)
        self.maxInstructions = max(1, maxInstructions)
        self.memoryLimit = max(0, memoryLimit)
    }
}
