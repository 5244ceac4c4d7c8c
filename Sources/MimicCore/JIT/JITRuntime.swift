#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif
import MimicMemory
import Synchronization

/// The execution engine of `Process.run()` (`VMConfiguration.engine`).
public enum ExecutionEngine: String, Sendable, Equatable, CaseIterable {
    /// The interpreter, on every host.
    case interpreter
    /// Machine code compiled from the program (x86-64 hosts); elsewhere the interpreter.
    case jit
    /// The JIT where the host has a backend (x86-64), the interpreter elsewhere. `step()`,
    /// tracing and debugging always use the interpreter.
    case automatic

    /// Whether `run()` executes compiled code with this engine on this host.
    public var compilesOnThisHost: Bool {
        guard self != .interpreter else { return false }
        return JITBackends.native != nil
    }
}

/// The words of the context generated code works with (pointed to by `r12`): what a run needs
/// besides the registers, by index. The Swift side fills it before entering the code and reads it
/// back after; the C-ABI entries (helpers, slow paths) receive it.
enum JITSlot {
    /// Instructions executed, including the whole straight-line run being executed (in `r10` while
    /// the code runs; written here whenever it leaves or calls out).
    static let count = 0
    /// The count from which run starts leave the code for the limit check (`Process.limitReached`).
    static let checkpoint = 1
    /// The pc of the instruction that left the code (a fault, a helper call, a run start to check).
    static let pc = 2
    /// Saved call frames (`Process.depth`).
    static let depth = 3
    /// The depth whose `exit` ends the run (`Process.callbackDepth`).
    static let exitDepth = 4
    /// The translation table: entries, and its index mask times the entry size (`TranslationTable`).
    static let entries = 5
    static let mask = 6
    /// `Process.frames`.
    static let frames = 7
    /// `Process.registers.storage` (R0–R10 when the code is not running).
    static let registers = 8
    /// The `Process`, unretained.
    static let process = 9
    /// The compiled program's pc table: per slot, the native address of its code and its run length.
    static let pcTable = 10
    /// The process's stack region: its VM address, and its host address minus the VM address.
    static let stackBase = 11
    static let stackDelta = 12
    /// The running program's helper table (`Program.helperCalls`), and a helper call's index in it.
    static let helperTable = 13
    static let helperIndex = 14
    /// The process's vCPU (32 bits, zero-extended): `InlineHelper.processorID`.
    static let vCPU = 15
    /// A `DirectHelperCall` (three words: the process, the called entry's data, declined), the
    /// sixth argument of `DirectHelper` entries; generated code writes `data` before each call.
    static let directCall = 16
    /// Non-zero while `Process.inlineHelpersBypassed`: inline helpers call the helper instead.
    static let inlineBypass = 19
    // Word 20 is unused (the depth at entry: the code reads the depth from R10 and its native
    // frames).
    /// `rsp` after the entry function's prologue: the epilogue drops native frames by restoring it.
    /// With native call frames (`X86Backend`), also the base they are counted from.
    static let machineStack = 21
    /// `stackBase + frameSize`: a BPF-to-BPF call with R10 at or below it would exceed the call
    /// depth (a word that stays the same for the process).
    static let callFloor = 22
    /// R10 when compiled code last called host code: the code checks after a helper that R10 is
    /// unchanged (`emitFramePointerCheck`).
    static let hostCallR10 = 23
    static let wordCount = 24
}

/// Why generated code returned to the Swift driver (or what a C-ABI entry asks the code to do).
enum JITStatus {
    /// C-ABI entries only: go on after the instruction.
    static let proceed: UInt64 = 0
    /// The program exited; R0 holds the result.
    static let exited: UInt64 = 1
    /// A run starts at `pc` and `count >= checkpoint`: the driver checks the limit.
    static let check: UInt64 = 2
    /// `pendingFault` holds the fault of the instruction at `pc`.
    static let fault: UInt64 = 3
    /// A helper asked for a tail call; `program` is the new program.
    static let tailCall: UInt64 = 4
    /// A BPF-to-BPF call at `pc` would exceed the call depth.
    static let callDepth: UInt64 = 5
    /// C-ABI entries only (`callx` of a function): continue at the run start in the `pc` word.
    static let enterDynamic: UInt64 = 6
}

/// Where Swift structures the generated code reads and writes are laid out, and the C-ABI entries
/// it calls: everything a backend needs besides the program.
struct JITEnvironment {
    let slotEntryStride: Int
    let slotBase: Int
    let slotReadLimit: Int
    let slotWriteLimit: Int
    let slotPointer: Int
    let frameStride: Int
    let frameReturnPC: Int
    let frameSaved: Int
    let stackFrameSize: Int
    let maxCallDepth: Int
    /// The size of a process's stack region (`Process.stackSize`).
    let stackSize: Int
    /// `jitHelperEntry`, `jitSlowEntry`: `(context) -> status`.
    let helperEntry: UInt64
    let slowEntry: UInt64
    /// Byte offsets of `DirectHelperCall.data` and `.declined` in the context words.
    let directCallData: Int32
    let directCallDeclined: Int32
    /// Whether the host has BMI2 (`rorx`: a translation's slot index in one instruction).
    let hasBMI2: Bool

    init(configuration: VMConfiguration) {
        // The driver writes the process as the first word of the `DirectHelperCall`.
        assert(MemoryLayout<DirectHelperCall>.offset(of: \.process) == 0)
        assert(MemoryLayout<DirectHelperCall>.size <= 8 * (JITSlot.inlineBypass - JITSlot.directCall))
        slotEntryStride = MemoryLayout<SlotEntry>.stride
        slotBase = MemoryLayout<SlotEntry>.offset(of: \.base)!
        slotReadLimit = MemoryLayout<SlotEntry>.offset(of: \.readLimit)!
        slotWriteLimit = MemoryLayout<SlotEntry>.offset(of: \.writeLimit)!
        slotPointer = MemoryLayout<SlotEntry>.offset(of: \.pointer)!
        frameStride = MemoryLayout<CallFrame>.stride
        frameReturnPC = MemoryLayout<CallFrame>.offset(of: \.returnPC)!
        frameSaved = MemoryLayout<CallFrame>.offset(of: \.savedRegisters)!
        stackFrameSize = configuration.stackFrameSize
        maxCallDepth = configuration.maxCallDepth
        stackSize = configuration.stackFrameSize * configuration.maxCallDepth
        helperEntry = UInt64(UInt(bitPattern: unsafeBitCast(jitHelperEntry, to: UnsafeRawPointer.self)))
        slowEntry = UInt64(UInt(bitPattern: unsafeBitCast(jitSlowEntry, to: UnsafeRawPointer.self)))
        directCallData = Int32(JITSlot.directCall * 8 + MemoryLayout<DirectHelperCall>.offset(of: \.data)!)
        directCallDeclined = Int32(JITSlot.directCall * 8 + MemoryLayout<DirectHelperCall>.offset(of: \.declined)!)
        hasBMI2 = HostCPU.hasBMI2
    }
}

/// What the code generator may use of the host processor.
enum HostCPU {
    /// BMI2, from the `flags` line of `/proc/cpuinfo` (false where it cannot be read: the code
    /// then uses the baseline instructions).
    static let hasBMI2: Bool = {
        #if os(Linux) && arch(x86_64)
            guard let file = fopen("/proc/cpuinfo", "r") else { return false }
            defer { fclose(file) }
            var line = [CChar](repeating: 0, count: 16384)
            while fgets(&line, Int32(line.count), file) != nil {
                guard strncmp(line, "flags", 5) == 0 else { continue }
                return strstr(line, " bmi2 ") != nil || strstr(line, " bmi2\n") != nil
            }
            return false
        #else
            return false
        #endif
    }()
}

/// Machine code for one program, before it is placed in executable memory.
struct MachineCode {
    var bytes: [UInt8]
    /// Per instruction slot: the offset of its code in `bytes` (-1 for an `lddw`'s second slot).
    var bodyOffsets: [Int]
    /// The offset of the entry function `(context, target) -> status`.
    var entryOffset: Int
    /// The offset of the quick entry function `(context) -> status`: slot 0 at depth 0 with exit
    /// depth 0, the count its run's length (`Process.enterArmed`).
    var quickEntryOffset: Int
}

/// A code generator for one host architecture. An arm64 backend would be a second conformer.
protocol JITBackend {
    /// Compiles `program`'s pre-decoded code, or nil if it cannot (the interpreter runs it then).
    static func compile(_ program: Program, environment: JITEnvironment) -> MachineCode?
}

enum JITBackends {
    /// The backend for the host, if there is one.
    static var native: (any JITBackend.Type)? {
        #if arch(x86_64) && (os(Linux) || os(macOS))
            return X86Backend.self
        #else
            return nil
        #endif
    }
}

/// A program's machine code in executable memory, with its pc table; unmapped when released.
///
/// W^X: the pages are mapped read-write, filled, then switched to read-execute with `mprotect`
/// before any code runs; they are never writable and executable at once.
final class CompiledProgram: @unchecked Sendable {
    private let memory: UnsafeMutableRawPointer
    private let size: Int
    /// Per slot: (native address of its code, its run length), 16 bytes each.
    let pcTable: UnsafeMutablePointer<UInt64>
    let slotCount: Int
    /// The code's size in bytes.
    let codeSize: Int
    /// The entry function `(context, native address) -> status` (`MachineCode.entryOffset`).
    let entry: @convention(c) (UnsafeMutablePointer<UInt64>, UnsafeRawPointer) -> UInt64
    /// The quick entry function `(context) -> status` (`MachineCode.quickEntryOffset`).
    let quickEntry: @convention(c) (UnsafeMutablePointer<UInt64>) -> UInt64

    init?(_ code: MachineCode, program: Program) {
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        size = max(pageSize, (code.bytes.count + pageSize - 1) / pageSize * pageSize)
        let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let mapped, mapped != MAP_FAILED else { return nil }
        code.bytes.withUnsafeBytes { mapped.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        guard mprotect(mapped, size, PROT_READ | PROT_EXEC) == 0 else {
            munmap(mapped, size)
            return nil
        }
        memory = mapped
        codeSize = code.bytes.count
        slotCount = code.bodyOffsets.count
        pcTable = .allocate(capacity: 2 * max(1, slotCount))
        let base = UInt64(UInt(bitPattern: mapped))
        for pc in 0..<slotCount {
            let offset = code.bodyOffsets[pc]
            pcTable[2 * pc] = offset < 0 ? 0 : base + UInt64(offset)
            pcTable[2 * pc + 1] = UInt64(Program.runLength(program.code.baseAddress!, pc))
        }
        entry = unsafeBitCast(
            mapped + code.entryOffset,
            to: (@convention(c) (UnsafeMutablePointer<UInt64>, UnsafeRawPointer) -> UInt64).self)
        quickEntry = unsafeBitCast(
            mapped + code.quickEntryOffset, to: (@convention(c) (UnsafeMutablePointer<UInt64>) -> UInt64).self)
    }

    deinit {
        munmap(memory, size)
        pcTable.deallocate()
    }

    /// The machine code, for disassembly (`objdump -D -b binary -mi386:x86-64`).
    var bytes: [UInt8] { Array(UnsafeRawBufferPointer(start: memory, count: codeSize)) }

    /// Runs the code from slot `pc` with `context`; returns a `JITStatus`.
    @inline(__always)
    func enter(_ context: UnsafeMutablePointer<UInt64>, at pc: Int) -> UInt64 {
        entry(context, UnsafeRawPointer(bitPattern: UInt(pcTable[2 * pc]))!)
    }

    /// Runs the code from `native` (a non-zero entry of the pc table) with `context`.
    @inline(__always)
    func enter(_ context: UnsafeMutablePointer<UInt64>, native: UInt64) -> UInt64 {
        entry(context, UnsafeRawPointer(bitPattern: UInt(native)).unsafelyUnwrapped)
    }

    /// Whether slot `pc` has code to enter at (not an `lddw`'s second half).
    func canEnter(at pc: Int) -> Bool { pc >= 0 && pc < slotCount && pcTable[2 * pc] != 0 }
}

/// A program's compiled code, made on first use (thread-safe) and kept with the program's
/// pre-decoded code (`Program.Buffers`).
final class JITCache: @unchecked Sendable {
    /// 0: not compiled yet; 1: the backend refused; else an `Unmanaged<CompiledProgram>`.
    private let published = Atomic<UInt>(0)
    private let lock = Mutex(())

    /// The compiled code of `program`, compiling it now if needed; nil if it cannot be compiled.
    func compiled(_ program: Program) -> CompiledProgram? {
        let raw = published.load(ordering: .acquiring)
        if raw > 1 {
            return Unmanaged<CompiledProgram>.fromOpaque(UnsafeRawPointer(bitPattern: raw)!).takeUnretainedValue()
        }
        if raw == 1 { return nil }
        return lock.withLock { _ -> CompiledProgram? in
            let again = published.load(ordering: .acquiring)
            if again > 1 {
                return Unmanaged<CompiledProgram>.fromOpaque(UnsafeRawPointer(bitPattern: again)!).takeUnretainedValue()
            }
            if again == 1 { return nil }
            guard let backend = JITBackends.native,
                let code = backend.compile(
                    program, environment: JITEnvironment(configuration: program.vm.configuration)),
                let compiled = CompiledProgram(code, program: program)
            else {
                published.store(1, ordering: .releasing)
                return nil
            }
            published.store(UInt(bitPattern: Unmanaged.passRetained(compiled).toOpaque()), ordering: .releasing)
            return compiled
        }
    }

    /// `compiled(_:)`, unretained: valid for as long as `program` (which owns this cache) lives.
    func borrowedCompiled(_ program: Program) -> Unmanaged<CompiledProgram>? {
        let raw = published.load(ordering: .acquiring)
        if raw > 1 { return Unmanaged<CompiledProgram>.fromOpaque(UnsafeRawPointer(bitPattern: raw)!) }
        // Compiled now (or refused): the cache keeps what it published.
        return compiled(program).map { Unmanaged.passUnretained($0) }
    }

    deinit {
        let raw = published.load(ordering: .acquiring)
        if raw > 1 { Unmanaged<CompiledProgram>.fromOpaque(UnsafeRawPointer(bitPattern: raw)!).release() }
    }
}

// MARK: C-ABI entries called by generated code

/// The process a context belongs to, unretained: the driver holds it for the whole run.
@inline(__always)
private func owner(_ context: UnsafeMutablePointer<UInt64>) -> Unmanaged<Process> {
    Unmanaged<Process>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(context[JITSlot.process]))!)
}

/// `call` of a helper (or kfunc, or custom instruction) at the context's pc; registers are in
/// `Process.registers`.
let jitHelperEntry: @convention(c) (UnsafeMutablePointer<UInt64>) -> UInt64 = { context in
    owner(context)._withUnsafeGuaranteedRef { $0.compiledHelperCall(context) }
}

/// The slow path of a memory access, an atomic, `ld_abs`/`ld_ind` or `callx` at the context's pc.
let jitSlowEntry: @convention(c) (UnsafeMutablePointer<UInt64>) -> UInt64 = { context in
    owner(context)._withUnsafeGuaranteedRef { $0.compiledSlowPath(context) }
}

extension Program {
    /// The machine code the JIT made for this program (compiling it now if needed), for
    /// disassembly (`objdump -D -b binary -mi386:x86-64`); nil where the host has no JIT backend.
    public var machineCode: [UInt8]? { jitCache.compiled(self)?.bytes }
}
