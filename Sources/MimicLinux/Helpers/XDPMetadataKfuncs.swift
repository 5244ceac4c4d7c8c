import MimicCore
import MimicJSON

/// What the receiving device's driver knows of an XDP packet, which the XDP metadata kfuncs
/// report: the packet's own (`XDPContext.rxMetadata`; the `rx_metadata` object of an `xdp_md`
/// context), else its ingress device's (`Network.Interface.rxMetadata`; `rxMetadata` of an
/// interface in a `--net` description). A member left nil is one the driver has no value for.
public struct XDPRxMetadata: Sendable, Equatable {
    /// The RSS hash and its `enum xdp_rss_hash_type` (`XDP_RSS_TYPE_L4_IPV4_TCP`, ...).
    public var hash: UInt32?
    public var hashType: UInt32 = 0
    /// The hardware receive timestamp, in nanoseconds.
    public var timestamp: UInt64?
    /// The VLAN tag the device stripped: its protocol (`0x8100`, `0x88a8`) and TCI.
    public var vlan: (proto: UInt16, tci: UInt16)?

    public init(
        hash: UInt32? = nil, hashType: UInt32 = 0, timestamp: UInt64? = nil, vlan: (proto: UInt16, tci: UInt16)? = nil
    ) {
        self.hash = hash
        self.hashType = hashType
        self.timestamp = timestamp
        self.vlan = vlan
    }

    public static func == (a: XDPRxMetadata, b: XDPRxMetadata) -> Bool {
        a.hash == b.hash && a.hashType == b.hashType && a.timestamp == b.timestamp && a.vlan?.proto == b.vlan?.proto
            && a.vlan?.tci == b.vlan?.tci
    }

    /// Reads `{"hash": 305419896, "hash_type": 9, "timestamp_ns": 1000, "vlan_proto": 33024,
    /// "vlan_tci": 100}` (every member optional; `vlan_proto` and `vlan_tci` together).
    public init(json field: JSONField) throws(ContextError) {
        try field.object(knownMembers: ["hash", "hash_type", "timestamp_ns", "vlan_proto", "vlan_tci"])
        hash = try field["hash"].optionalInteger(UInt32.self)
        hashType = try field["hash_type"].optionalInteger(UInt32.self) ?? 0
        timestamp = try field["timestamp_ns"].optionalInteger(UInt64.self)
        let proto = try field["vlan_proto"].optionalInteger(UInt16.self)
        let tci = try field["vlan_tci"].optionalInteger(UInt16.self)
        guard (proto == nil) == (tci == nil) else {
            throw field.error("give vlan_proto and vlan_tci together")
        }
        if let proto, let tci { vlan = (proto, tci) }
    }
}

/// The XDP metadata kfuncs (`net/core/xdp.c`): `bpf_xdp_metadata_rx_hash(ctx, *hash, *rss_type)`,
/// `bpf_xdp_metadata_rx_timestamp(ctx, *timestamp)`, `bpf_xdp_metadata_rx_vlan_tag(ctx,
/// *vlan_proto, *vlan_tci)`, which the kernel's verifier takes in device-bound XDP programs only.
/// The metadata is the context's `rxMetadata` when it has one (this packet's, which wins), else
/// that of the network's interface the packet arrived on (`xdp_md.ingress_ifindex`, 0 being
/// loopback). Without either the device's driver does not implement them: `-EOPNOTSUPP`, the
/// kernel's default implementations; with one, a driver that does: 0 and the value, or
/// `-ENODATA` for a member it lacks. `vlan_proto` is written in network byte order (`__be16`).
enum XDPMetadataKfuncs {
    /// `ENODATA`.
    static let noData = Errno(rawValue: 61)

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        let network = emulator.networkState
        @Sendable func metadata(_ call: HelperCall) throws(HelperFailure) -> XDPRxMetadata? {
            let packet = try call.packet(.xdp)
            if let own = call.state?.xdpRxMetadata { return own }
            return network.currentDevice(packet.loadU32(at: 12)).rxMetadata
        }
        return [
            LinuxKfuncs.make("bpf_xdp_metadata_rx_hash") { call throws(HelperFailure) in
                guard let metadata = try metadata(call) else { return Errno.notSupported.r0 }
                guard let hash = metadata.hash else { return noData.r0 }
                try call.write(littleEndianBytes(hash), at: call.arg(2))
                try call.write(littleEndianBytes(metadata.hashType), at: call.arg(3))
                return 0
            },
            LinuxKfuncs.make("bpf_xdp_metadata_rx_timestamp") { call throws(HelperFailure) in
                guard let metadata = try metadata(call) else { return Errno.notSupported.r0 }
                guard let timestamp = metadata.timestamp else { return noData.r0 }
                try call.write(withUnsafeBytes(of: timestamp.littleEndian, Array.init), at: call.arg(2))
                return 0
            },
            LinuxKfuncs.make("bpf_xdp_metadata_rx_vlan_tag") { call throws(HelperFailure) in
                guard let metadata = try metadata(call) else { return Errno.notSupported.r0 }
                guard let vlan = metadata.vlan else { return noData.r0 }
                try call.write([UInt8(vlan.proto >> 8), UInt8(vlan.proto & 0xFF)], at: call.arg(2))
                try call.write([UInt8(vlan.tci & 0xFF), UInt8(vlan.tci >> 8)], at: call.arg(3))
                return 0
            },
        ]
    }
}
