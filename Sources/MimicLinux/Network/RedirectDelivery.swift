import MimicCore

/// Where one copy of a frame an XDP program redirected through a map ended up, after the
/// program of the map entry (if it has one) ran on it: what the kernel does when the driver
/// flushes its redirect queues (`dev_map_bpf_prog_run`, `cpu_map_bpf_prog_run_xdp`).
public struct RedirectDelivery: Sendable, Equatable, CustomStringConvertible {
    /// Where the copy went.
    public enum Target: Sendable, Equatable, CustomStringConvertible {
        /// Transmitted out of the interface (a devmap entry).
        case interface(UInt32)
        /// Passed to the network stack on the CPU (a cpumap entry).
        case cpu(UInt32)
        /// To the AF_XDP socket of an xskmap entry.
        case socket(map: String, key: UInt32)
        /// Dropped by the kernel: the entry program's verdict, or why the frame could not go.
        case dropped(String)
        /// An entry program failed in Mimic (a fault, the instruction budget): the message.
        case failed(String)

        public var description: String {
            switch self {
            case .interface(let ifindex): "ifindex \(ifindex)"
            case .cpu(let cpu): "CPU \(cpu)"
            case .socket(let map, let key): "AF_XDP socket \(map)[\(key)]"
            case .dropped(let why): "dropped (\(why))"
            case .failed(let why): "failed (\(why))"
            }
        }
    }

    /// One entry program run on the copy's way.
    public struct EntryRun: Sendable, Equatable {
        /// The map and key of the entry.
        public var map: String
        public var key: UInt32
        /// The entry's program and what it returned.
        public var program: String
        public var returnValue: UInt64
        /// The program's `bpf_trace_printk` lines.
        public var trace: [String]
    }

    public var target: Target
    /// The frame as it leaves (as the entry programs left it), from the Ethernet header.
    public var packet: [UInt8]
    /// The entry programs that ran on the copy, in order (a cpumap program that redirects again
    /// is followed by the next entry's).
    public var runs: [EntryRun]

    public init(target: Target, packet: [UInt8], runs: [EntryRun]) {
        self.target = target
        self.packet = packet
        self.runs = runs
    }

    public var description: String {
        let programs = runs.map { "\($0.map)[\($0.key)] \($0.program) returned \($0.returnValue)" }
        return "\(target)" + (programs.isEmpty ? "" : " after " + programs.joined(separator: ", "))
    }
}

extension LinuxEmulator {
    /// The size of the kernel's `struct xdp_frame`, which a redirected frame's headroom holds.
    static let xdpFrameSize = 40
    /// How many redirects through entry programs one frame may take (a cpumap program may
    /// redirect again); past it the frame is dropped.
    static let maxRedirectHops = 8

    /// Where the frame of an XDP run that returned `XDP_REDIRECT` with a map target goes: the
    /// entry of the devmap, devmap_hash, cpumap or xskmap `bpf_redirect_map` chose (every entry of
    /// a `BPF_F_BROADCAST`, but the ingress interface with `BPF_F_EXCLUDE_INGRESS`), each copy
    /// after the entry's program ran on it as the kernel runs it:
    ///
    /// - a devmap entry's program (`BPF_XDP_DEVMAP`) sees `ingress_ifindex` of the receiving
    ///   device, `rx_queue_index` 0 and `egress_ifindex` of the entry's device; `XDP_PASS`
    ///   transmits the frame as it left it, any other verdict drops it (`dev_map_bpf_prog_run`);
    /// - a cpumap entry's program (`BPF_XDP_CPUMAP`) runs on the entry's CPU with
    ///   `ingress_ifindex` of the receiving device and `rx_queue_index` / `egress_ifindex` 0;
    ///   `XDP_PASS` hands the frame to that CPU's stack, `XDP_REDIRECT` redirects it again (to its
    ///   own redirect target), anything else drops it (`cpu_map_bpf_prog_run_xdp`).
    ///
    /// The frame keeps its metadata and headroom (the kernel's `xdp_frame` takes 40 bytes of it;
    /// a frame with less is dropped, as `xdp_convert_buff_to_frame` fails). A devmap entry whose
    /// device the network describes drops frames longer than its MTU + 18 (`xdp_ok_fwd_dev`).
    /// Nil when `process` did not leave a map redirect of an XDP packet.
    public func deliver(redirectOf process: MimicCore.Process) -> [RedirectDelivery]? {
        guard let state = LinuxProcessState.of(process), case .map(let target)? = state.redirect,
            let buffer = state.packet, buffer.kind == .xdp
        else { return nil }
        let frame = RedirectedFrame(
            data: buffer.data, metadata: buffer.metadata, headroom: buffer.metaOffset, tailroom: buffer.tailroom,
            ingressIfindex: buffer.loadU32(at: 12))
        return deliver(target, frame: frame, runs: [], hops: 0)
    }

    /// A frame on its way through redirect maps.
    struct RedirectedFrame {
        var data: [UInt8]
        var metadata: [UInt8]
        /// Bytes before the metadata (the frame's `xdp_frame` lives in them).
        var headroom: Int
        var tailroom: Int
        var ingressIfindex: UInt32
    }

    private func deliver(_ target: MapRedirect, frame: RedirectedFrame, runs: [RedirectDelivery.EntryRun], hops: Int)
        -> [RedirectDelivery]
    {
        func drop(_ why: String) -> [RedirectDelivery] {
            [RedirectDelivery(target: .dropped(why), packet: frame.data, runs: runs)]
        }
        guard frame.headroom >= Self.xdpFrameSize else {
            return drop("headroom below the 40 bytes of struct xdp_frame")
        }
        guard hops < Self.maxRedirectHops else { return drop("more than \(Self.maxRedirectHops) redirects") }
        let map = self.map(named: target.mapName) as? RedirectMap
        switch target.mapType {
        case .xskMap:
            return [RedirectDelivery(target: .socket(map: target.mapName, key: target.key), packet: frame.data, runs: runs)]
        case .cpuMap:
            guard let program = map?.program(forKey: target.key) else {
                return [RedirectDelivery(target: .cpu(target.key), packet: frame.data, runs: runs)]
            }
            return runCPUMapProgram(program, target: target, frame: frame, runs: runs, hops: hops)
        default:
            let keys = target.broadcastKeys.isEmpty ? [target.key] : target.broadcastKeys
            var deliveries: [RedirectDelivery] = []
            for key in keys {
                guard let value = target.broadcastKeys.isEmpty ? target.value : map?.target(forKey: key),
                    value.count >= 4
                else { continue }
                let ifindex = littleEndianUInt32(value)
                if !target.broadcastKeys.isEmpty, target.excludeIngress, ifindex == frame.ingressIfindex { continue }
                if let device = networkState.interface(ifindex), frame.data.count > device.mtu + 18 {
                    deliveries.append(
                        RedirectDelivery(
                            target: .dropped("\(frame.data.count) bytes exceed \(device.name)'s MTU \(device.mtu) + 18"),
                            packet: frame.data, runs: runs))
                    continue
                }
                guard let program = map?.program(forKey: key) else {
                    deliveries.append(RedirectDelivery(target: .interface(ifindex), packet: frame.data, runs: runs))
                    continue
                }
                deliveries.append(
                    runDevMapProgram(program, map: target.mapName, key: key, egress: ifindex, frame: frame, runs: runs))
            }
            // dev_map_enqueue_multi: no entry left frees the frame.
            return deliveries.isEmpty ? drop("the broadcast reached no entry") : deliveries
        }
    }

    /// Runs a devmap entry's program on a copy of the frame.
    private func runDevMapProgram(
        _ program: Program, map: String, key: UInt32, egress: UInt32, frame: RedirectedFrame,
        runs: [RedirectDelivery.EntryRun]
    ) -> RedirectDelivery {
        switch run(program, on: frame, ingress: frame.ingressIfindex, egress: egress, cpu: 0) {
        case .failure(let message):
            return RedirectDelivery(target: .failed("\(map)[\(key)] program \(program.name): \(message)"), packet: frame.data, runs: runs)
        case .success(let (r0, data, trace, _)):
            let allRuns = runs + [.init(map: map, key: key, program: program.name, returnValue: r0, trace: trace)]
            guard XDPAction(returnValue: r0) == .pass else {
                return RedirectDelivery(target: .dropped(verdictName(r0) + " from the devmap program"), packet: data, runs: allRuns)
            }
            return RedirectDelivery(target: .interface(egress), packet: data, runs: allRuns)
        }
    }

    /// Runs a cpumap entry's program on the frame, on the entry's CPU.
    private func runCPUMapProgram(
        _ program: Program, target: MapRedirect, frame: RedirectedFrame, runs: [RedirectDelivery.EntryRun], hops: Int
    ) -> [RedirectDelivery] {
        switch run(program, on: frame, ingress: frame.ingressIfindex, egress: 0, cpu: Int(target.key)) {
        case .failure(let message):
            return [
                RedirectDelivery(
                    target: .failed("\(target.mapName)[\(target.key)] program \(program.name): \(message)"),
                    packet: frame.data, runs: runs)
            ]
        case .success(let (r0, data, trace, after)):
            let allRuns =
                runs + [.init(map: target.mapName, key: target.key, program: program.name, returnValue: r0, trace: trace)]
            switch XDPAction(returnValue: r0) {
            case .pass:
                return [RedirectDelivery(target: .cpu(target.key), packet: data, runs: allRuns)]
            case .redirect:
                // xdp_do_redirect from the cpumap's kthread: the program's own redirect target.
                switch after.redirect {
                case .map(let next)?:
                    return deliver(next, frame: after.frame, runs: allRuns, hops: hops + 1)
                case .interface(let ifindex, _)?:
                    return [RedirectDelivery(target: .interface(ifindex), packet: data, runs: allRuns)]
                case nil:
                    return [RedirectDelivery(target: .dropped("XDP_REDIRECT without a target"), packet: data, runs: allRuns)]
                }
            default:
                return [
                    RedirectDelivery(
                        target: .dropped(verdictName(r0) + " from the cpumap program"), packet: data, runs: allRuns)
                ]
            }
        }
    }

    private func verdictName(_ r0: UInt64) -> String {
        XDPAction(returnValue: r0)?.name ?? "verdict \(r0), no XDP action"
    }

    /// What an entry program's run left.
    private struct AfterRun {
        var redirect: Redirect?
        var frame: RedirectedFrame
    }

    /// Runs `program` on a fresh process with `frame` as its `xdp_md`.
    private func run(_ program: Program, on frame: RedirectedFrame, ingress: UInt32, egress: UInt32, cpu: Int)
        -> Result<(UInt64, [UInt8], [String], AfterRun), Failure>
    {
        let context = XDPFrameContext(frame: frame, egressIfindex: egress)
        do {
            let process = try program.vm.makeProcess(for: program, context: context, vCPU: cpu)
            let r0 = try process.run(instructionLimit: UInt64(program.vm.configuration.maxInstructions) * 4)
            guard let state = LinuxProcessState.of(process), let buffer = state.packet else {
                return .failure(Failure("the program's packet is gone"))
            }
            let after = AfterRun(
                redirect: state.redirect,
                frame: RedirectedFrame(
                    data: buffer.data, metadata: buffer.metadata, headroom: buffer.metaOffset,
                    tailroom: buffer.tailroom, ingressIfindex: frame.ingressIfindex))
            return .success((r0, buffer.data, state.traceOutput, after))
        } catch {
            return .failure(Failure("\(error)"))
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}

/// The `xdp_md` of a devmap or cpumap entry program: the redirected frame with its metadata,
/// headroom and tailroom, `rx_queue_index` 0.
struct XDPFrameContext: Context {
    var frame: LinuxEmulator.RedirectedFrame
    var egressIfindex: UInt32

    func attach(to process: MimicCore.Process) throws(SetupError) {
        let context = XDPContext(
            packet: frame.metadata + frame.data, headroom: frame.headroom, tailroom: frame.tailroom,
            ingressIfindex: frame.ingressIfindex, rxQueueIndex: 0, egressIfindex: egressIfindex)
        try context.attach(to: process)
        guard let buffer = LinuxProcessState.of(process)?.packet else {
            throw .message("the xdp_md context did not attach")
        }
        buffer.dataOffset += frame.metadata.count
        buffer.syncContext(process)
    }
}
