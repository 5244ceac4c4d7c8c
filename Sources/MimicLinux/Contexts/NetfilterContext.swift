import MimicCore
import MimicJSON
import MimicMemory

/// A netfilter program's input (`BPF_PROG_TYPE_NETFILTER`, section `netfilter`; JSON type
/// `bpf_nf_ctx`): a packet at one netfilter hook, as `nf_hook_run_bpf` (net/netfilter/nf_bpf_link.c)
/// and the kernel's test run (`bpf_prog_test_run_nf`, net/bpf/test_run.c) give it.
///
/// - R1 points to a read-only `struct bpf_nf_ctx { const struct nf_hook_state *state; struct
///   sk_buff *skb; }` (16 bytes). `nf_is_valid_access` allows only 8-byte reads of the two
///   pointers; both point to kernel structs, which programs read through their BTF (CO-RE),
///   read-only (`PTR_TO_BTF_ID | PTR_TRUSTED`: "only read is supported").
/// - `struct nf_hook_state` and `struct sk_buff` are laid out from the BTF CO-RE relocations
///   were applied against (the emulator's `kernelBTF`, else the program's own): `state->hook`,
///   `state->pf`, `state->in` / `state->out` (a `struct net_device` with `ifindex`, `name` and
///   `mtu` of the device; which of the two is set follows the hook, as netfilter sets them),
///   `sk`, `net` and `okfn` NULL; `skb->len`, `data_len` 0, `protocol` (network order), `head`,
///   `data`, `mac_header`, `network_header`, `dev`, `mark`. A struct the BTF lacks is an empty
///   region named after it, so a read of it fails naming the struct.
/// - The packet: at `NF_INET_LOCAL_OUT` (the test run's default hook) it is the IP packet
///   itself and `skb->protocol` comes from `pf`; at the other hooks it is an Ethernet frame
///   whose header `eth_type_trans` pulls (`data` is the IP header) and whose EtherType must
///   match `pf`. `bpf_dynptr_from_skb(ctx->skb, ...)` gives a read-only dynptr over the data (a
///   netfilter program may not write packets: `may_access_direct_pkt_data`).
/// - The verdict is R0: `NF_DROP` (0) or `NF_ACCEPT` (1), the only values the kernel's verifier
///   lets a netfilter program return.
public struct NetfilterContext: Context, Sendable {
    /// The netfilter hooks of IPv4 and IPv6 (`enum nf_inet_hooks`).
    public enum Hook: UInt8, Sendable, CaseIterable {
        case preRouting = 0, localIn = 1, forward = 2, localOut = 3, postRouting = 4

        /// The names a context file may use (`NF_INET_PRE_ROUTING` without its prefix, lower
        /// case, or the iptables chain name).
        public var names: [String] {
            switch self {
            case .preRouting: ["pre_routing", "prerouting"]
            case .localIn: ["local_in", "input"]
            case .forward: ["forward"]
            case .localOut: ["local_out", "output"]
            case .postRouting: ["post_routing", "postrouting"]
            }
        }

        /// Whether the hook sees the packet's input device (`state->in`) and output device
        /// (`state->out`).
        var hasInput: Bool { self == .preRouting || self == .localIn || self == .forward }
        var hasOutput: Bool { self == .forward || self == .localOut || self == .postRouting }
    }

    /// `NFPROTO_IPV4` and `NFPROTO_IPV6`, the families a netfilter program attaches to.
    public static let ipv4: UInt8 = 2
    public static let ipv6: UInt8 = 10

    /// The verdicts (`NF_DROP`, `NF_ACCEPT`).
    public static let drop: UInt64 = 0
    public static let accept: UInt64 = 1

    public var name: String
    /// At `localOut` the IP packet; at the other hooks an Ethernet frame.
    public var packet: [UInt8]
    public var hook: Hook
    /// `NFPROTO_IPV4` (2) or `NFPROTO_IPV6` (10).
    public var pf: UInt8
    /// The device the packet passes (`state->in` / `state->out`, `skb->dev`): 1, the loopback
    /// device, as in the kernel's test run.
    public var ifindex: UInt32
    /// `skb->mark`.
    public var mark: UInt32

    public init(
        packet: [UInt8], hook: Hook = .localOut, pf: UInt8 = NetfilterContext.ipv4, ifindex: UInt32 = 1,
        mark: UInt32 = 0, name: String = "bpf_nf_ctx"
    ) {
        self.name = name
        self.packet = packet
        self.hook = hook
        self.pf = pf
        self.ifindex = ifindex
        self.mark = mark
    }

    /// Reads the `ctx` of a `bpf_nf_ctx` context file: `packet`, `hook` (a number 0–4 or a
    /// name: `pre_routing`, `local_in`, `forward`, `local_out` (default), `post_routing`, or
    /// `prerouting`, `input`, `output`, `postrouting`), `pf` (2 / `ipv4`, default, or 10 /
    /// `ipv6`), `ifindex` (default 1), `mark`.
    public init(json ctx: JSONField, name: String) throws(ContextError) {
        try ctx.object(knownMembers: ["packet", "hook", "pf", "ifindex", "mark"])
        let packet = try ctx["packet"].optionalBase64(limit: AddressSpace.lowWindowLimit / 4)
        var hook = Hook.localOut
        let hookField = ctx["hook"]
        if case .string(let text)? = hookField.value {
            guard let found = Hook.allCases.first(where: { $0.names.contains(text.lowercased()) }) else {
                throw hookField.error(
                    "unknown netfilter hook \"\(text)\" (known: \(Hook.allCases.flatMap(\.names).joined(separator: ", ")) or 0-4)"
                )
            }
            hook = found
        } else if let number = try hookField.optionalInteger(UInt8.self) {
            guard let found = Hook(rawValue: number) else {
                throw hookField.error("a netfilter hook is 0-4 (NF_INET_NUMHOOKS is 5), got \(number)")
            }
            hook = found
        }
        var pf = Self.ipv4
        let pfField = ctx["pf"]
        if case .string(let text)? = pfField.value {
            switch text.lowercased() {
            case "ipv4", "nfproto_ipv4": pf = Self.ipv4
            case "ipv6", "nfproto_ipv6": pf = Self.ipv6
            default: throw pfField.error("expected ipv4 (2) or ipv6 (10), got \"\(text)\"")
            }
        } else if let number = try pfField.optionalInteger(UInt8.self) {
            pf = number
        }
        let context = NetfilterContext(
            packet: packet, hook: hook, pf: pf, ifindex: try ctx["ifindex"].optionalInteger(UInt32.self) ?? 1,
            mark: try ctx["mark"].optionalInteger(UInt32.self) ?? 0, name: name)
        if let problem = context.problem {
            throw (problem.field == "packet" ? ctx["packet"] : pfField).error(problem.message)
        }
        self = context
    }

    /// What the kernel's test run refuses in this context (`bpf_prog_test_run_nf`): a family
    /// other than IPv4 / IPv6 (`EINVAL`); a packet shorter than an IPv4 header, or at a hook
    /// other than `localOut` a frame shorter than an Ethernet header and the family's IP header
    /// (`EINVAL`), or whose EtherType is not the family's (`EINVAL`; neither IPv4 nor IPv6:
    /// `EPROTO`). Nil when it runs.
    public var problem: (field: String, message: String)? {
        guard pf == Self.ipv4 || pf == Self.ipv6 else {
            return ("pf", "a netfilter program runs for NFPROTO_IPV4 (2) or NFPROTO_IPV6 (10), not \(pf)")
        }
        guard packet.count >= 20 else {
            return ("packet", "a netfilter packet has at least an IPv4 header (20 bytes), got \(packet.count)")
        }
        guard hook != .localOut else { return nil }
        guard packet.count >= 34 else {
            return (
                "packet",
                "at hook \(hook.names[0]) the packet is an Ethernet frame with an IP header (at least 34 bytes), got \(packet.count) (at local_out it is the IP packet alone)"
            )
        }
        let etherType = SKBContext.etherType(of: packet)
        switch etherType {
        case 0x0800 where pf == Self.ipv4: return nil
        case 0x86DD where pf == Self.ipv6:
            guard packet.count >= 54 else {
                return (
                    "packet", "an IPv6 frame has at least 54 bytes (Ethernet and IPv6 headers), got \(packet.count)"
                )
            }
            return nil
        case 0x0800, 0x86DD:
            return ("packet", "the frame's EtherType 0x\(String(etherType, radix: 16)) is not of family \(pf)")
        default:
            return (
                "packet",
                "the frame's EtherType 0x\(String(etherType, radix: 16)) is neither IPv4 nor IPv6 (the kernel's test run answers EPROTO)"
            )
        }
    }

    public func attach(to process: MimicCore.Process) throws(SetupError) {
        if let problem { throw .message("\(problem.field): \(problem.message)") }
        let pulled = hook == .localOut ? 0 : SKBContext.ethernetHeaderLength
        let etherType: UInt16 =
            hook == .localOut ? (pf == Self.ipv4 ? 0x0800 : 0x86DD) : SKBContext.etherType(of: packet)
        // NET_SKB_PAD + NET_IP_ALIGN (64 + 0 on x86-64) of headroom, as the test run reserves.
        let headroom = 64
        let regionName = "\(name) packet"
        let (storage, base) = try PacketBuffer.map(
            packet, headroom: headroom, tailroom: 0, name: regionName, into: process)
        let emulator = process.vm.emulator as? LinuxEmulator
        let btf = emulator?.configuration.kernelBTF ?? process.program.objectBTF
        let device = emulator?.configuration.network.interfaces.first { $0.ifindex == ifindex }
        let deviceName = device?.name ?? (ifindex == 1 ? "lo" : "if\(ifindex)")
        let deviceMTU = device?.mtu ?? (ifindex == 1 ? 65536 : 1500)

        let deviceAddress = try Self.map(btf, "net_device", into: process) { layout, object in
            layout.set(object, ["ifindex"], Int64(ifindex))
            layout.set(object, ["name"], bytes: Array(deviceName.utf8))
            layout.set(object, ["mtu"], Int64(deviceMTU))
        }
        let stateAddress = try Self.map(btf, "nf_hook_state", into: process) { layout, object in
            layout.set(object, ["hook"], Int64(hook.rawValue))
            layout.set(object, ["pf"], Int64(pf))
            if hook.hasInput { layout.set(object, ["in"], Int64(bitPattern: deviceAddress)) }
            if hook.hasOutput { layout.set(object, ["out"], Int64(bitPattern: deviceAddress)) }
        }
        let dataAddress = base + UInt64(headroom + pulled)
        let skbAddress = try Self.map(btf, "sk_buff", into: process) { layout, object in
            layout.set(object, ["len"], Int64(packet.count - pulled))
            layout.set(object, ["protocol"], Int64(etherType.bigEndian))
            layout.set(object, ["head"], Int64(bitPattern: base))
            layout.set(object, ["data"], Int64(bitPattern: dataAddress))
            layout.set(object, ["tail"], Int64(headroom + packet.count))
            layout.set(object, ["end"], Int64(headroom + packet.count))
            layout.set(object, ["network_header"], Int64(headroom + pulled))
            // eth_type_trans sets the MAC header; a locally made packet has none (~0).
            layout.set(object, ["mac_header"], hook == .localOut ? 0xFFFF : Int64(headroom))
            layout.set(object, ["dev"], Int64(bitPattern: deviceAddress))
            layout.set(object, ["mark"], Int64(mark))
        }
        var context = [UInt8](repeating: 0, count: 16)
        put64(&context, 0, stateAddress)
        put64(&context, 8, skbAddress)
        let contextAddress: UInt64
        do {
            contextAddress = try process.memory.map(RegionStorage(bytes: context), name: "bpf_nf_ctx", kind: .readOnly)
        } catch {
            throw .message("cannot map the bpf_nf_ctx: \(error)")
        }
        // The packet helpers and dynptrs see an sk_buff whose context pointer is the kernel
        // struct (`bpf_dynptr_from_skb(ctx->skb, ...)`); the UAPI view they keep is not mapped.
        let buffer = PacketBuffer(
            kind: .skb, storage: storage, base: base, metaOffset: headroom + pulled, dataOffset: headroom + pulled,
            dataEndOffset: headroom + packet.count, reserved: 0, contextAddress: skbAddress,
            contextStorage: RegionStorage(count: SKBLayout.size), regionName: regionName)
        buffer.protocolType = etherType
        buffer.pulledLength = pulled
        buffer.syncContext(process)
        let state = LinuxProcessState.forContext(process)
        state.packet = buffer
        // A netfilter program may not write the packet: its skb dynptrs are read-only.
        state.skbWriteCheck = (.netfilter, [])
        let program = SocketProgramState(kind: .netfilter)
        program.netfilterHook = (hook, pf)
        state.socketProgram = program
        process.registers[1] = contextAddress
    }

    /// Lays out one `struct name` from `btf`, filled by `fill`, and maps it read-only; without
    /// a BTF that has the struct, an empty region named after it (a read fails naming it).
    static func map(
        _ btf: BTF?, _ name: String, into process: MimicCore.Process,
        fill: (inout KernelLayout, KernelLayout.Object) -> Void
    ) throws(SetupError) -> UInt64 {
        var storage = RegionStorage(count: 0)
        var regionName = "struct \(name) (no BTF with the struct to lay it out: give the kernel's, --btf)"
        if let btf {
            var layout = KernelLayout(btf: btf)
            if let object = layout.allocate(name) {
                fill(&layout, object)
                storage = RegionStorage(bytes: layout.bytes(at: 0))
                regionName = "struct \(name)"
            }
        }
        do {
            return try process.memory.map(storage, name: regionName, kind: .readOnly)
        } catch {
            throw .message("cannot map \(regionName): \(error)")
        }
    }

    /// The outcome of a netfilter run.
    public struct Result: Sendable, Equatable {
        /// R0: `NF_DROP` (0) or `NF_ACCEPT` (1).
        public var returnValue: UInt64
        public var hook: Hook
        public var pf: UInt8
        /// The verdict's name (`NF_DROP`, `NF_ACCEPT`; another value is no verdict the kernel's
        /// verifier allows).
        public var verdict: String { Self.verdictName(returnValue) }

        public static func verdictName(_ r0: UInt64) -> String {
            switch r0 {
            case NetfilterContext.drop: "NF_DROP"
            case NetfilterContext.accept: "NF_ACCEPT"
            default:
                "invalid netfilter verdict \(Int64(bitPattern: r0)) (the kernel's verifier allows only NF_DROP 0 and NF_ACCEPT 1)"
            }
        }
    }

    /// The verdict of an exited netfilter process; nil for another context.
    public static func result(of process: MimicCore.Process) -> Result? {
        guard case .exited(let value) = process.state, let state = LinuxProcessState.of(process),
            state.socketProgram?.kind == .netfilter, let (hook, pf) = state.socketProgram?.netfilterHook
        else { return nil }
        return Result(returnValue: value, hook: hook, pf: pf)
    }
}
