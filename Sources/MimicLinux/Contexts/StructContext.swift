import MimicCore
import MimicMemory

/// One field of a context struct: its C name (`user_ip6[2]`), offset and size as the UAPI
/// header lays them out, and whether the program type may write it (the kernel's
/// `*_is_valid_access`; its verifier refuses a program that writes another field).
public struct ContextField: Sendable, Equatable {
    public var name: String
    public var offset: Int
    public var size: Int
    public var writable: Bool
    /// A pointer the context gives the program (`sk`, `data`): its value is an address, not
    /// reported among the fields.
    public var isPointer: Bool

    public init(_ name: String, _ offset: Int, _ size: Int = 4, writable: Bool = false, pointer: Bool = false) {
        self.name = name
        self.offset = offset
        self.size = size
        self.writable = writable
        isPointer = pointer
    }

    /// `name[0]` ... `name[count - 1]`, 4-byte words from `offset`.
    static func words(
        _ name: String, _ offset: Int, count: Int, writable: Bool = false
    ) -> [ContextField] {
        (0..<count).map { ContextField("\(name)[\($0)]", offset + 4 * $0, writable: writable) }
    }
}

/// A context struct of the kernel's UAPI (`struct bpf_sock_addr`, `struct bpf_sk_lookup`, ...)
/// and the fields a program of one type (and attach type) may write.
public struct ContextLayout: Sendable {
    public var structName: String
    public var size: Int
    public var fields: [ContextField]

    public init(structName: String, size: Int, fields: [ContextField]) {
        self.structName = structName
        self.size = size
        self.fields = fields
    }

    /// The field named `name`, or nil.
    public func field(named name: String) -> ContextField? { fields.first { $0.name == name } }
}

/// A context struct mapped for one run: what it held at the start, and so what the program
/// changed. `LinuxProcessState.contextRecord` holds it for the socket and cgroup contexts
/// (`bpf_sock_addr`, `bpf_sock_ops`, `bpf_sock`, `bpf_sk_lookup`, `bpf_flow_keys`);
/// `TestRunContext.output(of:)` reports its fields, so `mimic run` shows the changes.
///
/// Mimic runs programs without the kernel's verifier, so a write to a field the type may not
/// write is not refused when it happens: `forbiddenWrites` names every such field whose value
/// changed (the kernel would have refused to load the program).
public final class StructContextRecord: @unchecked Sendable {
    public let layout: ContextLayout
    let storage: RegionStorage
    /// The struct's address in the process (R1).
    public let address: UInt64
    /// The bytes the struct started with.
    public private(set) var initial: [UInt8]
    /// `initial` with the changes helpers made (`helperStore32`): what `forbiddenWrites`
    /// compares with, so only the program's own writes count.
    private var baseline: [UInt8]

    init(layout: ContextLayout, bytes: [UInt8], into process: MimicCore.Process, kind: RegionKind = .plain)
        throws(SetupError)
    {
        self.layout = layout
        var bytes = bytes
        if bytes.count < layout.size { bytes += [UInt8](repeating: 0, count: layout.size - bytes.count) }
        storage = RegionStorage(bytes: bytes)
        initial = bytes
        baseline = bytes
        do {
            address = try process.memory.map(storage, name: layout.structName, kind: kind)
        } catch {
            throw .message("cannot map the \(layout.structName) struct: \(error)")
        }
    }

    /// The struct as the program left it.
    public var bytes: [UInt8] { storage.bytes }

    /// The value of `field` in `bytes`.
    static func value(of field: ContextField, in bytes: [UInt8]) -> UInt64 {
        var value: UInt64 = 0
        for i in 0..<field.size where field.offset + i < bytes.count {
            value |= UInt64(bytes[field.offset + i]) << (8 * i)
        }
        return value
    }

    /// Every field that is not a pointer, by name, as the program left it.
    public var values: [TestRunContext.Field] {
        let now = bytes
        return layout.fields.filter { !$0.isPointer }.map {
            TestRunContext.Field(name: $0.name, value: Self.value(of: $0, in: now))
        }
    }

    /// The same fields as the run started.
    public var initialValues: [TestRunContext.Field] {
        layout.fields.filter { !$0.isPointer }.map {
            TestRunContext.Field(name: $0.name, value: Self.value(of: $0, in: initial))
        }
    }

    /// Fields the program changed although its type may not write them (changes helpers made
    /// do not count).
    public var forbiddenWrites: [String] {
        let now = bytes
        return layout.fields.filter {
            !$0.writable && !$0.isPointer && Self.value(of: $0, in: now) != Self.value(of: $0, in: baseline)
        }.map(\.name)
    }

    /// Sets a field while the context is being set up, before the run: part of `initial`.
    func setUp32(_ value: UInt32, at offset: Int) {
        helperStore32(value, at: offset)
        for i in 0..<4 where offset + i < initial.count {
            initial[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i))
        }
    }

    /// Stores a field's new value on a helper's behalf (`bpf_sock_ops_cb_flags_set`, an sk_msg's
    /// `size`): not a write of the program's.
    func helperStore32(_ value: UInt32, at offset: Int) {
        store32(value, at: offset)
        for i in 0..<4 where offset + i < baseline.count {
            baseline[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i))
        }
    }

    func load32(_ offset: Int) -> UInt32 { storage.pointer.loadUnaligned(fromByteOffset: offset, as: UInt32.self) }
    func store32(_ value: UInt32, at offset: Int) {
        storage.pointer.storeBytes(of: value, toByteOffset: offset, as: UInt32.self)
    }
    func store64(_ value: UInt64, at offset: Int) {
        storage.pointer.storeBytes(of: value, toByteOffset: offset, as: UInt64.self)
    }
}

/// Something a socket program's helper did outside the program (a socket option set, an
/// address bound, a socket selected), recorded in call order in `LinuxProcessState.socketEffects`
/// and shown by `mimic run`.
public struct SocketEffect: Sendable, Equatable, CustomStringConvertible {
    /// The helper's C name (`bpf_setsockopt`).
    public var helper: String
    /// What it did, readably (`SOL_SOCKET SO_MARK = 42`).
    public var detail: String
    /// What it returned.
    public var result: Int64

    public init(helper: String, detail: String, result: Int64) {
        self.helper = helper
        self.detail = detail
        self.result = result
    }

    public var description: String { "\(helper)(\(detail)) = \(result)" }
}
