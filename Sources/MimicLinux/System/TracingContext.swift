import MimicCore
import MimicMemory

/// The context of a tracing program (kprobe `pt_regs`, a tracepoint record, the `u64` argument
/// array of raw_tp / tp_btf / fentry / fexit, `bpf_perf_event_data`, an iterator's
/// `bpf_iter__task`): bytes mapped as one region whose address is R1, with pointers into the
/// region itself (a syscall wrapper's inner `pt_regs`, strings, an iterator's meta and
/// `seq_file`) written once its address is known. `TraceEvents` builds them from events.
public struct TracingContext: Context, Sendable {
    public var name: String
    public var bytes: [UInt8]
    /// 8-byte pointers to write: at byte `at`, the region's address plus `target`.
    public var selfPointers: [(at: Int, target: Int)]
    /// Where in the region R1 points (the context starts there; a trampoline's argument count is
    /// in the 8 bytes before it).
    public var registerOffset = 0
    /// Where in the region an iterator's `seq_file` is (`bpf_seq_printf` writes only to it).
    public var seqFileOffset: Int?
    /// The task and clock of the run.
    public var environment: TaskEnvironment
    /// The traced function of a trampoline program (fentry, fexit, fmod_ret, lsm): what
    /// `bpf_get_func_arg`, `_ret` and `_arg_cnt` read, as the kernel reads `ctx[-1]` and
    /// `ctx[nr_args]`; nil for other programs.
    public var tracedFunction: TracedFunction?

    public init(
        name: String, bytes: [UInt8], selfPointers: [(at: Int, target: Int)] = [], seqFileOffset: Int? = nil,
        environment: TaskEnvironment = TaskEnvironment()
    ) {
        self.name = name
        self.bytes = bytes
        self.selfPointers = selfPointers
        self.seqFileOffset = seqFileOffset
        self.environment = environment
    }

    public func attach(to process: MimicCore.Process) throws(SetupError) {
        let base: UInt64
        let storage: RegionStorage
        do {
            storage = try RegionStorage(
                count: max(8, bytes.count), charging: process.vm.memoryBudget, for: "tracing context \(name)")
            base = try process.memory.map(storage, name: name)
        } catch {
            throw .message("tracing context \(name): cannot map it: \(error)")
        }
        var contents = bytes
        for (at, target) in selfPointers where at >= 0 && at + 8 <= contents.count {
            let value = base &+ UInt64(target)
            for i in 0..<8 { contents[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }
        storage.write(contents, at: 0)
        process.registers[1] = base &+ UInt64(registerOffset)
        let state = LinuxProcessState.forContext(process)
        state.environment = environment
        state.seqFileAddress = seqFileOffset.map { base &+ UInt64($0) }
        if let tracedFunction { state.tracedFunction = tracedFunction }
    }
}

/// Register layouts of `struct pt_regs`, by register name.
public enum RegisterLayout: String, Sendable, CaseIterable {
    case x86_64 = "x86-64"
    case arm64

    /// The layout of the machine Mimic runs on (libbpf's `__TARGET_ARCH_*` of programs built
    /// for it); x86-64 elsewhere.
    public static var host: RegisterLayout {
        #if arch(arm64)
            .arm64
        #else
            .x86_64
        #endif
    }

    /// The layout a program was built for, from the types its BTF names: libbpf's
    /// `bpf_tracing.h` reads `struct user_pt_regs` (and `pt_regs___arm64`) on arm64 and
    /// `struct pt_regs`'s `di`, `si`, ... on x86-64. Nil when the BTF says neither.
    public init?(inferredFrom btf: BTF?) {
        guard let btf else { return nil }
        if btf.typeID(named: "user_pt_regs", kind: .structure) != nil
            || btf.typeID(named: "pt_regs___arm64", kind: .structure) != nil
        {
            self = .arm64
            return
        }
        if let id = btf.typeID(named: "pt_regs", kind: .structure),
            btf.type(id)?.members.contains(where: { $0.name == "di" }) == true
        {
            self = .x86_64
            return
        }
        return nil
    }

    /// The kernel's `struct pt_regs` size (x86-64: 21 registers; arm64: `user_pt_regs`,
    /// `orig_x0`, `syscallno` and the rest up to 336 bytes).
    public var size: Int { self == .x86_64 ? 168 : 336 }

    /// `bpf_user_pt_regs_t`'s size (the `regs` of `bpf_perf_event_data`).
    public var userSize: Int { self == .x86_64 ? 168 : 272 }

    /// The byte offset of a register, by its `pt_regs` member name or a common alias
    /// (`rdi` for `di`, `x0`..`x30`, `lr`, `fp`).
    public func offset(of name: String) -> Int? {
        switch self {
        case .x86_64:
            let order = [
                "r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si", "di",
                "orig_ax", "ip", "cs", "flags", "sp", "ss",
            ]
            var key = name
            if ["rbp", "rbx", "rax", "rcx", "rdx", "rsi", "rdi", "rip", "rsp", "orig_rax"].contains(name) {
                key = name == "orig_rax" ? "orig_ax" : String(name.dropFirst())
            }
            if name == "eflags" { key = "flags" }
            return order.firstIndex(of: key).map { $0 * 8 }
        case .arm64:
            if name.hasPrefix("x"), let n = Int(name.dropFirst()), (0...30).contains(n) { return n * 8 }
            if name.hasPrefix("regs["), name.hasSuffix("]"), let n = Int(name.dropFirst(5).dropLast()),
                (0...30).contains(n)
            {
                return n * 8
            }
            switch name {
            case "fp": return 29 * 8
            case "lr": return 30 * 8
            case "sp": return 31 * 8
            case "pc": return 32 * 8
            case "pstate": return 33 * 8
            case "orig_x0": return 34 * 8
            case "syscallno": return 35 * 8
            default: return nil
            }
        }
    }

    /// The registers of a function's arguments (`PT_REGS_PARM1..`), of a syscall's
    /// (`PT_REGS_PARM1_SYSCALL..`), and of the return value (`PT_REGS_RC`).
    public var argumentRegisters: [String] {
        self == .x86_64 ? ["di", "si", "dx", "cx", "r8", "r9"] : ["x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7"]
    }
    public var syscallRegisters: [String] {
        self == .x86_64 ? ["di", "si", "dx", "r10", "r8", "r9"] : ["x0", "x1", "x2", "x3", "x4", "x5"]
    }
    public var returnRegister: String { self == .x86_64 ? "ax" : "x0" }
}
