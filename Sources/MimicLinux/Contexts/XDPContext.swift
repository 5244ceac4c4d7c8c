import MimicCore
import MimicJSON
import MimicMemory

/// The verdicts of an XDP program (`enum xdp_action` in `linux/bpf.h`).
public enum XDPAction: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case aborted = 0
    case drop = 1
    case pass = 2
    case tx = 3
    case redirect = 4

    /// The verdict a program's return value names, or nil for a value outside the enum.
    public init?(returnValue: UInt64) {
        guard returnValue <= UInt64(UInt32.max), let action = XDPAction(rawValue: UInt32(returnValue)) else {
            return nil
        }
        self = action
    }

    /// The C name (`XDP_PASS`).
    public var name: String {
        switch self {
        case .aborted: "XDP_ABORTED"
        case .drop: "XDP_DROP"
        case .pass: "XDP_PASS"
        case .tx: "XDP_TX"
        case .redirect: "XDP_REDIRECT"
        }
    }

    public var description: String { name }
}

/// An XDP program's input: a packet in a buffer with headroom and tailroom, and a
/// `struct xdp_md` in R1 (JSON type `xdp_md`).
///
/// The buffer (`headroom` bytes, the packet, `tailroom` bytes) lives in the 32-bit window, so the
/// 32-bit `data`, `data_end` and `data_meta` fields are usable pointers, as in the kernel. The
/// struct is read-only to the program, as the kernel's verifier enforces for XDP.
///
/// `struct xdp_md` (24 bytes): `u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index,
/// egress_ifindex`. `data_meta` starts equal to `data`.
///
/// Limits follow the kernel: `bpf_xdp_adjust_head` and `bpf_xdp_adjust_meta` may not move into the
/// first 40 bytes of the buffer (the kernel keeps them for `struct xdp_frame`), so of the usual 256
/// bytes of headroom, 216 can be pushed; `bpf_xdp_adjust_tail` grows into `tailroom`. (With a
/// headroom below 40 bytes, which the kernel never has, the whole headroom counts as reserved.)
public struct XDPContext: Context, Sendable {
    /// The bytes the kernel reserves at the start of an XDP buffer for `struct xdp_frame`.
    public static let frameReserve = 40
    /// The packet region's name for a context of the default name.
    static let defaultRegionName = "xdp_md packet"

    public var name: String
    public var packet: [UInt8]
    /// Free bytes before the packet (the kernel's `XDP_PACKET_HEADROOM` is 256).
    public var headroom: Int
    /// Free bytes after the packet, room for `bpf_xdp_adjust_tail` to grow into.
    public var tailroom: Int
    public var ingressIfindex: UInt32
    public var rxQueueIndex: UInt32
    public var egressIfindex: UInt32
    /// Task, clock and random settings for helpers; nil keeps the process's defaults.
    public var environment: TaskEnvironment? {
        get { extras?.environment }
        set { extras = Extras(environment: newValue, rxMetadata: rxMetadata) }
    }
    /// What the receiving driver knows of the packet (the XDP metadata kfuncs); nil: a driver
    /// without them (`-EOPNOTSUPP`).
    public var rxMetadata: XDPRxMetadata? {
        get { extras?.rxMetadata }
        set { extras = Extras(environment: environment, rxMetadata: newValue) }
    }
    /// `environment` and `rxMetadata`, in a box of their own, nil when neither is set (every
    /// packet of a capture): inline they made the struct 270 bytes, copied (`memcpy`) for every
    /// call of a method on a stored context, and tested field by field per packet. Immutable:
    /// setting either makes a new box, so copies of the context stay independent.
    fileprivate private(set) var extras: Extras?
    /// `LinuxProcessState.key`, read once per context: that key is a lazily initialized global,
    /// whose every read is a `swift_once` call, where `rearm` looks the state up per packet.
    private let stateKey = LinuxProcessState.key

    fileprivate final class Extras: Sendable {
        let environment: TaskEnvironment?
        let rxMetadata: XDPRxMetadata?

        /// The box for these values; nil when both are nil.
        init?(environment: TaskEnvironment?, rxMetadata: XDPRxMetadata?) {
            if environment == nil, rxMetadata == nil { return nil }
            self.environment = environment
            self.rxMetadata = rxMetadata
        }
    }

    public init(
        packet: [UInt8], headroom: Int = 256, tailroom: Int = 0, ingressIfindex: UInt32 = 1,
        rxQueueIndex: UInt32 = 0, egressIfindex: UInt32 = 0, name: String = "xdp_md",
        environment: TaskEnvironment? = nil
    ) {
        self.name = name
        self.packet = packet
        self.headroom = headroom
        self.tailroom = tailroom
        self.ingressIfindex = ingressIfindex
        self.rxQueueIndex = rxQueueIndex
        self.egressIfindex = egressIfindex
        self.extras = Extras(environment: environment, rxMetadata: nil)
    }

    /// Reads the `ctx` object of an `xdp_md` context file: `packet` (base64), `headroom`
    /// (default 256), `tailroom` (default 0), `ingress_ifidx`, `rx_queue_idx`, `egress_ifidx`,
    /// `rx_metadata` (`XDPRxMetadata`).
    public init(json ctx: JSONField, name: String) throws(ContextError) {
        try ctx.object(
            knownMembers: [
                "packet", "headroom", "tailroom", "ingress_ifidx", "rx_queue_idx", "egress_ifidx", "rx_metadata",
            ]
                + TestRunContext.xdpInputFields)
        let limit = AddressSpace.lowWindowLimit / 4
        let packet = try ctx["packet"].optionalBase64(limit: limit)
        let headroom = try ctx["headroom"].optionalInteger(Int.self) ?? 256
        let tailroom = try ctx["tailroom"].optionalInteger(Int.self) ?? 0
        guard (0...limit).contains(headroom) else {
            throw ctx["headroom"].error("expected 0...\(limit), got \(headroom)")
        }
        guard (0...limit).contains(tailroom) else {
            throw ctx["tailroom"].error("expected 0...\(limit), got \(tailroom)")
        }
        guard packet.count <= limit else {
            throw ctx["packet"].error("\(packet.count) bytes exceed the limit of \(limit)")
        }
        self.init(
            packet: packet, headroom: headroom, tailroom: tailroom,
            ingressIfindex: try ctx["ingress_ifidx"].optionalInteger(UInt32.self) ?? 1,
            rxQueueIndex: try ctx["rx_queue_idx"].optionalInteger(UInt32.self) ?? 0,
            egressIfindex: try ctx["egress_ifidx"].optionalInteger(UInt32.self) ?? 0,
            name: name)
        try TestRunContext.read(ctx, into: &self)
        if !ctx["rx_metadata"].isMissing { rxMetadata = try XDPRxMetadata(json: ctx["rx_metadata"]) }
    }

    public func attach(to process: MimicCore.Process) throws(SetupError) {
        let attached = packet.withUnsafeBytes { bytes in
            Result { () throws(SetupError) in try attach(to: process, packet: bytes) }
        }
        try attached.get()
    }

    /// Attaches this context with `bytes` as its packet instead of `packet` (copied into the
    /// packet buffer): for packets read in place, such as a memory-mapped capture's, so a
    /// context made once serves every packet (`mimic run --pcap`).
    public func attach(to process: MimicCore.Process, packet bytes: UnsafeRawBufferPointer) throws(SetupError) {
        // Unretained: the process holds its state, and nothing here replaces it. The state's
        // method borrows this context (no copy of its fields) and owns the buffer it stores.
        let attached = LinuxProcessState.unretainedForContext(process)._withUnsafeGuaranteedRef { state in
            Result { () throws(SetupError) in try state.attach(self, packet: bytes, to: process) }
        }
        try attached.get()
    }

    /// `Process.reset(context:)`'s quick path (`Context.rearm`): this context attached by
    /// renewing the previous XDP attach's buffer in place (`rearm(_:packet:)`).
    public func rearm(_ process: MimicCore.Process) -> Bool {
        packet.withUnsafeBytes { rearm(process, packet: $0) }
    }

    /// `rearm(_:)` with `bytes` as the packet, as `attach(to:packet:)` attaches them: for a
    /// context whose packet is read in place (a capture's), attached through a `Context` of its
    /// own whose `rearm` calls this.
    ///
    /// When the Linux state is the process's only state, held by nothing else, and the run left
    /// in it nothing `prepare` would undo but plain values (`LinuxProcessState.rearmForContext`,
    /// which clears them: the emulator leaves this to the context,
    /// `LinuxEmulator.rearmsThroughContext`), renews the buffer the previous reset's XDP attach
    /// left there when that attach mapped nothing else, nothing else holds the buffer or its
    /// storages, the packet fits the storage and the region keeps its name: both regions move to
    /// the addresses the general path would give them, the buffer is refilled as
    /// `PacketBuffer.refill` does (headroom and tailroom zeroed, the packet copied, offsets and
    /// sk_buff fields as new) and the whole `xdp_md` written. False otherwise, having changed
    /// nothing but plain values `prepare` clears.
    public func rearm(_ process: MimicCore.Process, packet bytes: UnsafeRawBufferPointer) -> Bool {
        guard let state = process.soleEmulatorState(stateKey) else { return false }
        // A local function, not a closure literal: the optimizer inlines neither, but the closure
        // was called from a frame of this function's own and returned its Bool through memory;
        // the local function is entered by a tail call and returns it in a register.
        func rearm(_ state: LinuxProcessState) -> Bool {
            state.rearm(self, packet: bytes, to: process)
        }
        return state._withUnsafeGuaranteedRef(rearm)
    }

    /// The packet region's name for this context.
    fileprivate var regionName: String {
        // Formatted only for a context named otherwise: a capture attaches one per packet.
        name == "xdp_md" ? Self.defaultRegionName : "\(name) packet"
    }

    /// A new packet buffer and `xdp_md` struct for `bytes`, mapped into `process`.
    fileprivate func makeBuffer(packet bytes: UnsafeRawBufferPointer, into process: MimicCore.Process) throws(SetupError)
        -> PacketBuffer
    {
        let regionName = regionName
        let (storage, base) = try PacketBuffer.map(
            bytes, headroom: headroom, tailroom: tailroom, name: regionName, into: process)
        let context = RegionStorage(count: 24)
        let contextAddress: UInt64
        do {
            contextAddress = try process.memory.map(context, name: "xdp_md", kind: .readOnly)
        } catch {
            throw .message("cannot map the xdp_md struct: \(error)")
        }
        return PacketBuffer(
            kind: .xdp, storage: storage, base: base, metaOffset: headroom, dataOffset: headroom,
            dataEndOffset: headroom + bytes.count, reserved: min(Self.frameReserve, headroom),
            contextAddress: contextAddress, contextStorage: context, regionName: regionName)
    }

    /// What an XDP run produced: the verdict, the packet as the program left it, and the
    /// redirect target.
    /// Nil when `process` has not exited or has no XDP packet.
    public static func result(of process: MimicCore.Process) -> XDPResult? {
        guard case .exited(let value) = process.state else { return nil }
        return result(of: process, returnValue: value)
    }

    /// The outcome for `process` had it exited with `returnValue`: for a process that stands in
    /// for one running elsewhere (MimicLinux as a plugin reports the host's run this way).
    /// Nil when `process` has no XDP packet.
    public static func result(of process: MimicCore.Process, returnValue: UInt64) -> XDPResult? {
        guard let state = LinuxProcessState.of(process), let buffer = state.packet, buffer.kind == .xdp else {
            return nil
        }
        return XDPResult(
            returnValue: returnValue, packet: buffer.data, metadata: buffer.metadata, redirect: state.redirect)
    }
}

extension LinuxProcessState {
    /// `XDPContext.attach(to:packet:)` for the process this state belongs to: the previous run's
    /// buffer refilled when nothing else holds it (`PacketBuffer.refill`), else a new one; the
    /// whole `xdp_md` written, R1 pointed at it, and the buffer, rx metadata and environment
    /// stored here.
    ///
    /// A method of the state, so that it and the context are borrowed and the buffer, a local,
    /// is moved into `packet` at its last use: no reference count for any of them per packet.
    fileprivate func attach(
        _ context: XDPContext, packet bytes: UnsafeRawBufferPointer, to process: MimicCore.Process
    ) throws(SetupError) {
        let buffer: PacketBuffer
        // A process being reset keeps its previous packet buffer: refill it rather than allocate.
        if var spare = sparePacket.take(), spare.kind == .xdp, isKnownUniquelyReferenced(&spare) {
            try spare.refill(
                packet: bytes, headroom: context.headroom, tailroom: context.tailroom,
                reserved: min(XDPContext.frameReserve, context.headroom), regionName: context.regionName,
                contextName: "xdp_md", contextKind: .readOnly, contextSize: 24, into: process)
            buffer = spare
        } else {
            buffer = try context.makeBuffer(packet: bytes, into: process)
        }
        // The whole `xdp_md` in one go (one bounds check, no `kind` switch): what `syncContext`
        // and three `storeU32`s would write.
        buffer.storeXDPContext(
            ingressIfindex: context.ingressIfindex, rxQueueIndex: context.rxQueueIndex,
            egressIfindex: context.egressIfindex)
        if buffer.attachName != context.name { buffer.attachName = context.name }
        process.registers[1] = buffer.contextAddress
        if let extras = context.extras { apply(extras) }
        packet = buffer
    }
}

extension LinuxProcessState {
    /// `XDPContext.rearm(_:packet:)` for the process this state belongs to: the state and the
    /// context borrowed, as in `attach`. Inlined, with the buffer's `rearm`, into
    /// `XDPContext.rearm(_:packet:)`: one call frame for the context's whole part.
    @inline(__always)
    fileprivate func rearm(_ context: XDPContext, packet bytes: UnsafeRawBufferPointer, to process: MimicCore.Process)
        -> Bool
    {
        // The buffer, held by nothing else (host code may keep a run's buffer), is used where the
        // state holds it, borrowed: no reference count, and nothing stored back (storing into
        // `packet` would release its old value, a runtime call even for nil).
        // First: nothing but the process may hold this state (the look-up leaves that test here).
        guard process.isEmulatorStateUnique(Unmanaged.passUnretained(self)), rearmForContext(), packet != nil,
            isKnownUniquelyReferenced(&packet)
        else { return false }
        let rearmed = Unmanaged.passUnretained(packet.unsafelyUnwrapped)._withUnsafeGuaranteedRef { buffer in
            guard buffer.kind == .xdp,
                buffer.rearm(
                    packet: bytes, headroom: context.headroom, tailroom: context.tailroom,
                    reserved: min(XDPContext.frameReserve, context.headroom), name: context.name,
                    ingressIfindex: context.ingressIfindex, rxQueueIndex: context.rxQueueIndex,
                    egressIfindex: context.egressIfindex, into: process)
            else { return false }
            process.registers[1] = buffer.contextAddress
            return true
        }
        guard rearmed else { return false }
        // As `attach` sets them (`rearmForContext` found them as `clearForReuse` leaves them).
        // Compared with nil first: binding the box retains and releases it even when it is nil.
        if context.extras != nil, let extras = context.extras { apply(extras) }
        return true
    }

    /// The context's rx metadata and environment, as the attach and the rearm set them. Out of
    /// line: their copies (a `TaskEnvironment` is large) would give the rearm's frame room and
    /// spills that every packet pays, where a capture's packets have neither.
    @inline(never)
    fileprivate func apply(_ extras: XDPContext.Extras) {
        if let rxMetadata = extras.rxMetadata { xdpRxMetadata = rxMetadata }
        if let environment = extras.environment { self.environment = environment }
    }
}

/// The outcome of an XDP run.
public struct XDPResult: Sendable, Equatable {
    /// R0 as the program returned it.
    public var returnValue: UInt64
    /// The packet between `data` and `data_end` after the run (adjust_head/tail applied).
    public var packet: [UInt8]
    /// The metadata between `data_meta` and `data`.
    public var metadata: [UInt8]
    /// Where the last `bpf_redirect` / `bpf_redirect_map` of the run sent the packet; it takes
    /// effect when the verdict is `XDP_REDIRECT`.
    public var redirect: Redirect?

    /// The verdict, or nil when R0 is not an `xdp_action`.
    public var action: XDPAction? { XDPAction(returnValue: returnValue) }
}
