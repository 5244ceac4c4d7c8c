import Dispatch
import MimicCore
import MimicLinux
import MimicPcap

/// What one packet's run produced: what `PcapRun` reports of it, in capture order.
///
/// Kept small and cheap to copy for the common packet (a verdict and one destination without a
/// parameter): only trivial fields and one reference, so a copy is a few moves and a retain of
/// nil, not a value-witness call. The lists a run rarely fills, a failure's message and a
/// destination with a parameter live in `details`, allocated only when one is set. `--out`
/// records are not part of an outcome: the runner appends them to a writer as it goes.
struct PacketOutcome {
    /// R0, or nil when the run failed (`error` says why).
    var r0: UInt64?
    var instructions: UInt64
    /// Whether the program ran: false for a packet its hook does not see (an sk_lookup
    /// program's packet that is not looked up, which goes on as `pass`).
    var ran = true
    /// Whether the packet left alive differing from the packet that came in.
    var modified = false
    /// `destination` when it is one of `PacketTally.plainDestinations` (its index), else -1.
    private(set) var plainDestination: Int8 = -1
    private var details: Details?

    /// The lists of an outcome, rarely filled.
    final class Details {
        var error: String?
        var destination: PacketDestination?
        var trace: [String] = []
        var warnings: [String] = []
        var events: [Session.Event] = []
        var deliveries: [Delivery] = []
    }

    init(r0: UInt64?, error: String? = nil, instructions: UInt64) {
        self.r0 = r0
        self.instructions = instructions
        if let error { self.error = error }
    }

    private mutating func withDetails(_ change: (Details) -> Void) {
        if details == nil { details = Details() }
        if let details { change(details) }
    }

    /// Where the packet went when that is one destination and its bytes are not kept (the
    /// common case, counted without a `Delivery`); otherwise `deliveries` lists them.
    var destination: PacketDestination? {
        get { plainDestination >= 0 ? PacketTally.plainDestinations[Int(plainDestination)] : details?.destination }
        set {
            if let newValue, let index = PacketTally.plainIndex(newValue) {
                plainDestination = Int8(index)
                if details?.destination != nil { details?.destination = nil }
            } else {
                plainDestination = -1
                if newValue != nil || details != nil { withDetails { $0.destination = newValue } }
            }
        }
    }
    var error: String? {
        get { details?.error }
        set { if newValue != nil || details != nil { withDetails { $0.error = newValue } } }
    }
    var trace: [String] {
        get { details?.trace ?? [] }
        set { if !newValue.isEmpty || details != nil { withDetails { $0.trace = newValue } } }
    }
    var warnings: [String] {
        get { details?.warnings ?? [] }
        set { if !newValue.isEmpty || details != nil { withDetails { $0.warnings = newValue } } }
    }
    var events: [Session.Event] {
        get { details?.events ?? [] }
        set { if !newValue.isEmpty || details != nil { withDetails { $0.events = newValue } } }
    }
    var deliveries: [Delivery] {
        get { details?.deliveries ?? [] }
        set { if !newValue.isEmpty || details != nil { withDetails { $0.deliveries = newValue } } }
    }
    /// Whether `details` may hold a destination or deliveries to count (nil: neither).
    var hasDetails: Bool { details != nil }

    /// Whether the report lists anything of it in capture order (beyond the counts): a failure,
    /// trace lines, warnings, events or deliveries kept for `--out-dir`.
    var isListed: Bool {
        (r0 == nil && ran)
            || details.map { !$0.trace.isEmpty || !$0.warnings.isEmpty || !$0.events.isEmpty || !$0.deliveries.isEmpty }
                ?? false
    }
}

/// What a report counts of the outcomes, in any order: verdicts, destinations, failed runs,
/// modified packets and instructions. Workers count their own and the counts are added up.
///
/// Small verdicts and the destinations without a parameter are counted in arrays (no hashing per
/// packet); the rest in dictionaries.
struct PacketTally {
    private var smallVerdicts = [Int](repeating: 0, count: PacketTally.smallVerdictCount)
    private var otherVerdicts: [UInt64: Int] = [:]
    private var plainDestinations = [Int](repeating: 0, count: PacketTally.plainDestinations.count)
    private var otherDestinations: [PacketDestination: Int] = [:]
    var errors = 0
    /// Packets the program did not run for (`PacketOutcome.ran`).
    var notRun = 0
    var modified = 0
    var instructions: UInt64 = 0

    /// Verdicts below this are counted in `smallVerdicts` (every XDP and tc action).
    private static let smallVerdictCount = 16
    /// The destinations counted in `plainDestinations`, by index.
    static let plainDestinations: [PacketDestination] = [
        .pass, .tx, .reroute, .drop, .aborted, .stolen, .redirectError, .error,
    ]

    static func plainIndex(_ destination: PacketDestination) -> Int? {
        switch destination {
        case .pass: 0
        case .tx: 1
        case .reroute: 2
        case .drop: 3
        case .aborted: 4
        case .stolen: 5
        case .redirectError: 6
        case .error: 7
        case .interface, .interfaceIngress, .cpu, .socket, .socketRedirect, .socketAssigned: nil
        }
    }

    /// Packets by verdict (R0).
    var verdicts: [UInt64: Int] {
        var all = otherVerdicts
        for (verdict, count) in smallVerdicts.enumerated() where count > 0 { all[UInt64(verdict)] = count }
        return all
    }

    /// Packets by destination.
    var destinations: [PacketDestination: Int] {
        var all = otherDestinations
        for (index, count) in plainDestinations.enumerated() where count > 0 {
            all[Self.plainDestinations[index]] = count
        }
        return all
    }

    private mutating func count(_ destination: PacketDestination, _ times: Int = 1) {
        if let index = Self.plainIndex(destination) {
            plainDestinations[index] += times
        } else {
            otherDestinations[destination, default: 0] += times
        }
    }

    mutating func add(_ outcome: PacketOutcome) {
        instructions &+= outcome.instructions
        if !outcome.ran {
            notRun += 1
        } else if let r0 = outcome.r0 {
            if r0 < UInt64(Self.smallVerdictCount) {
                smallVerdicts[Int(r0)] += 1
            } else {
                otherVerdicts[r0, default: 0] += 1
            }
        } else {
            errors += 1
            count(.error)
            return
        }
        if outcome.plainDestination >= 0 {
            plainDestinations[Int(outcome.plainDestination)] += 1
        } else if outcome.hasDetails {
            if let destination = outcome.destination { count(destination) }
            for delivery in outcome.deliveries { count(delivery.destination) }
        }
        if outcome.modified { modified += 1 }
    }

    mutating func add(_ other: PacketTally) {
        for index in smallVerdicts.indices { smallVerdicts[index] += other.smallVerdicts[index] }
        otherVerdicts.merge(other.otherVerdicts, uniquingKeysWith: +)
        for index in plainDestinations.indices { plainDestinations[index] += other.plainDestinations[index] }
        otherDestinations.merge(other.otherDestinations, uniquingKeysWith: +)
        errors += other.errors
        notRun += other.notRun
        modified += other.modified
        instructions &+= other.instructions
    }
}

/// Runs packets of a capture, one at a time, on processes it keeps and resets for each packet.
/// One runner belongs to one thread.
final class PacketRunner {
    private let session: Session
    @exclusivity(unchecked) private var processes: [MimicCore.Process?]
    private let contexts: PacketContexts
    /// `contexts.slot` as the context `Process.reset` takes, boxed once: passing a stored
    /// existential borrows it, where making one per packet copies it through value witnesses.
    private let slotContext: (any Context)?
    private let hasEventMaps: Bool
    /// Whether outcomes list their deliveries with the packet's bytes (`--out-dir`).
    private let keepsDeliveries: Bool
    /// The program type, read for every packet (a stored copy: no call into the session).
    private let type: ProgramType
    /// sk_lookup: the interface packets arrive on (`Session.lookupIngressIfindex`).
    private let lookupIngressIfindex: UInt32
    /// The session's instruction budget and `--timeout`, copied once (`Session.timeout` is a
    /// `var`: reading it per packet is a dynamic exclusivity check).
    private let limit: UInt64
    private let timeout: Duration?

    /// A runner with `processes` process slots (one per vCPU it runs packets as), listing each
    /// outcome's deliveries with their bytes when `keepsDeliveries`.
    /// (`PcapRun` checks the `--ctx` fields of an sk_lookup run before making runners.)
    init(session: Session, processes: Int, keepsDeliveries: Bool) {
        self.session = session
        type = session.type
        lookupIngressIfindex = session.type == .skLookup ? (try? session.lookupIngressIfindex()) ?? 1 : 0
        self.keepsDeliveries = keepsDeliveries
        limit = session.limit
        timeout = session.timeout
        self.processes = Array(repeating: nil, count: processes)
        contexts = PacketContexts(session: session)
        slotContext = contexts.slot
        hasEventMaps = session.maps.contains { $0 is RingBufferMap || $0 is PerfEventArrayMap }
    }

    /// Runs the packet `packet` (its bytes, in place) of capture record `record`, the capture's
    /// packet `index`, as vCPU `cpu` on the process of `slot`. The `--out` record, if the packet
    /// leaves alive, is written to `out` when it is given. Failing to set up the context throws;
    /// a failed run is an outcome.
    func run(
        _ packet: UnsafeRawBufferPointer, _ record: PcapRecord, index: Int, cpu: Int, slot: Int,
        out: inout OutputRecords?
    ) throws(RuntimeError) -> PacketOutcome {
        if type == .skLookup { return try runLookup(packet, record, index: index, cpu: cpu, slot: slot, out: &out) }
        let ingress: UInt32
        let process: MimicCore.Process
        var outcome: PacketOutcome
        let buffer: PacketBuffer?
        if let ready = contexts.refill(packet: packet) {
            // The common case: the XDP context made for the first packet, refilled in place.
            ingress = ready
            (process, outcome, buffer) = try execute(slotContext, cpu: cpu, slot: slot)
        } else {
            let context: any Context
            (context, ingress) = try contexts.context(packet: packet)
            if type == .netfilter, let netfilter = context as? NetfilterContext, let problem = netfilter.problem {
                // A frame no netfilter hook of its family would see: an error for this packet only.
                return PacketOutcome(r0: nil, error: "\(problem.field): \(problem.message)", instructions: 0)
            }
            (process, outcome, buffer) = try execute(context, cpu: cpu, slot: slot)
        }
        guard let r0 = outcome.r0 else { return outcome }
        // An XDP verdict other than a redirect sends the packet to one place: counted and written
        // from the packet buffer in place, no `Delivery` or copy of the bytes.
        if !keepsDeliveries, type == .xdp, let buffer, let destination = PacketDestination.xdpVerdict(r0) {
            outcome.destination = destination
            if out != nil, destination.isAlive {
                let left = buffer.dataInPlace
                let unchanged = PcapRun.same(left, packet)
                outcome.modified = !unchanged
                let originalLength = unchanged ? record.originalLength : UInt32(clamping: left.count)
                out?.write(left, index: index, timestamp: record.timestamp, originalLength: originalLength)
            }
            return outcome
        }
        let deliveries = PacketDestination.deliveries(
            r0: r0, process: process, session: session, ingressIfindex: ingress)
        // Devmap / cpumap entry programs that ran on the packet: their trace, their failures.
        for delivery in deliveries {
            outcome.trace += delivery.trace
            if let failure = delivery.failure { outcome.warnings.append(failure) }
        }
        // `--out` gets the packet once when it leaves alive (a broadcast's copies are one packet).
        if out != nil, let left = deliveries.first(where: { !$0.isClone && $0.destination.isAlive })?.packet {
            left.withUnsafeBytes { left in
                let unchanged = PcapRun.same(left, packet)
                outcome.modified = !unchanged
                let originalLength = unchanged ? record.originalLength : UInt32(clamping: left.count)
                out?.write(left, index: index, timestamp: record.timestamp, originalLength: originalLength)
            }
        }
        outcome.deliveries = deliveries
        return outcome
    }
}

extension PacketRunner {
    /// Runs the process of `slot` with `context` as vCPU `cpu`: the process, the outcome so far
    /// (R0, instructions, trace lines, warnings, ring-buffer and perf events; a failed run's
    /// outcome has no R0 and says why) and the packet buffer as the run left it (nil when the
    /// run failed or the context has no packet). Failing to set up the context throws.
    private func execute(_ context: (any Context)?, cpu: Int, slot: Int) throws(RuntimeError) -> (
        process: MimicCore.Process, outcome: PacketOutcome, packet: PacketBuffer?
    ) {
        let process = try session.process(reusing: processes[slot], context: context, vCPU: cpu)
        if processes[slot] !== process { processes[slot] = process }
        let r0: UInt64
        do {
            r0 = try Timeout.run(process, limit: limit, timeout: timeout)
        } catch {
            let failed = PacketOutcome(
                r0: nil, error: session.message(for: error), instructions: process.instructionsExecuted)
            return (process, failed, nil)
        }
        var outcome = PacketOutcome(r0: r0, instructions: process.instructionsExecuted)
        guard let state = LinuxProcessState.of(process) else {
            if hasEventMaps { outcome.events = session.drainEvents() }
            return (process, outcome, nil)
        }
        let report = state.runReport
        if let trace = report.trace { outcome.trace = trace }
        if let warnings = report.warnings { outcome.warnings = warnings }
        if hasEventMaps { outcome.events = session.drainEvents() }
        return (process, outcome, report.packet)
    }

    /// An sk_lookup program's packet: run with the `bpf_sk_lookup` context the kernel builds for
    /// it when it is looked up (`SKLookupContext.lookup(frame:ingressIfindex:)`), else not run
    /// and passed on unchanged. The packet leaves as it came (the program cannot change it).
    private func runLookup(
        _ packet: UnsafeRawBufferPointer, _ record: PcapRecord, index: Int, cpu: Int, slot: Int,
        out: inout OutputRecords?
    ) throws(RuntimeError) -> PacketOutcome {
        var outcome: PacketOutcome
        let destination: PacketDestination
        switch SKLookupContext.lookup(frame: packet, ingressIfindex: lookupIngressIfindex) {
        case .notLookedUp:
            outcome = PacketOutcome(r0: nil, instructions: 0)
            outcome.ran = false
            destination = .pass
        case .lookup(let context):
            let (process, ran, _) = try execute(context, cpu: cpu, slot: slot)
            guard let r0 = ran.r0 else { return ran }
            outcome = ran
            destination = PacketDestination.skLookup(r0: r0, process: process)
        }
        if keepsDeliveries {
            outcome.deliveries = [Delivery(destination: destination, packet: Array(packet))]
        } else {
            outcome.destination = destination
        }
        if destination.isAlive {
            out?.write(packet, index: index, timestamp: record.timestamp, originalLength: record.originalLength)
        }
        return outcome
    }
}

/// `mimic run --pcap --workers N`: the packets spread over N workers by `FlowHash`, as a NIC's
/// receive-side scaling spreads them over queues, so the packets of one flow run on one worker
/// in capture order. Worker i runs as vCPU i with a process of its own, on a thread of its own,
/// and takes its packets from the capture itself (no thread hands them out): first the workers
/// hash the packets' flows, each a stripe of the capture, into one worker number per packet;
/// then each runs, in capture order, the packets whose number is its own. Each worker counts its outcomes,
/// keeps those the report lists and writes its `--out` records straight into the output
/// capture, each at its packet's place (`OutputCapture`); the outcomes are merged in capture
/// order, so everything reported and written is as a one-worker run gives it.
struct FlowWorkers {
    let session: Session
    let workers: Int
    /// Whether the report needs each outcome's deliveries (`--out-dir`) after the counts.
    let keepsDeliveries: Bool

    /// Runs every packet, then hands each outcome the report lists (`PacketOutcome.isListed`)
    /// to `report` and writes the `--out` records into `out` (when given, finished here);
    /// returns the workers' counts added up. A context that cannot be set up throws (the first
    /// such packet's error, in capture order).
    func run(
        _ capture: CaptureIndex, progress: Progress, out: OutputCapture?,
        report: (_ index: Int, _ outcome: PacketOutcome) -> Void
    ) throws(RuntimeError) -> PacketTally {
        let workers = self.workers
        let count = capture.records.count
        // Each packet's worker, as a NIC's hash puts packets in its receive queues: hashed in
        // stripes before any packet runs, 16 a worker so that a thread that starts late still
        // takes its share (each stripe is written by the thread that takes it).
        let workerOf = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: count)
        defer { workerOf.deallocate() }
        let results = UnsafeMutableBufferPointer<WorkerResult>.allocate(capacity: workers)
        results.initialize(repeating: WorkerResult())
        defer {
            results.deinitialize()
            results.deallocate()
        }
        let keepsDeliveries = self.keepsDeliveries
        let shared = Shared(session: session, results: results, workerOf: workerOf, progress: progress)
        let stripes = workers * 16
        DispatchQueue.concurrentPerform(iterations: stripes) { stripe in
            let buckets = shared.workerOf
            for index in count * stripe / stripes..<count * (stripe + 1) / stripes {
                buckets[index] = UInt16(truncatingIfNeeded: FlowHash.bucket(of: capture.bytes(index), buckets: workers))
            }
        }
        // One iteration per worker; each runs only its own packets, in capture order, and writes
        // only its own result.
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let runner = PacketRunner(session: shared.session, processes: 1, keepsDeliveries: keepsDeliveries)
            var result = WorkerResult()
            var writer = out?.records()
            defer {
                result.records = writer
                shared.results[worker] = result
            }
            let mine = UInt16(truncatingIfNeeded: worker)
            let buckets = UnsafeBufferPointer(shared.workerOf)
            for index in 0..<count where buckets[index] == mine {
                if worker == 0 { shared.progress.update(index) }
                do throws(RuntimeError) {
                    var outcome = try runner.run(
                        capture.bytes(index), capture.records[index], index: index, cpu: worker, slot: 0,
                        out: &writer)
                    result.tally.add(outcome)
                    // Freed here, on the thread that allocated them, unless `--out-dir` needs them.
                    if !keepsDeliveries, outcome.hasDetails { outcome.deliveries = [] }
                    if outcome.isListed { result.listed.append((index, outcome)) }
                } catch {
                    result.failure = (index, error)
                    return // this worker stops; the others finish theirs
                }
            }
        }
        if let failure = results.compactMap(\.failure).min(by: { $0.index < $1.index }) { throw failure.error }
        // The workers' lists merged by packet index: capture order.
        var next = [Int](repeating: 0, count: workers)
        while true {
            var first: Int?
            for worker in 0..<workers where next[worker] < results[worker].listed.count {
                if first.map({ results[worker].listed[next[worker]].index < results[$0].listed[next[$0]].index })
                    ?? true
                {
                    first = worker
                }
            }
            guard let worker = first else { break }
            let (index, outcome) = results[worker].listed[next[worker]]
            report(index, outcome)
            next[worker] += 1
        }
        out?.finish(results.compactMap(\.records))
        var total = PacketTally()
        for result in results { total.add(result.tally) }
        return total
    }

    /// What one worker made: its counts, the outcomes the report lists (in its packets' order,
    /// which is capture order), its writer of `--out` records (with the records it kept aside)
    /// and the packet whose context could not be set up, if any.
    private struct WorkerResult {
        var tally = PacketTally()
        var listed: [(index: Int, outcome: PacketOutcome)] = []
        var records: OutputRecords?
        var failure: (index: Int, error: RuntimeError)?
    }

    /// What the workers share. The session is only read while they run (its VM, emulator and
    /// maps are made for processes on several threads, as `MimicPool` runs them); each worker
    /// writes only its own result; only worker 0 shows progress.
    private struct Shared: @unchecked Sendable {
        let session: Session
        let results: UnsafeMutableBufferPointer<WorkerResult>
        /// Each packet's worker (`FlowHash`), written in stripes before the packets run.
        let workerOf: UnsafeMutableBufferPointer<UInt16>
        let progress: Progress
    }
}

/// The receive-side-scaling hash of a frame: which of `buckets` workers runs it.
///
/// The flow is the 5-tuple of an unfragmented IPv4 or IPv6 TCP or UDP packet (addresses, ports
/// and protocol), the address pair and protocol of other IP packets (and of IPv4 fragments, so
/// the fragments of a datagram stay together), and one fixed bucket (0) for everything else
/// (ARP, runts, other EtherTypes). Up to two VLAN tags are skipped. IPv6 extension headers are
/// not walked: such packets hash on their addresses. The hash (FNV-1a) has no random key, so a
/// capture spreads the same way on every run.
enum FlowHash {
    static func bucket(of frame: UnsafeRawBufferPointer, buckets: Int) -> Int {
        guard buckets > 1, let hash = hash(of: frame) else { return 0 }
        return Int(hash % UInt64(buckets))
    }

    /// The flow's hash, or nil for a frame without an IP flow.
    static func hash(of frame: [UInt8]) -> UInt64? {
        frame.withUnsafeBytes { hash(of: $0) }
    }

    /// The flow's hash of a frame in place, or nil for a frame without an IP flow.
    static func hash(of frame: UnsafeRawBufferPointer) -> UInt64? {
        do {
            let bytes = frame
            func u16(_ at: Int) -> Int { Int(bytes[at]) << 8 | Int(bytes[at + 1]) }
            var offset = 12
            guard bytes.count >= offset + 2 else { return nil }
            var etherType = u16(offset)
            for _ in 0..<2 where etherType == 0x8100 || etherType == 0x88A8 {
                offset += 4
                guard bytes.count >= offset + 2 else { return nil }
                etherType = u16(offset)
            }
            let network = offset + 2
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            func mix(_ range: Range<Int>) {
                for index in range { hash = (hash ^ UInt64(bytes[index])) &* 0x0000_0100_0000_01b3 }
            }
            let proto: UInt8
            let transport: Int?
            switch etherType {
            case 0x0800:
                guard bytes.count >= network + 20, bytes[network] >> 4 == 4 else { return nil }
                let headerLength = Int(bytes[network] & 0x0F) * 4
                let fragment = u16(network + 6) & 0x3FFF // MF flag and offset
                proto = bytes[network + 9]
                mix(network + 12..<network + 20)
                transport = fragment == 0 && headerLength >= 20 ? network + headerLength : nil
            case 0x86DD:
                guard bytes.count >= network + 40, bytes[network] >> 4 == 6 else { return nil }
                proto = bytes[network + 6]
                mix(network + 8..<network + 40)
                transport = network + 40
            default:
                return nil
            }
            hash = (hash ^ UInt64(proto)) &* 0x0000_0100_0000_01b3
            if let transport, proto == 6 || proto == 17, bytes.count >= transport + 4 {
                mix(transport..<transport + 4)
            }
            // A final avalanche, so that the low bits `%` uses depend on every input byte.
            hash ^= hash >> 33
            hash = hash &* 0xff51_afd7_ed55_8ccd
            hash ^= hash >> 33
            return hash
        }
    }
}
