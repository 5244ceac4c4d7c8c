import MimicCore
import MimicJSON
import MimicMemory

/// Byte offsets of `struct __sk_buff` (`linux/bpf.h`, checked with `offsetof` against the UAPI
/// header): 192 bytes.
enum SKBLayout {
    static let size = 192
    static let len = 0, pktType = 4, mark = 8, queueMapping = 12, `protocol` = 16, vlanPresent = 20
    static let vlanTCI = 24, vlanProto = 28, priority = 32, ingressIfindex = 36, ifindex = 40, tcIndex = 44
    static let cb = 48, hash = 68, tcClassid = 72, data = 76, dataEnd = 80, napiID = 84, family = 88
    static let remoteIP4 = 92, localIP4 = 96, remoteIP6 = 100, localIP6 = 116, remotePort = 132, localPort = 136
    static let dataMeta = 140, flowKeys = 144, tstamp = 152, wireLen = 160, gsoSegs = 164, sk = 168
    static let gsoSize = 176, tstampType = 180, hwtstamp = 184
}

/// The actions of a tc (`cls_act`) program (`TC_ACT_*` in `linux/pkt_cls.h`).
public enum TCAction: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case unspec = -1
    case ok = 0
    case reclassify = 1
    case shot = 2
    case pipe = 3
    case stolen = 4
    case queued = 5
    case `repeat` = 6
    case redirect = 7
    case trap = 8

    /// The action a program's return value names (its low 32 bits, signed), or nil.
    public init?(returnValue: UInt64) {
        self.init(rawValue: Int32(truncatingIfNeeded: returnValue))
    }

    /// The C name (`TC_ACT_OK`).
    public var name: String {
        switch self {
        case .unspec: "TC_ACT_UNSPEC"
        case .ok: "TC_ACT_OK"
        case .reclassify: "TC_ACT_RECLASSIFY"
        case .shot: "TC_ACT_SHOT"
        case .pipe: "TC_ACT_PIPE"
        case .stolen: "TC_ACT_STOLEN"
        case .queued: "TC_ACT_QUEUED"
        case .repeat: "TC_ACT_REPEAT"
        case .redirect: "TC_ACT_REDIRECT"
        case .trap: "TC_ACT_TRAP"
        }
    }

    public var description: String { name }
}

/// The socket a packet belongs to, as `struct bpf_sock` (the `sk` field of `__sk_buff`) and the
/// socket fields of `__sk_buff` show it. Addresses are in network order; `sourcePort` in host
/// order, `destinationPort` in host order here and stored in network order, as the kernel does.
public struct SocketInfo: Sendable, Equatable {
    public var boundDeviceIndex: UInt32 = 0
    public var family: UInt32 = 0
    public var type: UInt32 = 0
    public var `protocol`: UInt32 = 0
    public var mark: UInt32 = 0
    public var priority: UInt32 = 0
    public var sourceIPv4: [UInt8] = [0, 0, 0, 0]
    public var sourceIPv6: [UInt8] = [UInt8](repeating: 0, count: 16)
    public var sourcePort: UInt16 = 0
    public var destinationPort: UInt16 = 0
    public var destinationIPv4: [UInt8] = [0, 0, 0, 0]
    public var destinationIPv6: [UInt8] = [UInt8](repeating: 0, count: 16)
    public var state: UInt32 = 0
    public var rxQueueMapping: Int32 = -1

    public init() {}

    /// `struct bpf_sock` (80 bytes).
    var bytes: [UInt8] {
        var b = [UInt8](repeating: 0, count: 80)
        put32(&b, 0, boundDeviceIndex)
        put32(&b, 4, family)
        put32(&b, 8, type)
        put32(&b, 12, `protocol`)
        put32(&b, 16, mark)
        put32(&b, 20, priority)
        b.replaceSubrange(24..<28, with: sourceIPv4)
        b.replaceSubrange(28..<44, with: sourceIPv6)
        put32(&b, 44, UInt32(sourcePort))
        put16(&b, 48, destinationPort.bigEndian)
        b.replaceSubrange(52..<56, with: destinationIPv4)
        b.replaceSubrange(56..<72, with: destinationIPv6)
        put32(&b, 72, state)
        put32(&b, 76, UInt32(bitPattern: rxQueueMapping))
        return b
    }
}

/// `struct bpf_flow_keys` (56 bytes), for the `flow_keys` field of `__sk_buff`. Values are given in
/// host order; `n_proto`, `sport`, `dport` and `flow_label` are stored in network order.
public struct FlowKeys: Sendable, Equatable {
    public var nhoff: UInt16 = 0
    public var thoff: UInt16 = 0
    public var addrProto: UInt16 = 0
    public var isFrag: UInt8 = 0
    public var isFirstFrag: UInt8 = 0
    public var isEncap: UInt8 = 0
    public var ipProto: UInt8 = 0
    public var nProto: UInt16 = 0
    public var sport: UInt16 = 0
    public var dport: UInt16 = 0
    /// The source address: 4 bytes (`ipv4_src`) or 16 (`ipv6_src`), network order.
    public var sourceAddress: [UInt8] = []
    /// The destination address: 4 bytes (`ipv4_dst`) or 16 (`ipv6_dst`), network order.
    public var destinationAddress: [UInt8] = []
    public var flags: UInt32 = 0
    public var flowLabel: UInt32 = 0

    public init() {}

    var bytes: [UInt8] {
        var b = [UInt8](repeating: 0, count: 56)
        put16(&b, 0, nhoff)
        put16(&b, 2, thoff)
        put16(&b, 4, addrProto)
        b[6] = isFrag
        b[7] = isFirstFrag
        b[8] = isEncap
        b[9] = ipProto
        put16(&b, 10, nProto.bigEndian)
        put16(&b, 12, sport.bigEndian)
        put16(&b, 14, dport.bigEndian)
        if sourceAddress.count == 4 { b.replaceSubrange(16..<20, with: sourceAddress) }
        if destinationAddress.count == 4 { b.replaceSubrange(20..<24, with: destinationAddress) }
        if sourceAddress.count == 16 { b.replaceSubrange(16..<32, with: sourceAddress) }
        if destinationAddress.count == 16 { b.replaceSubrange(32..<48, with: destinationAddress) }
        put32(&b, 48, flags)
        put32(&b, 52, flowLabel.bigEndian)
        return b
    }
}

func put16(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt16) {
    bytes[offset] = UInt8(truncatingIfNeeded: value)
    bytes[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
}

func put32(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt32) {
    for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
}

func put64(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt64) {
    for i in 0..<8 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
}

func get32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
    (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
}

func get64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
    (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
}

/// A tc / socket-filter program's input: a packet as an sk_buff, and the UAPI
/// `struct __sk_buff` in R1 (JSON type `sk_buff`).
///
/// `packet` is the frame from its Ethernet header. Where `data` points is `dataStart`: the MAC
/// header (tc programs) or the network header (socket filters, cgroup_skb and lwt programs in
/// the kernel's `BPF_PROG_TEST_RUN`, which pulls the Ethernet header first); `ContextFit`
/// sets the program type's start when the context leaves it open. The packet lives in the
/// 32-bit window so `data`, `data_end` and `data_meta` are usable pointers; `process.packet`
/// points at the data for legacy `ld_abs` / `ld_ind` loads. Fields derived from the frame, as
/// `eth_type_trans` derives them: `protocol` (the EtherType, stored in network order as the
/// kernel does) and `pkt_type` (the destination MAC against `deviceAddress`); `len` and
/// `wire_len` count the bytes from `data`. The program's writes to `mark`, `priority`, `cb[]`,
/// `tc_index`, `tc_classid`, `queue_mapping`, `tstamp` ... are in `SKBContext.result(of:)`
/// after the run.
public struct SKBContext: Context, Sendable {
    /// Where an sk_buff's `data` starts in the frame.
    public enum DataStart: String, Sendable, Equatable, CaseIterable {
        /// At the Ethernet header: `data` is the whole frame (tc, and packet sockets).
        case mac
        /// At the network header: the 14-byte Ethernet header is pulled (the kernel's test run
        /// of socket filters, cgroup_skb and lwt programs).
        case network
    }

    /// `skb->pkt_type` values (`PACKET_*` in `linux/if_packet.h`).
    public enum PacketType: UInt32, Sendable, Equatable {
        case host = 0, broadcast = 1, multicast = 2, otherHost = 3

        /// What `eth_type_trans` sets for a frame to `destination` received on a device with
        /// address `device` and broadcast address `broadcast`: host when the destination is the
        /// device's address; else, for a group address (the low bit of the first byte),
        /// broadcast when it is the device's broadcast address and multicast otherwise; else
        /// other-host.
        public init(destination: some Collection<UInt8>, device: [UInt8], broadcast: [UInt8]) {
            let destination = Array(destination)
            if destination == device {
                self = .host
            } else if destination.first.map({ $0 & 1 == 1 }) ?? false {
                self = destination == broadcast ? .broadcast : .multicast
            } else {
                self = .otherHost
            }
        }
    }

    public var name: String
    /// The frame, from its Ethernet header (whatever `dataStart` is).
    public var packet: [UInt8]
    /// Where `data` starts; nil is the MAC header unless `ContextFit` sets the program type's.
    public var dataStart: DataStart?
    /// The program type the context was fitted to (`ContextFit` sets it): it decides which
    /// fields the program may write (`writableFields(for:)`, `forbiddenWrites(of:)`).
    public var programType: ProgramType?
    /// `pkt_type`; nil derives it from the frame's destination MAC and `deviceAddress`.
    public var pktType: UInt32?
    /// The receiving device's MAC address and broadcast address, for `pkt_type`: by default the
    /// loopback device's, which the kernel's test run receives on (both 00:00:00:00:00:00, so
    /// there a frame to ff:ff:ff:ff:ff:ff is multicast). A context file's `dev.mac` describes an
    /// Ethernet device: that address, and broadcast ff:ff:ff:ff:ff:ff.
    public var deviceAddress: [UInt8] = [0, 0, 0, 0, 0, 0]
    public var deviceBroadcast: [UInt8] = [0, 0, 0, 0, 0, 0]
    public var mark: UInt32 = 0
    public var queueMapping: UInt32 = 0
    public var priority: UInt32 = 0
    /// `ingress_ifindex` and `ifindex` (the `dev.ifIndex` of context files).
    public var ingressIfindex: UInt32 = 0
    public var ifindex: UInt32 = 0
    public var tcIndex: UInt32 = 0
    /// The five control-block words `cb[0]` ... `cb[4]`.
    public var cb: [UInt32] = [0, 0, 0, 0, 0]
    public var hash: UInt32 = 0
    public var tcClassid: UInt32 = 0
    public var napiID: UInt32 = 0
    public var tstamp: UInt64 = 0
    public var gsoSegs: UInt32 = 1
    public var gsoSize: UInt32 = 0
    /// `wire_len`; nil is the length from `data` (what the kernel's test run takes for 0).
    public var wireLen: UInt32?
    /// `hwtstamp`, the hardware timestamp.
    public var hwtstamp: UInt64 = 0
    /// Free bytes before the packet in the buffer; helpers that push headers re-map the buffer
    /// when they need more.
    public var headroom: Int = 64
    public var socket: SocketInfo?
    public var flowKeys: FlowKeys?
    /// Task, clock and random settings for helpers; nil keeps the process's defaults.
    public var environment: TaskEnvironment?

    public init(
        packet: [UInt8], name: String = "sk_buff", socket: SocketInfo? = nil, flowKeys: FlowKeys? = nil,
        ifindex: UInt32 = 0, environment: TaskEnvironment? = nil
    ) {
        self.name = name
        self.packet = packet
        self.socket = socket
        self.flowKeys = flowKeys
        self.ifindex = ifindex
        self.ingressIfindex = ifindex
        self.environment = environment
    }

    /// Reads the `ctx` object of an `sk_buff` context file: `packet` (base64, from the Ethernet
    /// header), optional `dataStart` (`"mac"` or `"network"`), `pktType` (a number), `sock`,
    /// `dev` (`ifIndex`, `mac` as `aa:bb:cc:dd:ee:ff`) and `flowKeys` objects.
    public init(json ctx: JSONField, name: String) throws(ContextError) {
        try ctx.object(
            knownMembers: [
                "packet", "dataStart", "pktType", "dev", "sock", "flowKeys", "cb", "tc_index", "tc_classid",
                "queue_mapping",
            ] + TestRunContext.skbInputFields.filter { !$0.hasPrefix("cb[") })
        let packet = try ctx["packet"].optionalBase64(limit: AddressSpace.lowWindowLimit / 2)
        guard packet.count <= AddressSpace.lowWindowLimit / 2 else {
            throw ctx["packet"].error("\(packet.count) bytes exceed the limit of \(AddressSpace.lowWindowLimit / 2)")
        }
        self.init(packet: packet, name: name)
        let dev = ctx["dev"]
        if !dev.isMissing {
            try dev.object(knownMembers: ["ifIndex", "mac"])
            let index = try dev["ifIndex"].optionalInteger(UInt32.self) ?? 0
            ifindex = index
            ingressIfindex = index
            if let text = try dev["mac"].optionalString() {
                guard let address = Self.macAddress(text) else {
                    throw dev["mac"].error("expected a MAC address like 02:00:00:00:00:01, got \"\(text)\"")
                }
                deviceAddress = address
                deviceBroadcast = [UInt8](repeating: 0xFF, count: 6)
            }
        }
        if let text = try ctx["dataStart"].optionalString() {
            guard let start = DataStart(rawValue: text) else {
                throw ctx["dataStart"].error("expected \"mac\" or \"network\", got \"\(text)\"")
            }
            dataStart = start
        }
        pktType = try ctx["pktType"].optionalInteger(UInt32.self)
        let sock = ctx["sock"]
        if !sock.isMissing { socket = try Self.socket(sock) }
        let keys = ctx["flowKeys"]
        if !keys.isMissing { flowKeys = try Self.flowKeys(keys) }
        try TestRunContext.read(ctx, into: &self)
    }

    /// Six bytes from `aa:bb:cc:dd:ee:ff`, or nil.
    static func macAddress(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        let bytes = parts.compactMap { $0.count == 2 ? UInt8($0, radix: 16) : nil }
        return bytes.count == 6 ? bytes : nil
    }

    static func socket(_ sock: JSONField) throws(ContextError) -> SocketInfo {
        try sock.object(knownMembers: [
            "boundDevIF", "family", "sockType", "protocol", "mark", "priority", "srcPort",
            "dstPort", "state", "rxQueueMapping", "srcIP4", "dstIP4", "srcIP6", "dstIP6",
        ])
        var s = SocketInfo()
        s.boundDeviceIndex = try sock["boundDevIF"].optionalInteger(UInt32.self) ?? 0
        s.family = try sock["family"].optionalInteger(UInt32.self) ?? 0
        s.type = try sock["sockType"].optionalInteger(UInt32.self) ?? 0
        s.protocol = try sock["protocol"].optionalInteger(UInt32.self) ?? 0
        s.mark = try sock["mark"].optionalInteger(UInt32.self) ?? 0
        s.priority = try sock["priority"].optionalInteger(UInt32.self) ?? 0
        s.sourcePort = try sock["srcPort"].optionalInteger(UInt16.self) ?? 0
        s.destinationPort = try sock["dstPort"].optionalInteger(UInt16.self) ?? 0
        s.state = try sock["state"].optionalInteger(UInt32.self) ?? 0
        s.rxQueueMapping = try sock["rxQueueMapping"].optionalInteger(Int32.self) ?? -1
        s.sourceIPv4 = try ipv4(sock["srcIP4"]) ?? s.sourceIPv4
        s.destinationIPv4 = try ipv4(sock["dstIP4"]) ?? s.destinationIPv4
        s.sourceIPv6 = try ipv6(sock["srcIP6"]) ?? s.sourceIPv6
        s.destinationIPv6 = try ipv6(sock["dstIP6"]) ?? s.destinationIPv6
        return s
    }

    static func flowKeys(_ keys: JSONField) throws(ContextError) -> FlowKeys {
        try keys.object(knownMembers: [
            "nhoff", "thoff", "addrProto", "isFrag", "isFirstFrag", "isEncap", "ipProto", "nProto",
            "sport", "dport", "flags", "flowLabel", "ip", "srcIP", "dstIP",
        ])
        var k = FlowKeys()
        k.nhoff = try keys["nhoff"].optionalInteger(UInt16.self) ?? 0
        k.thoff = try keys["thoff"].optionalInteger(UInt16.self) ?? 0
        k.addrProto = try keys["addrProto"].optionalInteger(UInt16.self) ?? 0
        k.isFrag = try keys["isFrag"].optionalInteger(UInt8.self) ?? 0
        k.isFirstFrag = try keys["isFirstFrag"].optionalInteger(UInt8.self) ?? 0
        k.isEncap = try keys["isEncap"].optionalInteger(UInt8.self) ?? 0
        k.ipProto = try keys["ipProto"].optionalInteger(UInt8.self) ?? 0
        k.nProto = try keys["nProto"].optionalInteger(UInt16.self) ?? 0
        k.sport = try keys["sport"].optionalInteger(UInt16.self) ?? 0
        k.dport = try keys["dport"].optionalInteger(UInt16.self) ?? 0
        k.flags = try keys["flags"].optionalInteger(UInt32.self) ?? 0
        k.flowLabel = try keys["flowLabel"].optionalInteger(UInt32.self) ?? 0
        for (key, keep) in [("ip", 0), ("srcIP", 0), ("dstIP", 1)] {
            let field = keys[key]
            guard let text = try field.optionalString(), !text.isEmpty else { continue }
            guard let address = IPAddress.v4(text) ?? IPAddress.v6(text) else {
                throw field.error("expected an IPv4 or IPv6 address, got \"\(text)\"")
            }
            if keep == 0 { k.sourceAddress = address } else { k.destinationAddress = address }
        }
        return k
    }

    static func ipv4(_ field: JSONField) throws(ContextError) -> [UInt8]? {
        guard let text = try field.optionalString(), !text.isEmpty else { return nil }
        guard let bytes = IPAddress.v4(text) else {
            throw field.error("expected an IPv4 address like 10.0.0.1, got \"\(text)\"")
        }
        return bytes
    }

    static func ipv6(_ field: JSONField) throws(ContextError) -> [UInt8]? {
        guard let text = try field.optionalString(), !text.isEmpty else { return nil }
        guard let bytes = IPAddress.v6(text) else {
            throw field.error("expected an IPv6 address like fe80::1, got \"\(text)\"")
        }
        return bytes
    }

    /// The EtherType of an Ethernet frame as `eth_type_trans` reports it: the type field when it
    /// is at least 0x0600, else `ETH_P_802_3` (raw 802.3, `FF FF` payload) or `ETH_P_802_2`.
    static let ethernetHeaderLength = 14

    static func etherType(of packet: [UInt8]) -> UInt16 {
        guard packet.count >= 14 else { return 0 }
        let type = UInt16(packet[12]) << 8 | UInt16(packet[13])
        if type >= 0x0600 { return type }
        return packet.count >= 16 && packet[14] == 0xFF && packet[15] == 0xFF ? 0x0001 : 0x0004
    }

    public func attach(to process: MimicCore.Process) throws(SetupError) {
        guard cb.count == 5 else { throw .message("sk_buff cb must have 5 words, got \(cb.count)") }
        let regionName = "\(name) packet"
        // At the network header, the Ethernet header is pulled: it stays in the buffer before
        // `data`, as the kernel keeps the MAC header in the headroom (a frame shorter than the
        // header starts at its end, as nothing of it is network data).
        let pulled = dataStart == .network ? min(Self.ethernetHeaderLength, packet.count) : 0
        let dataLength = packet.count - pulled
        let (storage, base) = try PacketBuffer.map(
            packet, headroom: headroom, tailroom: 0, name: regionName, into: process)
        var fields = [UInt8](repeating: 0, count: SKBLayout.size)
        let derivedType =
            packet.count >= 6
            ? PacketType(destination: packet.prefix(6), device: deviceAddress, broadcast: deviceBroadcast) : .host
        put32(&fields, SKBLayout.pktType, pktType ?? derivedType.rawValue)
        put32(&fields, SKBLayout.mark, mark)
        put32(&fields, SKBLayout.queueMapping, queueMapping)
        put32(&fields, SKBLayout.priority, priority)
        put32(&fields, SKBLayout.ingressIfindex, ingressIfindex)
        put32(&fields, SKBLayout.ifindex, ifindex)
        put32(&fields, SKBLayout.tcIndex, tcIndex)
        for (i, word) in cb.enumerated() { put32(&fields, SKBLayout.cb + 4 * i, word) }
        put32(&fields, SKBLayout.hash, hash)
        put32(&fields, SKBLayout.tcClassid, tcClassid)
        put32(&fields, SKBLayout.napiID, napiID)
        put64(&fields, SKBLayout.tstamp, tstamp)
        put32(&fields, SKBLayout.wireLen, wireLen ?? UInt32(dataLength))
        put32(&fields, SKBLayout.gsoSegs, gsoSegs)
        put32(&fields, SKBLayout.gsoSize, gsoSize)
        put64(&fields, SKBLayout.hwtstamp, hwtstamp)
        do {
            if let socket {
                guard socket.sourceIPv4.count == 4, socket.destinationIPv4.count == 4,
                    socket.sourceIPv6.count == 16, socket.destinationIPv6.count == 16
                else {
                    throw SetupError.message("sk_buff socket addresses must be 4 (IPv4) and 16 (IPv6) bytes")
                }
                put32(&fields, SKBLayout.family, socket.family)
                fields.replaceSubrange(SKBLayout.remoteIP4..<SKBLayout.remoteIP4 + 4, with: socket.destinationIPv4)
                fields.replaceSubrange(SKBLayout.localIP4..<SKBLayout.localIP4 + 4, with: socket.sourceIPv4)
                fields.replaceSubrange(SKBLayout.remoteIP6..<SKBLayout.remoteIP6 + 16, with: socket.destinationIPv6)
                fields.replaceSubrange(SKBLayout.localIP6..<SKBLayout.localIP6 + 16, with: socket.sourceIPv6)
                // The kernel loads skc_dport and shifts it up on little-endian: bpf_ntohl(remote_port) is the port.
                put32(&fields, SKBLayout.remotePort, SocketContextJSON.shiftedNetworkPort(socket.destinationPort))
                put32(&fields, SKBLayout.localPort, UInt32(socket.sourcePort))
                let address = try process.memory.map(
                    RegionStorage(bytes: socket.bytes), name: "bpf_sock", kind: .readOnly)
                put64(&fields, SKBLayout.sk, address)
            }
            if let flowKeys {
                let address = try process.memory.map(RegionStorage(bytes: flowKeys.bytes), name: "bpf_flow_keys")
                put64(&fields, SKBLayout.flowKeys, address)
            }
        } catch let error as SetupError {
            throw error
        } catch {
            throw .message("cannot map the sk_buff's socket or flow keys: \(error)")
        }
        let context = RegionStorage(bytes: fields)
        let contextAddress: UInt64
        do {
            contextAddress = try process.memory.map(context, name: "__sk_buff")
        } catch {
            throw .message("cannot map the __sk_buff struct: \(error)")
        }
        let buffer = PacketBuffer(
            kind: .skb, storage: storage, base: base, metaOffset: headroom + pulled,
            dataOffset: headroom + pulled, dataEndOffset: headroom + packet.count, reserved: 0,
            contextAddress: contextAddress, contextStorage: context, regionName: regionName)
        buffer.protocolType = Self.etherType(of: packet)
        buffer.networkOffset = dataStart == .network ? 0 : min(Self.ethernetHeaderLength, packet.count)
        buffer.pulledLength = pulled
        buffer.hashIsValid = hash != 0 // a hash the device gave (l4_hash)
        buffer.syncContext(process)
        process.registers[1] = contextAddress
        let state = LinuxProcessState.forContext(process)
        state.packet = buffer
        state.skbWriteCheck = programType.map { type in
            (type, TestRunContext.skbFields(fields, names: Self.checkedFields))
        }
        if programType == .lwtSeg6Local {
            // End.BPF (seg6local) runs the program on a packet with an SRH, advanced to its
            // next segment; it drops any other packet before the program runs.
            switch LWTHelpers.beginEndBPF(buffer) {
            case .success(let seg6): state.seg6 = seg6
            case .failure(let refusal):
                throw .message(
                    "an lwt_seg6local (End.BPF) packet must be IPv6 with a segment routing header: \(refusal.reason)")
            }
        }
        if let environment { state.environment = environment }
    }

    /// What a tc / socket-filter run produced: R0, the packet and the `__sk_buff` fields as the
    /// program left them. Nil when `process` has not exited or has no sk_buff.
    public static func result(of process: MimicCore.Process) -> SKBResult? {
        guard case .exited(let value) = process.state else { return nil }
        return result(of: process, returnValue: value)
    }

    /// The outcome for `process` had it exited with `returnValue` (see
    /// `XDPContext.result(of:returnValue:)`). Nil when `process` has no sk_buff.
    public static func result(of process: MimicCore.Process, returnValue value: UInt64) -> SKBResult? {
        guard let state = LinuxProcessState.of(process), let buffer = state.packet, buffer.kind == .skb else {
            return nil
        }
        let fields = buffer.contextStorage.bytes
        return SKBResult(
            returnValue: value, packet: buffer.data, fields: SKBFields(bytes: fields),
            vlanTag: buffer.vlanTag.map { VLANTag(proto: $0.proto, tci: $0.tci) }, redirect: state.redirect,
            clones: state.clones)
    }
}

extension SKBContext {
    /// The `__sk_buff` fields whose writes `forbiddenWrites(of:)` checks: those some program
    /// type may write and no helper changes.
    public static let checkedFields = [
        "mark", "priority", "queue_mapping", "tc_index", "cb[0]", "cb[1]", "cb[2]", "cb[3]", "cb[4]", "tc_classid",
    ]

    /// Of `checkedFields`, those a program of `type` may write (`net/core/filter.c`:
    /// `sk_filter_is_valid_access`, `cg_skb_is_valid_access`, `lwt_is_valid_access`,
    /// `tc_cls_act_is_valid_access`, `sk_skb_is_valid_access`); nil for other types.
    public static func writableFields(for type: ProgramType) -> Set<String>? {
        let cb: Set<String> = ["cb[0]", "cb[1]", "cb[2]", "cb[3]", "cb[4]"]
        switch type {
        case .socketFilter: return cb
        case .cgroupSkb, .lwtIn, .lwtOut, .lwtXmit, .lwtSeg6Local: return cb.union(["mark", "priority"])
        case .schedCls, .schedAct: return cb.union(["mark", "priority", "queue_mapping", "tc_index", "tc_classid"])
        case .skSkb: return ["tc_index", "priority"]
        default: return nil
        }
    }

    /// The `checkedFields` the program changed although its type may not write them (the
    /// kernel's verifier refuses such a program; Mimic has none, so it reports them after the
    /// run). Empty when the context was not fitted to a program type.
    public static func forbiddenWrites(of process: MimicCore.Process) -> [String] {
        guard let state = LinuxProcessState.of(process), let check = state.skbWriteCheck,
            let buffer = state.packet, buffer.kind == .skb, let writable = writableFields(for: check.0)
        else { return [] }
        let now = TestRunContext.skbFields(buffer.contextStorage.bytes, names: checkedFields)
        return zip(check.1, now).filter { $0.value != $1.value && !writable.contains($0.name) }.map { $0.0.name }
    }
}

/// A VLAN tag: its protocol (0x8100 or 0x88A8, host order) and tag control information.
public struct VLANTag: Sendable, Equatable {
    public var proto: UInt16
    public var tci: UInt16
    public init(proto: UInt16, tci: UInt16) {
        self.proto = proto
        self.tci = tci
    }
}

/// The fields of a `struct __sk_buff`, decoded.
public struct SKBFields: Sendable, Equatable {
    public var len, pktType, mark, queueMapping: UInt32
    /// `protocol` as stored: the EtherType in network byte order (0x0008 for IPv4 on little-endian).
    public var `protocol`: UInt32
    public var vlanPresent, vlanTCI, vlanProto, priority, ingressIfindex, ifindex, tcIndex: UInt32
    public var cb: [UInt32]
    public var hash, tcClassid, data, dataEnd, napiID, family, remoteIP4, localIP4: UInt32
    public var remoteIP6, localIP6: [UInt32]
    public var remotePort, localPort, dataMeta: UInt32
    public var flowKeys: UInt64
    public var tstamp: UInt64
    public var wireLen, gsoSegs: UInt32
    public var sk: UInt64
    public var gsoSize: UInt32
    public var tstampType: UInt8
    public var hwtstamp: UInt64

    /// Decodes 192 bytes of `struct __sk_buff`.
    public init(bytes b: [UInt8]) {
        let b = b.count >= SKBLayout.size ? b : b + [UInt8](repeating: 0, count: SKBLayout.size - b.count)
        len = get32(b, SKBLayout.len)
        pktType = get32(b, SKBLayout.pktType)
        mark = get32(b, SKBLayout.mark)
        queueMapping = get32(b, SKBLayout.queueMapping)
        `protocol` = get32(b, SKBLayout.protocol)
        vlanPresent = get32(b, SKBLayout.vlanPresent)
        vlanTCI = get32(b, SKBLayout.vlanTCI)
        vlanProto = get32(b, SKBLayout.vlanProto)
        priority = get32(b, SKBLayout.priority)
        ingressIfindex = get32(b, SKBLayout.ingressIfindex)
        ifindex = get32(b, SKBLayout.ifindex)
        tcIndex = get32(b, SKBLayout.tcIndex)
        cb = (0..<5).map { get32(b, SKBLayout.cb + 4 * $0) }
        hash = get32(b, SKBLayout.hash)
        tcClassid = get32(b, SKBLayout.tcClassid)
        data = get32(b, SKBLayout.data)
        dataEnd = get32(b, SKBLayout.dataEnd)
        napiID = get32(b, SKBLayout.napiID)
        family = get32(b, SKBLayout.family)
        remoteIP4 = get32(b, SKBLayout.remoteIP4)
        localIP4 = get32(b, SKBLayout.localIP4)
        remoteIP6 = (0..<4).map { get32(b, SKBLayout.remoteIP6 + 4 * $0) }
        localIP6 = (0..<4).map { get32(b, SKBLayout.localIP6 + 4 * $0) }
        remotePort = get32(b, SKBLayout.remotePort)
        localPort = get32(b, SKBLayout.localPort)
        dataMeta = get32(b, SKBLayout.dataMeta)
        flowKeys = get64(b, SKBLayout.flowKeys)
        tstamp = get64(b, SKBLayout.tstamp)
        wireLen = get32(b, SKBLayout.wireLen)
        gsoSegs = get32(b, SKBLayout.gsoSegs)
        sk = get64(b, SKBLayout.sk)
        gsoSize = get32(b, SKBLayout.gsoSize)
        tstampType = b[SKBLayout.tstampType]
        hwtstamp = get64(b, SKBLayout.hwtstamp)
    }
}

/// The outcome of a tc / socket-filter run.
public struct SKBResult: Sendable, Equatable {
    /// R0 as the program returned it.
    public var returnValue: UInt64
    /// The packet after the run (helpers' changes applied).
    public var packet: [UInt8]
    /// `struct __sk_buff` as the program left it (`mark`, `priority`, `cb`, ...).
    public var fields: SKBFields
    /// The hardware-accelerated VLAN tag `bpf_skb_vlan_push` set, if any.
    public var vlanTag: VLANTag?
    /// Where the last `bpf_redirect` of the run sent the packet; it takes effect when the
    /// action is `TC_ACT_REDIRECT`.
    public var redirect: Redirect?
    /// Copies `bpf_clone_redirect` sent, in call order.
    public var clones: [ClonedPacket]

    /// The tc action, or nil when R0 is not a `TC_ACT_*` value.
    public var action: TCAction? { TCAction(returnValue: returnValue) }

    /// The frame as it would leave the device: `packet` with `vlanTag` inserted after the MAC
    /// addresses (the device inserts a hardware-accelerated tag on transmit).
    public var framedPacket: [UInt8] {
        guard let vlanTag, packet.count >= 12 else { return packet }
        return Array(packet[0..<12]) + [
            UInt8(vlanTag.proto >> 8), UInt8(vlanTag.proto & 0xFF),
            UInt8(vlanTag.tci >> 8), UInt8(vlanTag.tci & 0xFF),
        ] + Array(packet[12...])
    }
}
