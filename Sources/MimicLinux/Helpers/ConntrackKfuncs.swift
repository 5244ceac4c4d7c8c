import MimicCore
import MimicMemory

/// The conntrack kfuncs of `net/netfilter/nf_conntrack_bpf.c` (XDP and tc) against the network's
/// conntrack table (`Network.conntrack`, `Conntrack`):
///
/// - `bpf_xdp_ct_lookup` / `bpf_skb_ct_lookup(ctx, tuple, tuple__sz, opts, opts__sz)`: the entry
///   one of whose directions has the tuple (12 bytes IPv4, 36 IPv6 `struct bpf_sock_tuple`);
///   `opts->dir` is set to the direction found. Failures return NULL with `opts->error`:
///   `-EINVAL` (no tuple; `opts__sz` neither 16 nor the older 12; non-zero `reserved`, or with 12
///   bytes a zone; `netns_id` below -1), `-EPROTO` (`l4proto` neither TCP nor UDP),
///   `-EAFNOSUPPORT` (another tuple size), `-ENONET` (a `netns_id` ≥ 0: the network has no other
///   namespace), `-ENOENT` (no entry). With 16 bytes, `ct_zone_id` selects the zone and a
///   `ct_zone_dir` of 0 is set to 3 (`NF_CT_DEFAULT_ZONE_DIR`), as the kernel writes it back.
/// - `bpf_xdp_ct_alloc` / `bpf_skb_ct_alloc`: a new entry (not yet in the table) of the tuple and
///   its reverse, timeout 10 s, with the same checks; `bpf_ct_insert_entry` puts it in the table
///   (confirmed) and returns a reference to it, or NULL (`-EEXIST`: an entry has one of its
///   tuples), consuming the allocation's reference either way.
/// - `bpf_ct_set_timeout` / `bpf_ct_change_timeout` (milliseconds; the latter `-EPERM` with
///   `IPS_FIXED_TIMEOUT`, `-ETIME` when dying), `bpf_ct_set_status` / `bpf_ct_change_status`
///   (`nf_ct_change_status_common`: changing expected, confirmed or dying, or clearing seen-reply
///   or assured, is `-EBUSY`; only the bits outside `IPS_UNCHANGEABLE_MASK` are set).
/// - `bpf_ct_release`: gives a reference back (NULL is allowed). A run that exits holding one
///   fails, as the verifier refuses such a program ("Unreleased reference").
///
/// The `struct nf_conn` a reference points to is laid out from the target kernel's BTF (the
/// emulator's `kernelBTF`, else the program's own) when it has the struct: `status` and `mark`
/// are filled, and a `mark` the program writes is kept when the reference is released or the
/// entry inserted. Without such a BTF the pointer is to an empty region named after the struct.
enum ConntrackKfuncs {
    static func all(for emulator: LinuxEmulator) -> [Helper] {
        [
            LinuxKfuncs.make("bpf_xdp_ct_lookup") { [weak emulator] call throws(HelperFailure) in
                try lookup(call, emulator, .xdp)
            },
            LinuxKfuncs.make("bpf_skb_ct_lookup") { [weak emulator] call throws(HelperFailure) in
                try lookup(call, emulator, .skb)
            },
            LinuxKfuncs.make("bpf_xdp_ct_alloc") { [weak emulator] call throws(HelperFailure) in
                try alloc(call, emulator, .xdp)
            },
            LinuxKfuncs.make("bpf_skb_ct_alloc") { [weak emulator] call throws(HelperFailure) in
                try alloc(call, emulator, .skb)
            },
            LinuxKfuncs.make("bpf_ct_insert_entry") { [weak emulator] call throws(HelperFailure) in
                try insert(call, emulator)
            },
            LinuxKfuncs.make("bpf_ct_release") { [weak emulator] call throws(HelperFailure) in
                guard call.arg(1) != 0 else { return 0 }
                try release(call, emulator, call.arg(1))
                return 0
            },
            LinuxKfuncs.make("bpf_ct_set_timeout") { [weak emulator] call throws(HelperFailure) in
                try change(call, emulator, allocated: true) { entry in
                    entry.timeout = call.arg32(2) / 1000
                    return 0
                }
            },
            LinuxKfuncs.make("bpf_ct_change_timeout") { [weak emulator] call throws(HelperFailure) in
                try change(call, emulator, allocated: false) { entry in
                    if entry.status & Conntrack.fixedTimeout != 0 { return Errno.notPermitted.r0 }
                    entry.timeout = call.arg32(2) / 1000
                    return entry.status & Conntrack.dying != 0 ? Errno(rawValue: 62).r0 : 0 // ETIME
                }
            },
            LinuxKfuncs.make("bpf_ct_set_status") { [weak emulator] call throws(HelperFailure) in
                try change(call, emulator, allocated: true) { entry in changeStatus(&entry, call.arg32(2)) }
            },
            LinuxKfuncs.make("bpf_ct_change_status") { [weak emulator] call throws(HelperFailure) in
                try change(call, emulator, allocated: false) { entry in changeStatus(&entry, call.arg32(2)) }
            },
            // int bpf_ct_set_nat_info(struct nf_conn___init *nfct, union nf_inet_addr *addr, int port,
            //                         enum nf_nat_manip_type manip)
            LinuxKfuncs.make("bpf_ct_set_nat_info") { [weak emulator] call throws(HelperFailure) in
                let table = try conntrack(emulator, call)
                let address = try call.read(call.arg(2), count: 16)
                return try change(call, emulator, allocated: true) { entry in
                    setNAT(&entry, address: address, port: call.argInt(3), source: call.arg32(4) == 0, table)
                }
            },
        ]
    }

    /// `IPS_SRC_NAT`, `IPS_DST_NAT`, `IPS_SRC_NAT_DONE`, `IPS_DST_NAT_DONE`.
    static let sourceNAT: UInt32 = 1 << 4, destinationNAT: UInt32 = 1 << 5
    static let sourceNATDone: UInt32 = 1 << 7, destinationNATDone: UInt32 = 1 << 8

    /// `bpf_ct_set_nat_info` → `nf_nat_setup_info` (`net/netfilter/nf_nat_core.c`) on an entry not
    /// yet inserted, with a range of one address (`addr`'s first 4 bytes for IPv4) and, when
    /// `port` > 0, one port: a manipulation already set up is `-ENOMEM` (`NF_DROP`); the tuple
    /// as it now looks (the reply's inverse) gets the address, and the port when given
    /// (`source`: `NF_NAT_MANIP_SRC`, else `NF_NAT_MANIP_DST`). Without a port, a source
    /// mapping whose tuple is taken (a table entry answers its reply) moves the source port to
    /// the first free one of its range (1–511, 600–1023 or 1024–65535, by the original port; the
    /// kernel starts at a random offset); a destination keeps its port. When the tuple changed,
    /// the reply direction becomes its inverse and `IPS_SRC_NAT` / `IPS_DST_NAT` is set; either
    /// way the manipulation's `_DONE` bit is.
    static func setNAT(
        _ entry: inout Network.ConntrackEntry, address: [UInt8], port: Int32, source: Bool, _ table: Conntrack
    ) -> UInt64 {
        let done = source ? sourceNATDone : destinationNATDone
        guard entry.status & done == 0 else { return Errno.noMemory.r0 }
        let current = entry.tuple(1).inverted
        var new = current
        let mapped = Array(address.prefix(entry.source.count))
        if source {
            new.source = mapped
            if port > 0 { new.sourcePort = UInt16(truncatingIfNeeded: port) }
        } else {
            new.destination = mapped
            if port > 0 { new.destinationPort = UInt16(truncatingIfNeeded: port) }
        }
        if source, port <= 0, table.taken(reply: new.inverted, transport: entry.transport, zone: entry.zone) {
            let original = current.sourcePort
            let range: ClosedRange<UInt16> = original < 512 ? 1...511 : original < 1024 ? 600...1023 : 1024...65535
            for candidate in range {
                new.sourcePort = candidate
                if !table.taken(reply: new.inverted, transport: entry.transport, zone: entry.zone) { break }
            }
        }
        if new != current {
            let reply = new.inverted
            entry.reply = (reply.source, reply.sourcePort, reply.destination, reply.destinationPort)
            entry.status |= source ? sourceNAT : destinationNAT
        }
        entry.status |= done
        return 0
    }

    /// `nf_ct_change_status_common`.
    static func changeStatus(_ entry: inout Network.ConntrackEntry, _ status: UInt32) -> UInt64 {
        let difference = entry.status ^ status
        if difference & (Conntrack.expected | Conntrack.confirmed | Conntrack.dying) != 0 { return Errno.busy.r0 }
        if difference & Conntrack.seenReply != 0, status & Conntrack.seenReply == 0 { return Errno.busy.r0 }
        if difference & Conntrack.assured != 0, status & Conntrack.assured == 0 { return Errno.busy.r0 }
        entry.status |= status & ~Conntrack.unchangeable
        return 0
    }

    /// What a program's `struct nf_conn` pointer stands for.
    enum Object {
        /// An entry of the table, by index.
        case entry(Int)
        /// An allocated entry not yet inserted (`struct nf_conn___init`).
        case allocated(Network.ConntrackEntry)
    }

    /// The run's conntrack references (in the process's emulator state).
    final class References {
        static let key = EmulatorStateKey<References>()
        var objects: [UInt64: Object] = [:]
        var regions: [UInt64: RegionStorage] = [:]
        var held: [UInt64: Int] = [:]
        /// The offsets of `mark` and `status` in the laid-out struct (nil: not laid out).
        var markOffset: [UInt64: Int] = [:]

        func unreleased() -> String? {
            let open = held.filter { $0.value > 0 }
            guard !open.isEmpty else { return nil }
            return
                "the program exited holding \(open.values.reduce(0, +)) reference\(open.values.reduce(0, +) == 1 ? "" : "s") to a struct nf_conn from a conntrack lookup or allocation; release it with bpf_ct_release (or insert it with bpf_ct_insert_entry) (the kernel's verifier refuses the program: \"Unreleased reference\")"
        }
    }

    static func references(_ call: HelperCall) -> References {
        if let existing = call.process.emulatorState(References.key) { return existing }
        let created = References()
        call.process.setEmulatorState(created, for: References.key)
        let previous = call.process.exitCheck
        call.process.exitCheck = { process in
            previous?(process) ?? process.emulatorState(References.key)?.unreleased()
        }
        return created
    }

    /// The parsed `bpf_ct_opts` and tuple, or the errno the kernel answers.
    struct Request {
        var transport: Network.Socket.TransportProtocol
        var tuple: Conntrack.Tuple
        var zone: UInt16
    }

    /// `__bpf_nf_ct_lookup` / `__bpf_nf_ct_alloc_entry`'s checks, in their order; writes
    /// `ct_zone_dir` back as the kernel does. Nil with `opts` NULL (nothing to report into).
    static func parse(_ call: HelperCall, lookup: Bool) throws(HelperFailure) -> Result<Request, Errno>? {
        let optsAddress = call.arg(4)
        let optsSize = call.arg32(5)
        guard optsAddress != 0 else { return nil }
        guard call.arg(2) != 0 else { return .failure(.invalid) }
        guard optsSize == 16 || optsSize == 12 else { return .failure(.invalid) }
        let opts = try call.read(optsAddress, count: Int(optsSize))
        let zone = UInt16(opts[10]) | UInt16(opts[11]) << 8
        if optsSize == 16 {
            guard opts[13] == 0, opts[14] == 0, opts[15] == 0 else { return .failure(.invalid) }
        } else if zone != 0 {
            return .failure(.invalid)
        }
        let l4proto = opts[8]
        if lookup, l4proto != 6, l4proto != 17 { return .failure(Errno(rawValue: 71)) }
        let netns = Int32(bitPattern: get32(opts, 0))
        guard netns >= -1 else { return .failure(.invalid) }
        guard l4proto == 6 || l4proto == 17 else { return .failure(Errno(rawValue: 71)) }
        let width: Int
        switch call.arg32(3) {
        case 12: width = 4
        case 36: width = 16
        default: return .failure(Errno(rawValue: 97))
        }
        let bytes = try call.read(call.arg(2), count: Int(call.arg32(3)))
        let tuple = Conntrack.Tuple(
            source: Array(bytes[0..<width]), sourcePort: UInt16(bytes[2 * width]) << 8 | UInt16(bytes[2 * width + 1]),
            destination: Array(bytes[width..<2 * width]),
            destinationPort: UInt16(bytes[2 * width + 2]) << 8 | UInt16(bytes[2 * width + 3]))
        guard netns < 0 else { return .failure(Errno(rawValue: 64)) } // ENONET
        if optsSize == 16, opts[12] == 0 { try call.write([3], at: optsAddress + 12) }
        return .success(Request(transport: l4proto == 6 ? .tcp : .udp, tuple: tuple, zone: optsSize == 16 ? zone : 0))
    }

    /// Writes `opts->error`.
    static func fail(_ call: HelperCall, _ errno: Errno) throws(HelperFailure) -> UInt64 {
        if call.arg32(5) >= 8 {
            try call.write(littleEndianBytes(UInt32(bitPattern: -errno.rawValue)), at: call.arg(4) + 4)
        }
        return 0
    }

    static func conntrack(_ emulator: LinuxEmulator?, _ call: HelperCall) throws(HelperFailure) -> Conntrack {
        guard let emulator else { throw .message("\(call.name): the emulator is gone") }
        try emulator.networkState.requireValid(call)
        return emulator.networkState.conntrack
    }

    static func lookup(_ call: HelperCall, _ emulator: LinuxEmulator?, _ kind: PacketBuffer.Kind) throws(HelperFailure)
        -> UInt64
    {
        _ = try call.packet(kind)
        let table = try conntrack(emulator, call)
        guard let parsed = try parse(call, lookup: true) else { return 0 }
        let request: Request
        switch parsed {
        case .failure(let errno): return try fail(call, errno)
        case .success(let value): request = value
        }
        guard let (index, direction) = table.find(request.transport, request.tuple, zone: request.zone) else {
            return try fail(call, .noEntry)
        }
        try call.write([UInt8(direction)], at: call.arg(4) + 9)
        return try object(call, emulator, .entry(index), table)
    }

    static func alloc(_ call: HelperCall, _ emulator: LinuxEmulator?, _ kind: PacketBuffer.Kind) throws(HelperFailure)
        -> UInt64
    {
        _ = try call.packet(kind)
        let table = try conntrack(emulator, call)
        guard let parsed = try parse(call, lookup: false) else { return 0 }
        switch parsed {
        case .failure(let errno): return try fail(call, errno)
        case .success(let request):
            var entry = Network.ConntrackEntry(
                transport: request.transport, source: request.tuple.source, sourcePort: request.tuple.sourcePort,
                destination: request.tuple.destination, destinationPort: request.tuple.destinationPort, status: 0,
                timeout: 10, zone: request.zone)
            entry.reply = nil
            return try object(call, emulator, .allocated(entry), table)
        }
    }

    static func insert(_ call: HelperCall, _ emulator: LinuxEmulator?) throws(HelperFailure) -> UInt64 {
        let table = try conntrack(emulator, call)
        let address = call.arg(1)
        let references = references(call)
        guard case .allocated(var entry)? = references.objects[address] else {
            throw .message(
                "\(call.name): r1 (0x\(String(address, radix: 16))) is not a struct nf_conn___init from bpf_xdp_ct_alloc / bpf_skb_ct_alloc"
            )
        }
        entry.mark = mark(references, address) ?? entry.mark
        try release(call, emulator, address)
        entry.status |= Conntrack.confirmed
        switch table.insert(entry) {
        case .failure: return 0
        case .success(let index): return try object(call, emulator, .entry(index), table)
        }
    }

    /// A new reference to `object`: a `struct nf_conn` region of the run.
    static func object(_ call: HelperCall, _ emulator: LinuxEmulator?, _ object: Object, _ table: Conntrack)
        throws(HelperFailure) -> UInt64
    {
        let references = references(call)
        let entry: Network.ConntrackEntry?
        switch object {
        case .entry(let index): entry = table.entry(index)
        case .allocated(let allocated): entry = allocated
        }
        guard let entry else { throw .message("\(call.name): the conntrack entry is gone") }
        let btf = emulator?.configuration.kernelBTF ?? call.process.program.objectBTF
        var storage = RegionStorage(count: 0)
        var name = "struct nf_conn (no BTF with the struct to lay it out)"
        var markAt: Int?
        if let btf, btf.typeID(named: "nf_conn", kind: .structure) != nil {
            var layout = KernelLayout(btf: btf)
            if let conn = layout.allocate("nf_conn") {
                layout.set(conn, ["status"], Int64(entry.status))
                layout.set(conn, ["mark"], Int64(entry.mark))
                markAt = layout.field(conn.type, ["mark"]).map { conn.offset + $0.offset }
                storage = RegionStorage(bytes: layout.bytes(at: 0))
                name =
                    "struct nf_conn \(Network.endpointText(entry.source, entry.sourcePort)) -> \(Network.endpointText(entry.destination, entry.destinationPort))"
            }
        }
        let address: UInt64
        do {
            address = try call.process.memory.map(storage, name: name, kind: .plain)
        } catch {
            throw .message("cannot map a struct nf_conn: \(error)")
        }
        references.objects[address] = object
        references.regions[address] = storage
        if let markAt { references.markOffset[address] = markAt }
        references.held[address, default: 0] += 1
        return address
    }

    /// The `mark` the program left in the struct at `address` (nil: not laid out).
    static func mark(_ references: References, _ address: UInt64) -> UInt32? {
        guard let offset = references.markOffset[address], let storage = references.regions[address],
            offset + 4 <= storage.count
        else { return nil }
        return get32(storage.bytes(in: offset..<offset + 4), 0)
    }

    static func release(_ call: HelperCall, _ emulator: LinuxEmulator?, _ address: UInt64) throws(HelperFailure) {
        let references = references(call)
        guard let count = references.held[address], count > 0 else {
            throw .message(
                "\(call.name): the program holds no reference to a struct nf_conn at 0x\(String(address, radix: 16))")
        }
        references.held[address] = count - 1
        if case .entry(let index)? = references.objects[address], let mark = mark(references, address),
            let table = emulator?.networkState.conntrack
        {
            table.update(index) { $0.mark = mark }
        }
    }

    /// Applies `body` to the entry behind r1 (an allocation for the `set_` kfuncs, else a table
    /// entry).
    static func change(
        _ call: HelperCall, _ emulator: LinuxEmulator?, allocated: Bool,
        _ body: (inout Network.ConntrackEntry) -> UInt64
    ) throws(HelperFailure) -> UInt64 {
        let references = references(call)
        let address = call.arg(1)
        guard (references.held[address] ?? 0) > 0, let object = references.objects[address] else {
            throw .message(
                "\(call.name): r1 (0x\(String(address, radix: 16))) is not a struct nf_conn the program holds")
        }
        switch object {
        case .allocated(var entry):
            guard allocated else {
                throw .message(
                    "\(call.name) takes an inserted or looked-up struct nf_conn, not a struct nf_conn___init")
            }
            let result = body(&entry)
            references.objects[address] = .allocated(entry)
            return result
        case .entry(let index):
            guard !allocated else {
                throw .message("\(call.name) takes a struct nf_conn___init from bpf_xdp_ct_alloc / bpf_skb_ct_alloc")
            }
            guard let table = emulator?.networkState.conntrack else { throw .message("the emulator is gone") }
            var result: UInt64 = 0
            table.update(index) { result = body(&$0) }
            return result
        }
    }
}
