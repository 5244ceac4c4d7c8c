import MimicCore
import MimicJSON
import Synchronization

extension Network {
    /// A connection tracking entry (`struct nf_conn`) of the namespace: what the conntrack kfuncs
    /// (`bpf_xdp_ct_lookup`, `bpf_skb_ct_lookup`, ...) find.
    public struct ConntrackEntry: Sendable, Equatable {
        /// TCP or UDP (the kfuncs track nothing else).
        public var transport: Socket.TransportProtocol
        /// The original direction's tuple: addresses of 4 or 16 bytes, ports in host order.
        public var source: [UInt8]
        public var sourcePort: UInt16
        public var destination: [UInt8]
        public var destinationPort: UInt16
        /// The reply direction's tuple (source first); nil: the original reversed (no NAT).
        public var reply: (source: [UInt8], sourcePort: UInt16, destination: [UInt8], destinationPort: UInt16)?
        /// `ct->mark`.
        public var mark: UInt32
        /// `ct->status`, the `IPS_*` bits (default `IPS_CONFIRMED`, 8).
        public var status: UInt32
        /// Seconds until the entry expires.
        public var timeout: UInt32
        /// The conntrack zone (default 0).
        public var zone: UInt16

        public init(
            transport: Socket.TransportProtocol, source: [UInt8], sourcePort: UInt16, destination: [UInt8],
            destinationPort: UInt16, mark: UInt32 = 0, status: UInt32 = Conntrack.confirmed, timeout: UInt32 = 120,
            zone: UInt16 = 0
        ) {
            self.transport = transport
            self.source = source
            self.sourcePort = sourcePort
            self.destination = destination
            self.destinationPort = destinationPort
            self.mark = mark
            self.status = status
            self.timeout = timeout
            self.zone = zone
        }

        /// The tuple of `direction` (0 original, 1 reply).
        func tuple(_ direction: Int) -> Conntrack.Tuple {
            if direction == 0 {
                return Conntrack.Tuple(
                    source: source, sourcePort: sourcePort, destination: destination, destinationPort: destinationPort)
            }
            if let reply {
                return Conntrack.Tuple(
                    source: reply.source, sourcePort: reply.sourcePort, destination: reply.destination,
                    destinationPort: reply.destinationPort)
            }
            return Conntrack.Tuple(
                source: destination, sourcePort: destinationPort, destination: source, destinationPort: sourcePort)
        }

        public static func == (a: ConntrackEntry, b: ConntrackEntry) -> Bool {
            a.transport == b.transport && a.tuple(0) == b.tuple(0) && a.tuple(1) == b.tuple(1) && a.mark == b.mark
                && a.status == b.status && a.timeout == b.timeout && a.zone == b.zone
        }
    }

    /// `{"protocol": "tcp", "source": "10.0.0.2:40000", "destination": "10.0.0.1:80",
    /// "replySource": ..., "replyDestination": ..., "mark": 0, "status": 8, "timeout": 120,
    /// "zone": 0}`.
    static func conntrackEntry(_ item: JSONField) throws(JSONError) -> ConntrackEntry {
        try item.object(knownMembers: [
            "protocol", "source", "destination", "replySource", "replyDestination", "mark", "status", "timeout", "zone",
        ])
        let text = try item["protocol"].string()
        guard let transport = Socket.TransportProtocol(rawValue: text) else {
            throw item["protocol"].error("expected \"tcp\" or \"udp\", got \"\(text)\"")
        }
        let (source, sourcePort) = try endpoint(item["source"])
        let (destination, destinationPort) = try endpoint(item["destination"])
        guard destination.count == source.count else {
            throw item["destination"].error("not of the source address's family")
        }
        var entry = ConntrackEntry(
            transport: transport, source: source, sourcePort: sourcePort, destination: destination,
            destinationPort: destinationPort)
        if !item["replySource"].isMissing || !item["replyDestination"].isMissing {
            let (replySource, replySourcePort) = try endpoint(item["replySource"])
            let (replyDestination, replyDestinationPort) = try endpoint(item["replyDestination"])
            guard replySource.count == source.count, replyDestination.count == source.count else {
                throw item["replySource"].error("the reply tuple is not of the original's family")
            }
            entry.reply = (replySource, replySourcePort, replyDestination, replyDestinationPort)
        }
        entry.mark = try item["mark"].optionalInteger(UInt32.self) ?? 0
        entry.status = try item["status"].optionalInteger(UInt32.self) ?? Conntrack.confirmed
        entry.timeout = try item["timeout"].optionalInteger(UInt32.self) ?? 120
        entry.zone = try item["zone"].optionalInteger(UInt16.self) ?? 0
        return entry
    }
}

/// The namespace's conntrack table as the conntrack kfuncs change it: the network's entries and
/// those programs inserted (`bpf_ct_insert_entry`), shared by every run of the emulator as the
/// kernel's table is.
public final class Conntrack: Sendable {
    /// `IPS_*` status bits.
    public static let confirmed: UInt32 = 1 << 3
    static let expected: UInt32 = 1 << 0
    static let seenReply: UInt32 = 1 << 1
    static let assured: UInt32 = 1 << 2
    static let dying: UInt32 = 1 << 9
    static let fixedTimeout: UInt32 = 1 << 10
    /// `IPS_UNCHANGEABLE_MASK`: NAT bits, expected, confirmed, dying, seen-reply, assured,
    /// template, NAT clash, helper, offload, hardware offload.
    static let unchangeable: UInt32 = 0x1B0 | 0x1 | 0x8 | 0x200 | 0x2 | 0x4 | 0x800 | 0x1000 | 0x2000 | 0x4000 | 0x8000

    /// One direction's tuple.
    struct Tuple: Equatable {
        var source: [UInt8]
        var sourcePort: UInt16
        var destination: [UInt8]
        var destinationPort: UInt16

        /// The other direction's tuple (`nf_ct_invert_tuple`).
        var inverted: Tuple {
            Tuple(source: destination, sourcePort: destinationPort, destination: source, destinationPort: sourcePort)
        }
    }

    private let table: Mutex<[Network.ConntrackEntry]>

    init(_ entries: [Network.ConntrackEntry]) { table = Mutex(entries) }

    /// Every entry now, inserted ones last.
    public var entries: [Network.ConntrackEntry] { table.withLock { $0 } }

    /// The entry and direction whose tuple is `tuple` in `zone` (`nf_conntrack_find_get`).
    func find(_ transport: Network.Socket.TransportProtocol, _ tuple: Tuple, zone: UInt16) -> (Int, Int)? {
        table.withLock { entries in
            for (index, entry) in entries.enumerated() where entry.transport == transport && entry.zone == zone {
                if entry.tuple(0) == tuple { return (index, 0) }
                if entry.tuple(1) == tuple { return (index, 1) }
            }
            return nil
        }
    }

    /// Inserts `entry` unless an entry of its zone has either of its tuples (`-EEXIST`, as
    /// `nf_conntrack_hash_check_insert`); returns its index.
    func insert(_ entry: Network.ConntrackEntry) -> Result<Int, Errno> {
        table.withLock { entries in
            for other in entries where other.transport == entry.transport && other.zone == entry.zone {
                for direction in 0...1
                where other.tuple(0) == entry.tuple(direction) || other.tuple(1) == entry.tuple(direction) {
                    return .failure(.exists)
                }
            }
            entries.append(entry)
            return .success(entries.count - 1)
        }
    }

    /// Whether an entry of the table has `reply` as its reply tuple (`nf_nat_used_tuple`:
    /// `nf_conntrack_tuple_taken` of the inverse of a NAT's new tuple).
    func taken(reply: Tuple, transport: Network.Socket.TransportProtocol, zone: UInt16) -> Bool {
        table.withLock { entries in
            entries.contains { $0.transport == transport && $0.zone == zone && $0.tuple(1) == reply }
        }
    }

    /// The entry at `index`.
    func entry(_ index: Int) -> Network.ConntrackEntry? {
        table.withLock { $0.indices.contains(index) ? $0[index] : nil }
    }

    /// Changes the entry at `index`.
    func update(_ index: Int, _ change: (inout Network.ConntrackEntry) -> Void) {
        table.withLock { entries in if entries.indices.contains(index) { change(&entries[index]) } }
    }
}
