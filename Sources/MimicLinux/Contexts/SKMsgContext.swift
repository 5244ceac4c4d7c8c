import MimicCore
import MimicJSON
import MimicMemory

/// An `sk_msg` program's input (JSON type `sk_msg_md`): a message a socket in a sockmap is
/// sending, as scatterlist segments. R1 points to a read-only `struct sk_msg_md` (80 bytes);
/// `data` .. `data_end` cover the first segment, as `sk_msg_compute_data_pointers` sets them,
/// until `bpf_msg_pull_data` makes a range of the message directly readable and writable.
///
/// The msg helpers follow `net/core/filter.c`: `bpf_msg_apply_bytes`, `bpf_msg_cork_bytes`
/// (recorded), `bpf_msg_pull_data` (`-EINVAL` for flags, an empty range or one past the end),
/// `bpf_msg_push_data` (zeroed bytes inserted; the kernel's are uninitialised),
/// `bpf_msg_pop_data`. After each, `data` / `data_end` point to a new region, so pointers from
/// before fault (the kernel's verifier invalidates them). `SKMsgContext.result(of:)` gives the
/// verdict and the message as the program left it.
public struct SKMsgContext: Context, Sendable {
    public var name: String
    /// The message's scatterlist segments (at least one byte in all).
    public var segments: [[UInt8]]
    /// The socket sending it (`family`, addresses, ports and `sk`).
    public var socket: SocketInfo

    public init(segments: [[UInt8]], socket: SocketInfo = SocketInfo(), name: String = "sk_msg_md") {
        self.name = name
        self.segments = segments
        self.socket = socket
    }

    /// The layout of `struct sk_msg_md`: nothing writable (`sk_msg_is_valid_access`).
    public static let layout = ContextLayout(
        structName: "sk_msg_md", size: 80,
        fields: [
            ContextField("data", 0, 8, pointer: true), ContextField("data_end", 8, 8, pointer: true),
            ContextField("family", 16), ContextField("remote_ip4", 20), ContextField("local_ip4", 24),
        ] + ContextField.words("remote_ip6", 28, count: 4) + ContextField.words("local_ip6", 44, count: 4) + [
            ContextField("remote_port", 60), ContextField("local_port", 64), ContextField("size", 68),
            ContextField("sk", 72, 8, pointer: true),
        ])

    /// Reads the `ctx` of an `sk_msg_md` context file: `data` (bytes: one segment) or
    /// `segments` (a list of byte strings), and `sock` (as an sk_buff's).
    public init(json ctx: JSONField, name: String) throws(ContextError) {
        try ctx.object(knownMembers: ["data", "segments", "sock"])
        var segments: [[UInt8]] = []
        if !ctx["data"].isMissing {
            guard ctx["segments"].isMissing else { throw ctx["segments"].error("give data or segments, not both") }
            segments = [try ctx["data"].base64()]
        }
        for element in try ctx["segments"].optionalElements() { segments.append(try element.base64()) }
        guard segments.contains(where: { !$0.isEmpty }) else {
            throw ctx.error("an sk_msg needs a non-empty data or segments")
        }
        guard !segments.contains(where: \.isEmpty) else { throw ctx["segments"].error("segments may not be empty") }
        let socket = ctx["sock"].isMissing ? SocketInfo() : try SKBContext.socket(ctx["sock"])
        self.init(segments: segments, socket: socket, name: name)
    }

    public func attach(to process: MimicCore.Process) throws(SetupError) {
        guard !segments.isEmpty, !segments.contains(where: \.isEmpty) else {
            throw .message("an sk_msg needs at least one segment, none of them empty")
        }
        var b = [UInt8](repeating: 0, count: Self.layout.size)
        put32(&b, 16, socket.family)
        SocketContextJSON.putAddress(&b, 20, socket.destinationIPv4)
        SocketContextJSON.putAddress(&b, 24, socket.sourceIPv4)
        SocketContextJSON.putAddress(&b, 28, socket.destinationIPv6)
        SocketContextJSON.putAddress(&b, 44, socket.sourceIPv6)
        put32(&b, 60, SocketContextJSON.shiftedNetworkPort(socket.destinationPort))
        put32(&b, 64, UInt32(socket.sourcePort))
        let socketAddress = try socket.map(into: process)
        put64(&b, 72, socketAddress)
        let record = try StructContextRecord(layout: Self.layout, bytes: b, into: process, kind: .readOnly)
        let message = SKMessage(segments: segments)
        let state = LinuxProcessState.forContext(process)
        state.contextRecord = record
        let program = SocketProgramState(kind: .skMsg, socket: socket)
        program.socketAddress = socketAddress
        program.message = message
        state.socketProgram = program
        try message.remap(record: record, process: process)
        process.registers[1] = record.address
    }

    /// The outcome of an sk_msg run.
    public struct Result: Sendable, Equatable {
        /// R0: `SK_PASS` (1) or `SK_DROP` (0).
        public var returnValue: UInt64
        /// The message as the program left it, segment by segment.
        public var segments: [[UInt8]]
        /// `bpf_msg_apply_bytes` / `bpf_msg_cork_bytes` of the run (0 when not called).
        public var applyBytes: UInt32
        public var corkBytes: UInt32
    }

    /// The verdict and message of an exited sk_msg process; nil for another context.
    public static func result(of process: MimicCore.Process) -> Result? {
        guard case .exited(let value) = process.state, let state = LinuxProcessState.of(process),
            let message = state.socketProgram?.message
        else { return nil }
        message.syncBack()
        return Result(
            returnValue: value, segments: message.segments, applyBytes: message.applyBytes, corkBytes: message.corkBytes
        )
    }
}

/// The message of an sk_msg run: its segments, the range `data` .. `data_end` shows, and the
/// region that holds that range.
final class SKMessage {
    var segments: [[UInt8]]
    /// The directly accessible range, as offsets into the whole message.
    var start = 0, end = 0
    var applyBytes: UInt32 = 0, corkBytes: UInt32 = 0
    /// The region holding bytes `start ..< end` (nil before the first map).
    var region: RegionStorage?
    var regionAddress: UInt64 = 0

    init(segments: [[UInt8]]) {
        self.segments = segments
        end = segments.first?.count ?? 0
    }

    var size: Int { segments.reduce(0) { $0 + $1.count } }
    var flat: [UInt8] { segments.flatMap { $0 } }

    /// Copies what the program wrote through `data` back into the segments.
    func syncBack() {
        guard let region, end > start else { return }
        var bytes = flat
        bytes.replaceSubrange(start..<end, with: region.bytes(in: 0..<(end - start)))
        resegment(bytes, keeping: segments.map(\.count))
    }

    /// Splits `bytes` into segments of the given lengths (the last takes the rest).
    func resegment(_ bytes: [UInt8], keeping lengths: [Int]) {
        var result: [[UInt8]] = []
        var offset = 0
        for (index, length) in lengths.enumerated() {
            let take = index == lengths.count - 1 ? bytes.count - offset : min(length, bytes.count - offset)
            if take > 0 { result.append(Array(bytes[offset..<offset + take])) }
            offset += max(0, take)
        }
        segments = result
    }

    /// Maps `start ..< end` as a new region and points `data`, `data_end` and `size` at it; the
    /// previous region goes (pointers into it fault).
    func remap(record: StructContextRecord, process: MimicCore.Process) throws(SetupError) {
        if regionAddress != 0 { try? process.memory.unmap(regionAddress) }
        let storage = RegionStorage(bytes: Array(flat[start..<end]))
        do {
            regionAddress = try process.memory.map(storage, name: "sk_msg data")
        } catch {
            throw .message("cannot map the sk_msg data: \(error)")
        }
        region = storage
        record.store64(regionAddress, at: 0)
        record.store64(regionAddress + UInt64(end - start), at: 8)
        record.helperStore32(UInt32(size), at: 68)
    }
}
