import MimicCore
import MimicJSON

/// The context fields `BPF_PROG_TEST_RUN` takes in `ctx_in` and gives back in `ctx_out`, with
/// the kernel's rules (net/bpf/test_run.c): set them on Mimic's contexts, encode them for the
/// kernel, and read what the program left.
///
/// `__sk_buff` (`convert___skb_to_skb`): `mark`, `priority`, `ingress_ifindex`, `ifindex`,
/// `cb[0]`...`cb[4]`, `tstamp`, `wire_len`, `gso_segs`, `gso_size`, `hwtstamp`; every other field
/// must be zero (the kernel answers `EINVAL`), so `tc_index`, `queue_mapping`, `tc_classid`, ...
/// cannot be given. `wire_len` 0 means the packet's length, else it must be at least that and at
/// most 65536 (`GSO_LEGACY_MAX_SIZE`); `gso_segs` at most 65535 (`GSO_MAX_SEGS`); an `ifindex`
/// above 1 must name a device of the kernel (Mimic has none to check; `ENODEV` in the kernel),
/// and 0 or 1 is the loopback device, index 1.
///
/// `xdp_md` (`xdp_convert_md_to_buff`): `ingress_ifindex` and `rx_queue_index`; a queue needs a
/// device (`rx_queue_index` without `ingress_ifindex` is `EINVAL`), and no device is loopback.
public enum TestRunContext {
    /// One field, by its C name (`mark`, `cb[2]`), and its value.
    public struct Field: Sendable, Equatable {
        public var name: String
        public var value: UInt64

        public init(name: String, value: UInt64) {
            self.name = name
            self.value = value
        }
    }

    /// The `__sk_buff` fields `ctx_in` accepts, in struct order.
    public static let skbInputFields = [
        "mark", "priority", "ingress_ifindex", "ifindex", "cb[0]", "cb[1]", "cb[2]", "cb[3]", "cb[4]",
        "tstamp", "wire_len", "gso_segs", "gso_size", "hwtstamp",
    ]
    /// The `__sk_buff` fields the kernel writes back to `ctx_out` (`convert_skb_to___skb`).
    public static let skbKernelOutputFields = [
        "mark", "priority", "ingress_ifindex", "ifindex", "cb[0]", "cb[1]", "cb[2]", "cb[3]", "cb[4]",
        "tstamp", "wire_len", "gso_segs", "hwtstamp",
    ]
    /// The `__sk_buff` fields Mimic reports after a run: those of `ctx_out` and the others a
    /// program may write (`tc_index`, `tc_classid`, `queue_mapping`).
    public static let skbOutputFields = [
        "mark", "priority", "queue_mapping", "ingress_ifindex", "ifindex", "tc_index",
        "cb[0]", "cb[1]", "cb[2]", "cb[3]", "cb[4]", "tc_classid", "tstamp", "wire_len",
        "gso_segs", "gso_size", "hwtstamp",
    ]
    /// The `xdp_md` fields `ctx_in` accepts (besides `data`/`data_end`, which describe the packet).
    public static let xdpInputFields = ["ingress_ifindex", "rx_queue_index"]

    static let skbOffsets: [String: (offset: Int, size: Int)] = [
        "mark": (SKBLayout.mark, 4), "priority": (SKBLayout.priority, 4), "queue_mapping": (SKBLayout.queueMapping, 4),
        "ingress_ifindex": (SKBLayout.ingressIfindex, 4), "ifindex": (SKBLayout.ifindex, 4),
        "tc_index": (SKBLayout.tcIndex, 4),
        "cb[0]": (SKBLayout.cb, 4), "cb[1]": (SKBLayout.cb + 4, 4), "cb[2]": (SKBLayout.cb + 8, 4),
        "cb[3]": (SKBLayout.cb + 12, 4),
        "cb[4]": (SKBLayout.cb + 16, 4), "tc_classid": (SKBLayout.tcClassid, 4), "tstamp": (SKBLayout.tstamp, 8),
        "wire_len": (SKBLayout.wireLen, 4), "gso_segs": (SKBLayout.gsoSegs, 4), "gso_size": (SKBLayout.gsoSize, 4),
        "hwtstamp": (SKBLayout.hwtstamp, 8),
    ]

    /// Parses `mark=5,cb[0]=1,tstamp=0x10` (decimal or `0x` hexadecimal values).
    public static func parse(_ text: String) throws(ContextError) -> [Field] {
        var fields: [Field] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            let pieces = part.split(separator: "=", maxSplits: 1).map { String($0.filter { $0 != " " }) }
            guard pieces.count == 2, !pieces[0].isEmpty else {
                throw ContextError(path: "", "expected FIELD=VALUE, got '\(part)'")
            }
            let valueText = pieces[1]
            let value =
                valueText.lowercased().hasPrefix("0x") ? UInt64(valueText.dropFirst(2), radix: 16) : UInt64(valueText)
            guard let value else {
                throw ContextError(path: "", "\(pieces[0]): expected a whole number, got '\(valueText)'")
            }
            fields.append(Field(name: pieces[0], value: value))
        }
        return fields
    }

    /// `context` with `fields` set, checked against the kernel's rules. Contexts other than
    /// `xdp_md` and `__sk_buff` take no fields.
    public static func apply(_ fields: [Field], to context: any Context) throws(ContextError) -> any Context {
        guard !fields.isEmpty else { return context }
        if var skb = context as? SKBContext {
            for field in fields { try set(field, on: &skb, path: field.name) }
            try check(skb)
            return skb
        }
        if var xdp = context as? XDPContext {
            for field in fields { try set(field, on: &xdp, path: field.name) }
            try check(xdp)
            return xdp
        }
        throw ContextError(
            path: "",
            "context fields (\(fields.map(\.name).joined(separator: ", "))) apply to xdp_md and sk_buff contexts, not to \(type(of: context))"
        )
    }

    /// Sets one `__sk_buff` field.
    public static func set(_ field: Field, on skb: inout SKBContext, path: String) throws(ContextError) {
        func u32() throws(ContextError) -> UInt32 {
            guard field.value <= UInt64(UInt32.max) else {
                throw ContextError(path: path, "\(field.value) does not fit in 32 bits")
            }
            return UInt32(field.value)
        }
        switch field.name {
        case "mark": skb.mark = try u32()
        case "priority": skb.priority = try u32()
        case "ingress_ifindex": skb.ingressIfindex = try u32()
        case "ifindex": skb.ifindex = max(1, try u32())
        case "tstamp": skb.tstamp = field.value
        case "wire_len": skb.wireLen = try u32() == 0 ? nil : try u32()
        case "gso_segs": skb.gsoSegs = try u32()
        case "gso_size": skb.gsoSize = try u32()
        case "hwtstamp": skb.hwtstamp = field.value
        default:
            if field.name.hasPrefix("cb["), field.name.hasSuffix("]"),
                let index = Int(field.name.dropFirst(3).dropLast()), (0..<5).contains(index)
            {
                skb.cb[index] = try u32()
            } else if skbOffsets[field.name] != nil
                || ["len", "pkt_type", "protocol", "data", "data_end"].contains(field.name)
            {
                throw ContextError(
                    path: path,
                    "the kernel's BPF_PROG_TEST_RUN does not accept __sk_buff.\(field.name) in ctx_in (net/bpf/test_run.c, convert___skb_to_skb: EINVAL); it accepts \(skbInputFields.joined(separator: ", "))"
                )
            } else {
                throw ContextError(
                    path: path,
                    "__sk_buff has no settable field '\(field.name)'; ctx_in accepts \(skbInputFields.joined(separator: ", "))"
                )
            }
        }
    }

    /// Sets one `xdp_md` field.
    public static func set(_ field: Field, on xdp: inout XDPContext, path: String) throws(ContextError) {
        guard field.value <= UInt64(UInt32.max) else {
            throw ContextError(path: path, "\(field.value) does not fit in 32 bits")
        }
        switch field.name {
        case "ingress_ifindex": xdp.ingressIfindex = field.value == 0 ? 1 : UInt32(field.value)
        case "rx_queue_index": xdp.rxQueueIndex = UInt32(field.value)
        case "egress_ifindex":
            throw ContextError(
                path: path,
                "the kernel's BPF_PROG_TEST_RUN refuses a nonzero xdp_md.egress_ifindex in ctx_in (xdp_convert_md_to_buff: EINVAL)"
            )
        default:
            throw ContextError(
                path: path,
                "xdp_md has no settable field '\(field.name)'; ctx_in accepts \(xdpInputFields.joined(separator: ", "))"
            )
        }
    }

    /// The kernel's checks of an `__sk_buff` `ctx_in` that Mimic can make.
    public static func check(_ skb: SKBContext) throws(ContextError) {
        if let wireLen = skb.wireLen {
            let length =
                skb.dataStart == .network
                ? max(0, skb.packet.count - SKBContext.ethernetHeaderLength) : skb.packet.count
            guard Int(wireLen) >= length, wireLen <= 65536 else {
                throw ContextError(
                    path: "wire_len",
                    "\(wireLen) must be 0 (the packet's length) or from the packet's length \(length) to 65536 (the kernel's test run: EINVAL)"
                )
            }
        }
        guard skb.gsoSegs <= 65535 else {
            throw ContextError(
                path: "gso_segs", "\(skb.gsoSegs) exceeds GSO_MAX_SEGS 65535 (the kernel's test run: EINVAL)")
        }
    }

    /// The kernel's checks of an `xdp_md` `ctx_in` that Mimic can make.
    public static func check(_ xdp: XDPContext) throws(ContextError) {
        guard xdp.egressIfindex == 0 else {
            throw ContextError(
                path: "egress_ifindex", "the kernel's test run refuses a nonzero egress_ifindex (EINVAL)")
        }
    }

    /// Reads the `ctx_in` fields a context file's `ctx` object gives by their C names
    /// (`"mark": 5`, `"cb": [1, 2]`, `"wire_len": 100`), for `sk_buff` contexts.
    static func read(_ ctx: JSONField, into skb: inout SKBContext) throws(ContextError) {
        for name in skbInputFields where !name.hasPrefix("cb[") {
            guard let value = try ctx[name].optionalInteger(UInt64.self) else { continue }
            try set(Field(name: name, value: value), on: &skb, path: ctx[name].path)
        }
        for name in ["tc_index", "tc_classid", "queue_mapping"] where !ctx[name].isMissing {
            try set(Field(name: name, value: 0), on: &skb, path: ctx[name].path)
        }
        let cb = try ctx["cb"].optionalElements()
        guard cb.count <= 5 else { throw ctx["cb"].error("__sk_buff has 5 cb words, got \(cb.count)") }
        for (index, word) in cb.enumerated() {
            try set(Field(name: "cb[\(index)]", value: try word.integer(UInt64.self)), on: &skb, path: word.path)
        }
        do {
            try check(skb)
        } catch {
            throw ContextError(path: ctx.path.isEmpty ? error.path : "\(ctx.path).\(error.path)", error.message)
        }
    }

    /// Reads `ingress_ifindex` and `rx_queue_index` of an `xdp_md` context file's `ctx` (the
    /// Go mimic's `ingress_ifidx` and `rx_queue_idx` are read too).
    static func read(_ ctx: JSONField, into xdp: inout XDPContext) throws(ContextError) {
        for name in xdpInputFields {
            guard let value = try ctx[name].optionalInteger(UInt64.self) else { continue }
            try set(Field(name: name, value: value), on: &xdp, path: ctx[name].path)
        }
        if xdp.egressIfindex != 0 {
            throw ctx["egress_ifidx"].error("the kernel's test run refuses a nonzero egress_ifindex (EINVAL)")
        }
    }

    /// The `ctx_in` bytes the kernel's test run takes for `context`: a 192-byte `__sk_buff`
    /// with the settable fields, or a 24-byte `xdp_md` (`data` 0, `data_end` the packet's
    /// length). Nil for other contexts.
    public static func kernelInput(for context: any Context) -> [UInt8]? {
        if let skb = context as? SKBContext {
            var bytes = [UInt8](repeating: 0, count: SKBLayout.size)
            put32(&bytes, SKBLayout.mark, skb.mark)
            put32(&bytes, SKBLayout.priority, skb.priority)
            put32(&bytes, SKBLayout.ingressIfindex, skb.ingressIfindex)
            put32(&bytes, SKBLayout.ifindex, skb.ifindex)
            for (i, word) in skb.cb.prefix(5).enumerated() { put32(&bytes, SKBLayout.cb + 4 * i, word) }
            put64(&bytes, SKBLayout.tstamp, skb.tstamp)
            put32(&bytes, SKBLayout.wireLen, skb.wireLen ?? 0)
            put32(&bytes, SKBLayout.gsoSegs, skb.gsoSegs)
            put32(&bytes, SKBLayout.gsoSize, skb.gsoSize)
            put64(&bytes, SKBLayout.hwtstamp, skb.hwtstamp)
            return bytes
        }
        if let xdp = context as? XDPContext {
            var bytes = [UInt8](repeating: 0, count: 24)
            put32(&bytes, 4, UInt32(truncatingIfNeeded: xdp.packet.count))
            put32(&bytes, 12, xdp.ingressIfindex)
            put32(&bytes, 16, xdp.rxQueueIndex)
            return bytes
        }
        return nil
    }

    /// `fields` of a `__sk_buff`'s bytes (192; shorter input reads as zeros), by name, in order.
    public static func skbFields(_ bytes: [UInt8], names: [String] = skbOutputFields) -> [Field] {
        let padded =
            bytes.count >= SKBLayout.size ? bytes : bytes + [UInt8](repeating: 0, count: SKBLayout.size - bytes.count)
        return names.compactMap { name in
            guard let (offset, size) = skbOffsets[name] else { return nil }
            return Field(name: name, value: size == 8 ? get64(padded, offset) : UInt64(get32(padded, offset)))
        }
    }

    /// The context as the program left it: the `__sk_buff` fields of `skbOutputFields`, or the
    /// `xdp_md` device fields. Nil when the process has no packet context.
    public static func output(of process: MimicCore.Process) -> [Field]? {
        guard let state = LinuxProcessState.of(process) else { return nil }
        // Socket and cgroup contexts, and a flow dissector's keys: the struct's fields.
        if let record = state.contextRecord { return record.values }
        guard let buffer = state.packet else { return nil }
        let bytes = buffer.contextStorage.bytes
        switch buffer.kind {
        case .skb:
            return skbFields(bytes)
        case .xdp:
            let padded = bytes + [UInt8](repeating: 0, count: max(0, 24 - bytes.count))
            return [
                Field(name: "ingress_ifindex", value: UInt64(get32(padded, 12))),
                Field(name: "rx_queue_index", value: UInt64(get32(padded, 16))),
            ]
        }
    }
}
