#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import CMimicKernel
import MimicCore
import MimicLinux

/// Direct access to the running Linux kernel's BPF subsystem through the raw `bpf(2)` system
/// call (no libbpf): create maps, load programs (with the verifier's log when it rejects them),
/// read and write map entries, and run programs on a packet with `BPF_PROG_TEST_RUN`.
///
/// Mimic uses the kernel as its oracle: `mimic compare` and the differential fuzzer run the same
/// program here and in the VM. Everything needs Linux and root (or `CAP_BPF` +
/// `CAP_NET_ADMIN`); check `isAvailable` first — on other systems every call fails with
/// `KernelError.unavailable`.
public enum KernelBPF {
    /// Whether this process can load and test-run BPF programs.
    public enum Availability: Sendable, Equatable {
        case available
        /// Why not: not Linux, not permitted (not root), no `bpf()`, ...
        case unavailable(String)
    }

    /// Checked once, by loading and test-running a two-instruction XDP program.
    public static let availability: Availability = probe()

    /// Whether the kernel can be used (`availability == .available`).
    public static var isAvailable: Bool { availability == .available }

    /// Why the kernel cannot be used, or nil when it can.
    public static var unavailableReason: String? {
        if case .unavailable(let reason) = availability { return reason }
        return nil
    }

    /// The number of possible CPUs (`/sys/devices/system/cpu/possible`): the number of values a
    /// per-CPU map holds per key in the kernel.
    public static let possibleCPUs: Int = readPossibleCPUs()

    // MARK: Commands (enum bpf_cmd)

    enum Command: Int32 {
        case mapCreate = 0, mapLookupElem = 1, mapUpdateElem = 2, mapDeleteElem = 3, mapGetNextKey = 4
        case progLoad = 5, progTestRun = 10, rawTracepointOpen = 17, btfLoad = 18, mapFreeze = 22
        case mapLookupBatch = 24

        var name: String {
            switch self {
            case .mapCreate: "BPF_MAP_CREATE"
            case .mapLookupElem: "BPF_MAP_LOOKUP_ELEM"
            case .mapUpdateElem: "BPF_MAP_UPDATE_ELEM"
            case .mapDeleteElem: "BPF_MAP_DELETE_ELEM"
            case .mapGetNextKey: "BPF_MAP_GET_NEXT_KEY"
            case .progLoad: "BPF_PROG_LOAD"
            case .progTestRun: "BPF_PROG_TEST_RUN"
            case .rawTracepointOpen: "BPF_RAW_TRACEPOINT_OPEN"
            case .btfLoad: "BPF_BTF_LOAD"
            case .mapFreeze: "BPF_MAP_FREEZE"
            case .mapLookupBatch: "BPF_MAP_LOOKUP_BATCH"
            }
        }
    }

    /// Calls `bpf(command, attr)`; returns the result or the errno.
    static func call(_ command: Command, _ attr: inout BPFAttributes) -> Result<Int32, KernelErrno> {
        let size = UInt32(attr.bytes.count)
        let result = attr.bytes.withUnsafeMutableBytes { buffer in
            mimic_bpf(command.rawValue, buffer.baseAddress, size)
        }
        if result < 0 { return .failure(KernelErrno(errno)) }
        return .success(Int32(truncatingIfNeeded: result))
    }

    /// Calls `bpf(command, attr)` and turns a failure into a `KernelError` naming `what`.
    static func check(_ command: Command, _ attr: inout BPFAttributes, _ what: String) throws(KernelError) -> Int32 {
        switch call(command, &attr) {
        case .success(let value): return value
        case .failure(let code): throw KernelError.systemCall(command: command.name, errno: code.rawValue, detail: what)
        }
    }

    static func requireAvailable() throws(KernelError) {
        if let reason = unavailableReason { throw KernelError.unavailable(reason) }
    }

    // MARK: Maps

    /// Creates a map (`BPF_MAP_CREATE`) with `attributes`; for a map of maps, `innerMap` is the
    /// map whose fd is passed as `inner_map_fd` (`attributes.innerMap` is not used).
    ///
    /// - Throws: `KernelError` with the kernel's errno (`EINVAL` for attributes it refuses).
    /// With `btf`, the map is created with the BTF of its key and value (`btf_fd`,
    /// `btf_key_type_id`, `btf_value_type_id`), which the kernel needs to find a spin lock, timer,
    /// kptr or graph root in the value.
    public static func createMap(
        _ attributes: MapAttributes, innerMap: KernelMap? = nil, btf: MapBTF? = nil
    ) throws(KernelError) -> KernelMap {
        try requireAvailable()
        guard let keySize = UInt32(exactly: attributes.keySize), let valueSize = UInt32(exactly: attributes.valueSize),
            let maxEntries = UInt32(exactly: attributes.maxEntries)
        else {
            throw KernelError.invalidArgument(
                "map \(attributes.name): key_size, value_size and max_entries must fit in 32 bits")
        }
        var attr = BPFAttributes(size: 72)
        attr.set32(0, attributes.type.rawValue)
        attr.set32(4, keySize)
        attr.set32(8, valueSize)
        attr.set32(12, maxEntries)
        attr.set32(16, attributes.flags)
        attr.set32(20, UInt32(bitPattern: innerMap?.fd ?? 0))
        attr.setName(28, attributes.name)
        if let btf {
            attr.set32(48, UInt32(bitPattern: btf.descriptor.rawValue))
            attr.set32(52, btf.keyTypeID)
            attr.set32(56, btf.valueTypeID)
        }
        var fd = Int32(-1)
        switch call(.mapCreate, &attr) {
        case .success(let value):
            fd = value
        case .failure(let code) where code.rawValue == EINVAL && attributes.name.isEmpty == false:
            // Old kernels refuse some names; retry without one.
            attr.setName(28, "")
            fd = try check(.mapCreate, &attr, "creating map \(attributes.name) (\(attributes.type))")
        case .failure(let code):
            throw KernelError.systemCall(
                command: Command.mapCreate.name, errno: code.rawValue,
                detail:
                    "creating map \(attributes.name) (\(attributes.type), key \(attributes.keySize) B, value \(attributes.valueSize) B, \(attributes.maxEntries) entries)"
            )
        }
        return KernelMap(descriptor: KernelFileDescriptor(fd), attributes: attributes, innerMap: innerMap)
    }

    // MARK: Programs

    /// Loads a program (`BPF_PROG_LOAD`). On rejection the load is repeated with the verifier's
    /// log enabled and the error carries the log.
    ///
    /// - Parameters:
    ///   - instructions: the bytecode; map references must already be `BPF_PSEUDO_MAP_FD` /
    ///     `BPF_PSEUDO_MAP_VALUE` with the kernel map's file descriptor (see `KernelObject`).
    ///   - name: shown by `bpftool`; cut to the kernel's 15 characters of `[A-Za-z0-9_.]`.
    ///   - expectedAttachType: `expected_attach_type`; 0 (the default) for program types that
    ///     have none.
    ///   - maps: kept alive as long as the program (the kernel holds its own references too).
    ///   - flags: `prog_flags` (`BPF_F_SLEEPABLE`, ...).
    ///   - attachBTFID: `attach_btf_id`, the vmlinux BTF id of what a tracing or LSM program
    ///     attaches to (the traced function, `btf_trace_<tp>`, `bpf_lsm_<hook>`); 0 for others.
    ///   - btf: the program's BTF and the `FUNC` of each of its functions (`prog_btf_fd`,
    ///     `func_info`), which the kernel needs for `bpf_obj_new` and the other kfuncs that take
    ///     a type of the program's own.
    public static func loadProgram(
        _ instructions: [RawInstruction], type: ProgramType, license: String = "GPL",
        name: String = "", expectedAttachType: AttachType = AttachType(rawValue: 0),
        flags: UInt32 = 0, maps: [KernelMap] = [], attachBTFID: UInt32 = 0, btf: ProgramBTF? = nil
    ) throws(KernelError) -> KernelProgram {
        try requireAvailable()
        guard !instructions.isEmpty else { throw KernelError.invalidArgument("program \(name) has no instructions") }
        let code = RawInstruction.encode(instructions)
        let licenseBytes = Array(license.utf8) + [0]
        // bpf_func_info records: insn_off, type_id.
        let functionInfo = (btf?.functions ?? []).flatMap { [$0.instructionIndex, $0.typeID] }
        func attempt(logSize: Int) -> (Result<Int32, KernelErrno>, String) {
            var log = [UInt8](repeating: 0, count: logSize)
            return code.withUnsafeBytes { codeBuffer in
                licenseBytes.withUnsafeBytes { licenseBuffer in
                    functionInfo.withUnsafeBytes { functionInfoBuffer in
                        log.withUnsafeMutableBytes { logBuffer in
                            var attr = BPFAttributes(size: 128)
                            attr.set32(0, type.rawValue)
                            attr.set32(4, UInt32(instructions.count))
                            attr.setPointer(8, codeBuffer.baseAddress)
                            attr.setPointer(16, licenseBuffer.baseAddress)
                            if logSize > 0 {
                                attr.set32(24, 1) // log_level
                                attr.set32(28, UInt32(logSize))
                                attr.setPointer(32, logBuffer.baseAddress)
                            }
                            attr.set32(44, flags) // prog_flags
                            attr.setName(48, name)
                            attr.set32(68, expectedAttachType.rawValue)
                            attr.set32(108, attachBTFID)
                            if let btf {
                                attr.set32(72, UInt32(bitPattern: btf.descriptor.rawValue))
                                attr.set32(76, 8) // func_info_rec_size
                                attr.setPointer(80, functionInfoBuffer.baseAddress)
                                attr.set32(88, UInt32(btf.functions.count))
                            }
                            let result = call(.progLoad, &attr)
                            let text = String(decoding: logBuffer.prefix { $0 != 0 }, as: UTF8.self)
                            return (result, text)
                        }
                    }
                }
            }
        }
        let (first, _) = attempt(logSize: 0)
        if case .success(let fd) = first {
            return KernelProgram(descriptor: KernelFileDescriptor(fd), name: name, type: type, maps: maps)
        }
        let (second, log) = attempt(logSize: 4 << 20)
        switch second {
        case .success(let fd): // accepted the second time (should not happen); use it
            return KernelProgram(descriptor: KernelFileDescriptor(fd), name: name, type: type, maps: maps)
        case .failure(let code):
            if code.rawValue == EPERM || code.rawValue == ENOSYS, log.isEmpty {
                throw KernelError.systemCall(
                    command: Command.progLoad.name, errno: code.rawValue, detail: "loading program \(name)")
            }
            throw KernelError.verifierRejected(program: name, errno: code.rawValue, log: log)
        }
    }

    // MARK: BTF

    /// Loads `bytes` as BTF (`BPF_BTF_LOAD`); a rejection carries the kernel's BTF log.
    static func loadBTF(_ bytes: [UInt8]) throws(KernelError) -> KernelFileDescriptor {
        try requireAvailable()
        var log = [UInt8](repeating: 0, count: 1 << 20)
        let result = bytes.withUnsafeBytes { btfBuffer in
            log.withUnsafeMutableBytes { logBuffer in
                var attr = BPFAttributes(size: 40)
                attr.setPointer(0, btfBuffer.baseAddress)
                attr.setPointer(8, logBuffer.baseAddress)
                attr.set32(16, UInt32(bytes.count))
                attr.set32(20, UInt32(logBuffer.count))
                attr.set32(24, 1) // btf_log_level
                return call(.btfLoad, &attr)
            }
        }
        switch result {
        case .success(let fd): return KernelFileDescriptor(fd)
        case .failure(let code):
            let text = String(decoding: log.prefix { $0 != 0 }, as: UTF8.self)
            let last = text.split(separator: "\n").last.map(String.init) ?? ""
            throw KernelError.systemCall(
                command: Command.btfLoad.name, errno: code.rawValue,
                detail: "loading the object's BTF\(last.isEmpty ? "" : ": \(last)")")
        }
    }

    // MARK: Availability

    static func probe() -> Availability {
        #if !os(Linux)
            return .unavailable("the kernel's BPF is only reachable on Linux")
        #else
            // r0 = 2 (XDP_PASS); exit
            let program = [RawInstruction(opcode: 0xb7, destination: 0, imm: 2), RawInstruction(opcode: 0x95)]
            let code = RawInstruction.encode(program)
            let license = Array("GPL".utf8) + [0]
            let fd: Int32 = code.withUnsafeBytes { codeBuffer in
                license.withUnsafeBytes { licenseBuffer in
                    var attr = BPFAttributes(size: 128)
                    attr.set32(0, ProgramType.xdp.rawValue)
                    attr.set32(4, 2)
                    attr.setPointer(8, codeBuffer.baseAddress)
                    attr.setPointer(16, licenseBuffer.baseAddress)
                    switch call(.progLoad, &attr) {
                    case .success(let fd): return fd
                    case .failure(let code): return -code.rawValue
                    }
                }
            }
            guard fd >= 0 else {
                let code = -fd
                switch code {
                case EPERM, EACCES:
                    return .unavailable(
                        "not permitted to load BPF programs (EPERM): run as root, or with CAP_BPF and CAP_NET_ADMIN (uid \(getuid()))"
                    )
                case ENOSYS:
                    return .unavailable("this kernel has no bpf() system call (ENOSYS)")
                default:
                    return .unavailable("bpf(BPF_PROG_LOAD) of a trivial XDP program failed: \(KernelErrno(code))")
                }
            }
            let descriptor = KernelFileDescriptor(fd)
            let packet = [UInt8](repeating: 0, count: 64)
            let program_ = KernelProgram(descriptor: descriptor, name: "probe", type: .xdp, maps: [])
            do {
                let run = try program_.testRunUnchecked(data: packet)
                guard run.returnValue == 2 else {
                    return .unavailable(
                        "BPF_PROG_TEST_RUN of a trivial XDP program returned \(run.returnValue), expected 2")
                }
            } catch {
                return .unavailable("BPF_PROG_TEST_RUN is not usable: \(error)")
            }
            return .available
        #endif
    }

    static func readPossibleCPUs() -> Int {
        // Format: "0-3" or "0,2-5"; the count is the highest CPU number plus one.
        guard let file = fopen("/sys/devices/system/cpu/possible", "r") else { return 1 }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 256)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return 1 }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var highest = 0
        for part in text.split(whereSeparator: { $0 == "," || $0 == "\n" }) {
            let bounds = part.split(separator: "-")
            if let last = bounds.last, let value = Int(last.trimmingCharacters(in: " \n")) {
                highest = max(highest, value)
            }
        }
        return highest + 1
    }

    /// Runs `body` with the calling thread pinned to `cpu`, so a test run (which runs on the
    /// current CPU) touches that CPU's values of per-CPU maps. The old affinity is restored.
    public static func withPinnedCPU<T, E: Error>(_ cpu: Int, _ body: () throws(E) -> T) throws(E) -> T {
        var old = [UInt8](repeating: 0, count: 128)
        let hadOld = mimic_get_affinity(&old, UInt(old.count)) == 0
        var pinned = [UInt8](repeating: 0, count: 128)
        if cpu >= 0, cpu / 8 < pinned.count { pinned[cpu / 8] = 1 << UInt8(cpu % 8) }
        let pinnedOK = mimic_set_affinity(pinned, UInt(pinned.count)) == 0
        defer { if pinnedOK, hadOld { _ = mimic_set_affinity(old, UInt(old.count)) } }
        return try body()
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        var s = self
        while let first = s.first, set.contains(first) { s = s.dropFirst() }
        while let last = s.last, set.contains(last) { s = s.dropLast() }
        return s
    }
}

/// An errno value from the kernel, with its name.
struct KernelErrno: Error, CustomStringConvertible {
    let rawValue: Int32
    init(_ rawValue: Int32) { self.rawValue = rawValue }
    var description: String { KernelError.describe(errno: rawValue) }
}

/// A failure of the kernel-access layer.
public enum KernelError: Error, Sendable, CustomStringConvertible {
    /// The kernel cannot be used at all (not Linux, not root, no `bpf()`).
    case unavailable(String)
    /// A `bpf()` command failed: the command (`BPF_MAP_CREATE`), the errno, and what was being done.
    case systemCall(command: String, errno: Int32, detail: String)
    /// The verifier refused the program; `log` is its log (level 1).
    case verifierRejected(program: String, errno: Int32, log: String)
    /// An argument the kernel would not accept (wrong key size, empty program).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .unavailable(let reason):
            "the kernel's BPF is not reachable: \(reason)"
        case .systemCall(let command, let errno, let detail):
            "\(detail): bpf(\(command)) failed with \(KernelError.describe(errno: errno))"
        case .verifierRejected(let program, let errno, let log):
            "the kernel's verifier rejected program \(program.isEmpty ? "(unnamed)" : program) (\(KernelError.describe(errno: errno)))"
                + (log.isEmpty ? "" : ":\n" + log)
        case .invalidArgument(let message):
            message
        }
    }

    /// The verifier log, for `verifierRejected`.
    public var verifierLog: String? {
        if case .verifierRejected(_, _, let log) = self { return log }
        return nil
    }

    /// Whether the kernel may have refused for want of the object's BTF, which libbpf would give
    /// it: a verifier log asking for `func_info` (callbacks), map BTF (a spin lock, timer or graph
    /// root in a value) or program BTF (`bpf_obj_new`), or a map it would not create (socket
    /// storage is created only with BTF). `KernelObject(loadsObjectBTF:)` may then load it.
    public var asksForObjectBTF: Bool {
        switch self {
        case .verifierRejected(_, _, let log):
            ["missing btf func_info", "has to have BTF", "requires prog BTF"].contains { log.contains($0) }
        case .systemCall(let command, _, _):
            command == KernelBPF.Command.mapCreate.name
        case .unavailable, .invalidArgument:
            false
        }
    }

    /// `EINVAL (Invalid argument)`.
    static func describe(errno code: Int32) -> String {
        let message =
            code == Errno.kernelNotSupported.rawValue ? "Operation is not supported" : String(cString: strerror(code))
        return "\(Errno(rawValue: code)) (\(message))"
    }
}

/// A file descriptor this process owns; closed when the last reference goes away.
public final class KernelFileDescriptor: Sendable {
    public let rawValue: Int32

    init(_ rawValue: Int32) { self.rawValue = rawValue }

    deinit {
        if rawValue >= 0 { close(rawValue) }
    }
}

/// A `union bpf_attr` being filled in: a zeroed byte buffer with little-endian fields at the
/// offsets of `linux/bpf.h`.
struct BPFAttributes {
    var bytes: [UInt8]

    init(size: Int) { bytes = [UInt8](repeating: 0, count: size) }

    mutating func set32(_ offset: Int, _ value: UInt32) {
        for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    mutating func set64(_ offset: Int, _ value: UInt64) {
        for i in 0..<8 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    mutating func setPointer(_ offset: Int, _ pointer: UnsafeRawPointer?) {
        set64(offset, UInt64(UInt(bitPattern: pointer)))
    }

    /// A `char[BPF_OBJ_NAME_LEN]` name: at most 15 characters of `[A-Za-z0-9_.]`, NUL-terminated.
    mutating func setName(_ offset: Int, _ name: String) {
        let allowed = name.utf8.filter {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F
                || $0 == 0x2E
        }
        for i in 0..<16 { bytes[offset + i] = i < min(15, allowed.count) ? allowed[i] : 0 }
    }

    func get32(_ offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }
}

/// The BTF a map is created with: the loaded BTF and the ids of its key and value types (0 for
/// a global-data section's key, which has none).
public struct MapBTF {
    let descriptor: KernelFileDescriptor
    let keyTypeID: UInt32
    let valueTypeID: UInt32
}

/// The BTF a program is loaded with: the loaded BTF and, for each of the program's functions
/// (the entry first), its first instruction and its `FUNC` type.
public struct ProgramBTF {
    let descriptor: KernelFileDescriptor
    let functions: [(instructionIndex: UInt32, typeID: UInt32)]
}
