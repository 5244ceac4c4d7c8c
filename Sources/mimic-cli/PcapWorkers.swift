#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Dispatch
import Synchronization
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

    /// Whether the destination of `plainDestinations` index `index` leaves alive (`isAlive`).
    @inline(__always)
    static func plainIsAlive(_ index: Int) -> Bool { plainAlive[index] }
    private static let plainAlive = plainDestinations.map(\.isAlive)

    /// Where an XDP verdict other than `XDP_REDIRECT` sends the packet, as its index in
    /// `plainDestinations`; nil for `XDP_REDIRECT` (the redirect's target says where).
    /// `XDP_ABORTED` and an R0 that is no XDP action are `aborted`, as the kernel treats them.
    @inline(__always)
    static func xdpPlainIndex(_ r0: UInt64) -> Int? {
        switch XDPAction(returnValue: r0) {
        case .pass: 0
        case .tx: 1
        case .drop: 3
        case .aborted, nil: 4
        case .redirect: nil
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

    /// Counts a run that returned `r0` after `instructions` and sent the packet to the
    /// destination of `plainDestinations` index `destination`, `modified` or not: what
    /// `add(_:)` counts of such an outcome, without making one.
    @inline(__always)
    mutating func addPlain(r0: UInt64, destination: Int, modified: Bool, instructions: UInt64) {
        self.instructions &+= instructions
        countVerdict(r0)
        plainDestinations[destination] += 1
        if modified { self.modified += 1 }
    }

    @inline(__always)
    private mutating func countVerdict(_ r0: UInt64) {
        if r0 < UInt64(Self.smallVerdictCount) {
            smallVerdicts[Int(r0)] += 1
        } else {
            otherVerdicts[r0, default: 0] += 1
        }
    }

    mutating func add(_ outcome: PacketOutcome) {
        instructions &+= outcome.instructions
        if !outcome.ran {
            notRun += 1
        } else if let r0 = outcome.r0 {
            countVerdict(r0)
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

/// Runs packets of a capture, one at a time, on processes it keeps and resets for each packet,
/// and counts their outcomes (`tally`). One runner belongs to one thread.
final class PacketRunner {
    private let session: Session
    /// The process of each slot, made with the slot's first packet; held by hand (released in
    /// `deinit`), so that the per-packet path uses it with no reference count.
    private let processes: UnsafeMutableBufferPointer<Unmanaged<MimicCore.Process>?>
    private let contexts: PacketContexts
    /// The outcomes counted so far.
    @exclusivity(unchecked) private(set) var tally = PacketTally()
    private let hasEventMaps: Bool
    /// Whether outcomes list their deliveries with the packet's bytes (`--out-dir`).
    private let keepsDeliveries: Bool
    /// Whether an XDP run that printed nothing and returned a verdict other than `XDP_REDIRECT`
    /// is counted without making a `PacketOutcome`: an XDP program, no `--out-dir`, no ring
    /// buffer or perf event array to drain.
    private let countsPlainXDP: Bool
    /// The program type, read for every packet (a stored copy: no call into the session), and
    /// whether it is sk_lookup or netfilter (`ProgramType`'s constants are calls).
    private let type: ProgramType
    private let isLookup: Bool
    private let isNetfilter: Bool
    /// `contexts.slot`, held here for the per-packet path.
    private let xdpSlot: PacketContexts.XDPSlot
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
        isLookup = session.type == .skLookup
        isNetfilter = session.type == .netfilter
        lookupIngressIfindex = session.type == .skLookup ? (try? session.lookupIngressIfindex()) ?? 1 : 0
        self.keepsDeliveries = keepsDeliveries
        limit = session.limit
        timeout = session.timeout
        self.processes = .allocate(capacity: processes)
        self.processes.initialize(repeating: nil)
        contexts = PacketContexts(session: session)
        xdpSlot = contexts.slot
        hasEventMaps = session.maps.contains { $0 is RingBufferMap || $0 is PerfEventArrayMap }
        countsPlainXDP = session.type == .xdp && !keepsDeliveries && !hasEventMaps
    }

    deinit {
        for process in processes { process?.release() }
        processes.deallocate()
    }

    /// Runs the packet `packet` (its bytes, in place) of capture record `record`, the capture's
    /// packet `index`, as vCPU `cpu` on the process of `slot`, and counts its outcome in `tally`.
    /// The `--out` record, if the packet leaves alive, is written to `out` when it is given.
    /// Returns the outcome when the report lists it (`PacketOutcome.isListed`; its deliveries
    /// only when `keepsDeliveries`), else nil. Failing to set up the context throws; a failed
    /// run is an outcome.
    func run(
        _ packet: UnsafeRawBufferPointer, _ record: PcapRecord, index: Int, cpu: Int, slot: Int,
        out: inout OutputRecords?
    ) throws(RuntimeError) -> PacketOutcome? {
        var outcome = try outcome(packet, record, index: index, cpu: cpu, slot: slot, out: &out)
        guard let counted = outcome else { return nil }
        tally.add(counted)
        guard counted.isListed else { return nil }
        if !keepsDeliveries, counted.hasDetails, !counted.deliveries.isEmpty {
            // Freed here, on the thread that allocated them: only `--out-dir` reads them.
            outcome?.deliveries = []
            guard outcome?.isListed == true else { return nil }
        }
        return outcome
    }

    /// `run`'s packet: its outcome, or nil when it was counted in `tally` already (the common XDP
    /// packet, `countsPlainXDP`: no outcome made).
    @inline(__always)
    private func outcome(
        _ packet: UnsafeRawBufferPointer, _ record: PcapRecord, index: Int, cpu: Int, slot: Int,
        out: inout OutputRecords?
    ) throws(RuntimeError) -> PacketOutcome? {
        if isLookup { return try runLookup(packet, record, index: index, cpu: cpu, slot: slot, out: &out) }
        if xdpSlot.isReady, let held = processes[slot] {
            // The common case: the XDP context made for the first packet, refilled in place and
            // attached by its type (no existential), to the slot's process used unretained.
            let xdp = xdpSlot
            xdp.packet = packet
            let ingress = xdp.ingressIfindex
            return try held._withUnsafeGuaranteedRef { process in
                Result { () throws(RuntimeError) in
                    do {
                        try process.reset(context: xdp)
                    } catch {
                        throw RuntimeError("cannot set up the context: \(error)")
                    }
                    return ran(process, ingress: ingress, packet, record, index: index, out: &out)
                }
            }.get()
        }
        let (context, ingress) = try contexts.context(packet: packet)
        if isNetfilter, let netfilter = context as? NetfilterContext, let problem = netfilter.problem {
            // A frame no netfilter hook of its family would see: an error for this packet only.
            return PacketOutcome(r0: nil, error: "\(problem.field): \(problem.message)", instructions: 0)
        }
        let process = try reset(slot, context: context, cpu: cpu)
        return ran(process, ingress: ingress, packet, record, index: index, out: &out)
    }

    /// The packet's outcome once `process`, whose context `ingress` is the packet's ingress
    /// ifindex, is attached: runs it; counts a plain XDP verdict in `tally` and returns nil, or
    /// returns the outcome.
    @inline(__always)
    private func ran(
        _ process: MimicCore.Process, ingress: UInt32, _ packet: UnsafeRawBufferPointer, _ record: PcapRecord,
        index: Int, out: inout OutputRecords?
    ) -> PacketOutcome? {
        let r0: UInt64
        do {
            r0 = try Timeout.run(process, limit: limit, timeout: timeout)
        } catch {
            return PacketOutcome(r0: nil, error: session.message(for: error), instructions: process.instructionCount)
        }
        let instructions = process.instructionCount
        let summary = LinuxProcessState.runSummary(of: process)
        // An XDP verdict other than a redirect sends the packet to one place: counted and written
        // from the packet buffer in place, with no outcome, `Delivery` or copy of the bytes.
        if countsPlainXDP, !summary.printed, let buffer = summary.packet,
            let destination = PacketTally.xdpPlainIndex(r0)
        {
            var modified = false
            if out != nil, PacketTally.plainIsAlive(destination) {
                modified = buffer._withUnsafeGuaranteedRef { write($0.dataInPlace, from: packet, record, index, &out) }
            }
            tally.addPlain(r0: r0, destination: destination, modified: modified, instructions: instructions)
            return nil
        }
        var (outcome, bufferLeft) = reported(process, r0: r0, instructions: instructions)
        // As above, for a run that printed (its lines listed) or drained events.
        if !keepsDeliveries, type == .xdp, let buffer = bufferLeft, let destination = PacketDestination.xdpVerdict(r0) {
            outcome.destination = destination
            if out != nil, destination.isAlive {
                outcome.modified = write(buffer.dataInPlace, from: packet, record, index, &out)
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
            outcome.modified = left.withUnsafeBytes { write($0, from: packet, record, index, &out) }
        }
        outcome.deliveries = deliveries
        return outcome
    }

    /// Writes `left`, the packet as the run left it, as the `--out` record of packet `index`
    /// (`packet` of `record` as it came in); returns whether the bytes changed.
    @inline(__always)
    private func write(
        _ left: UnsafeRawBufferPointer, from packet: UnsafeRawBufferPointer, _ record: PcapRecord, _ index: Int,
        _ out: inout OutputRecords?
    ) -> Bool {
        let unchanged = PcapRun.same(left, packet)
        let originalLength = unchanged ? record.originalLength : UInt32(clamping: left.count)
        out?.write(left, index: index, timestamp: record.timestamp, originalLength: originalLength)
        return !unchanged
    }
}

extension PacketRunner {
    /// The process of `slot` reset to run with `context` (made, as vCPU `cpu`, for the slot's
    /// first packet). A context of a known type is attached as that type: no existential box is
    /// copied or unwrapped per packet (`Process.reset(context:)`'s generic form).
    private func reset<C: Context>(_ slot: Int, context: C, cpu: Int) throws(RuntimeError) -> MimicCore.Process {
        guard let process = processes[slot]?.takeUnretainedValue() else {
            let made = try session.makeProcess(context: context, vCPU: cpu)
            processes[slot] = Unmanaged.passRetained(made)
            return made
        }
        do {
            try process.reset(context: context)
        } catch {
            throw RuntimeError("cannot set up the context: \(error)")
        }
        return process
    }

    /// The outcome of `process`'s run that returned `r0` after `instructions`: with its trace
    /// lines, warnings, and ring buffer and perf events; and the packet buffer as the run left it
    /// (nil when the context has no packet).
    private func reported(_ process: MimicCore.Process, r0: UInt64, instructions: UInt64) -> (
        outcome: PacketOutcome, packet: PacketBuffer?
    ) {
        var outcome = PacketOutcome(r0: r0, instructions: instructions)
        var packet: PacketBuffer?
        if let state = LinuxProcessState.of(process) {
            let report = state.runReport
            if let trace = report.trace { outcome.trace = trace }
            if let warnings = report.warnings { outcome.warnings = warnings }
            packet = report.packet
        }
        if hasEventMaps { outcome.events = session.drainEvents() }
        return (outcome, packet)
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
            let process = try reset(slot, context: context, cpu: cpu)
            let r0: UInt64
            do {
                r0 = try Timeout.run(process, limit: limit, timeout: timeout)
            } catch {
                return PacketOutcome(
                    r0: nil, error: session.message(for: error), instructions: process.instructionCount)
            }
            outcome = reported(process, r0: r0, instructions: process.instructionCount).outcome
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
/// and takes its packets from the capture itself (no thread hands them out): the workers hash
/// the packets' flows once for all, a block of `block` packets at a time, some packets after
/// each of their runs (`FlowBuckets`), and each runs, block after block in capture order, the
/// packets whose bucket is its number. Nothing the workers write is shared but the flow buckets
/// (each block's written by one worker), the program's maps and, with `--out`, the output
/// capture's lines where two workers' records meet (each worker's record lengths are an array
/// of its own). Each worker counts its outcomes, keeps those the report lists and writes its
/// `--out` records straight into the output capture, each at its packet's place
/// (`OutputCapture`); the outcomes are merged in capture order, so everything reported and
/// written is as a one-worker run gives it.
struct FlowWorkers {
    let session: Session
    let workers: Int
    /// Whether the report needs each outcome's deliveries (`--out-dir`) after the counts.
    let keepsDeliveries: Bool

    /// The packets of a block of `FlowBuckets`: hashed by one worker, a block or two ahead of
    /// the runs, their records and frames (≈ 270 KiB for 4,096 packets of 67 bytes) still in that
    /// core's L2 cache when it runs its own among them.
    static let block = 4096

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
        let results = UnsafeMutableBufferPointer<WorkerResult>.allocate(capacity: workers)
        results.initialize(repeating: WorkerResult())
        defer {
            results.deinitialize()
            results.deallocate()
        }
        let keepsDeliveries = self.keepsDeliveries
        let flows = FlowBuckets(packets: count, block: Self.block, workers: workers)
        let shared = Shared(session: session, results: results, flows: flows, progress: progress)
        // One iteration per worker, each on its own, waiting only for a block another is hashing.
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let runner = PacketRunner(session: shared.session, processes: 1, keepsDeliveries: keepsDeliveries)
            var result = WorkerResult()
            var writer = out?.records(writer: worker)
            defer {
                result.tally = runner.tally
                result.records = writer
                shared.results[worker] = result
            }
            let own = UnsafeMutableBufferPointer<Int>.allocate(capacity: Self.block)
            defer { own.deallocate() }
            let flows = shared.flows
            capture.withHasher(buckets: workers) { hasher in
                var claim = FlowBuckets.Claim()
                for block in 0..<flows.blocks {
                    flows.waitUntilHashed(block, &claim, with: hasher)
                    let owned = flows.list(block: block, bucket: worker, into: own)
                    for index in own[..<owned] {
                        if worker == 0 { shared.progress.update(index) }
                        do throws(RuntimeError) {
                            if let listed = try runner.run(
                                capture.bytes(index), capture.records[index], index: index, cpu: worker, slot: 0,
                                out: &writer)
                            {
                                result.listed.append((index, listed))
                            }
                        } catch {
                            result.failure = (index, error)
                            flows.abandon(&claim, with: hasher) // the others may wait for it
                            return // this worker stops; the others finish theirs
                        }
                        flows.advance(&claim, whileRunning: block, with: hasher)
                    }
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
    /// writes only its own result, once, when it is done; only worker 0 shows progress.
    private struct Shared: @unchecked Sendable {
        let session: Session
        let results: UnsafeMutableBufferPointer<WorkerResult>
        let flows: FlowBuckets
        let progress: Progress
    }
}

/// Writes the flow bucket (`FlowHash.bucket(of:buckets:)`) of a capture's packets, the frames
/// read in place: how `--workers` finds which worker runs each packet.
///
/// The common frame, untagged IPv4 with a 20-byte header carrying TCP or UDP, not a fragment, is
/// recognised by one test of bits gathered without branches and hashed in place; other frames
/// take the one-frame `bucket(of:buckets:)`.
struct FlowHasher {
    private let file: UnsafeRawPointer?
    private let records: UnsafePointer<PcapRecord>?
    private let count: Int
    private let buckets: UInt64

    /// A hasher into `buckets` buckets (at most 2¹⁶) of `count` records at `records`, whose frames
    /// are in `file` (the reader made the records, within the file).
    fileprivate init(file: UnsafeRawPointer?, records: UnsafePointer<PcapRecord>?, count: Int, buckets: Int) {
        self.file = file
        self.records = records
        self.count = count
        self.buckets = UInt64(max(buckets, 1))
    }

    /// Writes the bucket of each packet of `indices` (within the capture) at its index in `into`.
    func hash(_ indices: Range<Int>, into bucketOf: UnsafeMutablePointer<UInt16>) {
        precondition(
            indices.lowerBound >= 0 && indices.upperBound <= count, "FlowHasher.hash: packets \(indices) of \(count)")
        guard buckets > 1, let file, let records else {
            for index in indices { bucketOf[index] = 0 }
            return
        }
        for index in indices {
            let bucket = FlowHash.bucket(of: file + records[index].dataOffset, Int(records[index].length), buckets)
            bucketOf[index] = UInt16(truncatingIfNeeded: bucket)
        }
    }
}

extension CaptureIndex {
    /// Calls `body` with a hasher into `buckets` buckets over this capture's packets (valid only
    /// inside `body`).
    func withHasher(buckets: Int, _ body: (FlowHasher) -> Void) {
        let file = reader.storage.buffer.baseAddress
        records.withUnsafeBufferPointer { records in
            body(FlowHasher(file: file, records: records.baseAddress, count: records.count, buckets: buckets))
        }
    }
}

/// The flow buckets of a capture's packets, hashed by the `--workers` workers themselves: the
/// capture is cut into blocks of `block` packets, which the workers claim in capture order and
/// hash, for all of them, some packets after each of their runs (`advance`), a block or two
/// ahead of the block they run. Each worker runs, block after block, the packets whose bucket is
/// its number, once the block is marked hashed. So each frame is hashed once, in all, by a
/// worker that reads it shortly before it (or another) runs it; no thread hands packets out.
///
/// A worker waits only for a block another worker has claimed and not finished, and it never
/// waits holding an unfinished claim of its own (`waitUntilHashed` completes it first): a
/// worker that waits waits for one that runs, and a worker that has not started (more workers
/// than threads) holds no claim.
final class FlowBuckets: @unchecked Sendable {
    // @unchecked: a block's buckets are written by the worker that claimed it before it marks
    // the block hashed (releasing), and read by the others only after they see the mark
    // (acquiring); the claims are an atomic counter.
    let blocks: Int
    private let packets: Int
    private let block: Int
    private let workers: Int
    /// Each packet's bucket.
    private let bucketOf: UnsafeMutablePointer<UInt16>
    /// One flag a block, set once its buckets are written.
    private let hashed: UnsafeMutablePointer<Atomic<Bool>>
    /// The next block no worker has claimed.
    private let unclaimed = Atomic<Int>(0)

    /// How many packets of its claim a worker hashes after each run: more than its share (a
    /// block of B packets holds about B ÷ N of each of N workers' packets, and each block is
    /// hashed once), so that the hashing stays ahead of the runs, and enough that the call and
    /// the claim's bookkeeping are paid once for many packets: 64 rather than 2 took two
    /// workers from a median 1.72× one worker's rate to 1.76× (Performance.md, ninth session).
    static let pace = 64
    /// How far ahead of the block it runs a worker claims blocks between runs: far enough that
    /// the others need not wait, near enough that the frames are still in cache when they run.
    static let lead = 2

    /// The buckets of `packets` packets in blocks of `block` (≥ 1) for `workers` (1...2¹⁶).
    init(packets: Int, block: Int, workers: Int) {
        self.packets = packets
        self.block = block
        self.workers = workers
        blocks = (packets + block - 1) / block
        bucketOf = .allocate(capacity: max(packets, 1))
        hashed = .allocate(capacity: max(blocks, 1))
        for index in 0..<blocks { (hashed + index).initialize(to: Atomic(false)) }
    }

    deinit {
        hashed.deinitialize(count: blocks)
        hashed.deallocate()
        bucketOf.deallocate()
    }

    /// A worker's claim: the block it hashes and the packets of it still to hash (nil: none).
    struct Claim {
        fileprivate var block = 0
        fileprivate var remaining: Range<Int>?
    }

    /// The packets of block `index`.
    private func packets(of index: Int) -> Range<Int> {
        let start = index &* block
        return start..<min(start &+ block, packets)
    }

    /// Claims the next block when it is `last` or before: true when `claim` holds it. (Looked at
    /// before it is taken, so that workers near the end do not write the shared counter.)
    private func claimNext(upTo last: Int, _ claim: inout Claim) -> Bool {
        let next = unclaimed.load(ordering: .relaxed)
        guard next <= last, next < blocks else { return false }
        let index = unclaimed.wrappingAdd(1, ordering: .relaxed).oldValue
        guard index < blocks else { return false }
        claim = Claim(block: index, remaining: packets(of: index))
        return true
    }

    /// Hashes the rest of `claim`'s block, marks it hashed and empties `claim`.
    private func complete(_ claim: inout Claim, _ remaining: Range<Int>, with hasher: FlowHasher) {
        hasher.hash(remaining, into: bucketOf)
        hashed[claim.block].store(true, ordering: .releasing)
        claim.remaining = nil
    }

    /// Returns once block `index` is hashed: at once when it is; otherwise after completing the
    /// worker's claim and hashing, whole, every unclaimed block up to `index`, and waiting for
    /// the worker that claimed it (never holding an unfinished claim while it waits).
    func waitUntilHashed(_ index: Int, _ claim: inout Claim, with hasher: FlowHasher) {
        if hashed[index].load(ordering: .acquiring) { return }
        if let remaining = claim.remaining { complete(&claim, remaining, with: hasher) }
        while claimNext(upTo: index, &claim), let remaining = claim.remaining {
            complete(&claim, remaining, with: hasher)
        }
        while !hashed[index].load(ordering: .acquiring) { sched_yield() }
    }

    /// Completes `claim`, if any (a worker that stops early).
    func abandon(_ claim: inout Claim, with hasher: FlowHasher) {
        if let remaining = claim.remaining { complete(&claim, remaining, with: hasher) }
    }

    /// After a run in block `running`: hashes the next `pace` packets of the worker's claim,
    /// first claiming a block when it has none and the next unclaimed one is at most `lead`
    /// blocks a worker past `running`.
    @inline(__always)
    func advance(_ claim: inout Claim, whileRunning running: Int, with hasher: FlowHasher) {
        if claim.remaining == nil, !claimNext(upTo: running &+ Self.lead &* workers, &claim) { return }
        guard let remaining = claim.remaining else { return }
        let step = remaining.prefix(Self.pace)
        if step.upperBound == remaining.upperBound {
            complete(&claim, remaining, with: hasher)
        } else {
            hasher.hash(step, into: bucketOf)
            claim.remaining = step.upperBound..<remaining.upperBound
        }
    }

    /// Writes into `own`, in capture order, the packets of block `index` (hashed) whose bucket is
    /// `bucket`; returns how many there are.
    func list(block index: Int, bucket: Int, into own: UnsafeMutableBufferPointer<Int>) -> Int {
        let indices = packets(of: index)
        precondition(own.count >= indices.count, "FlowBuckets.list: \(indices.count) packets, room for \(own.count)")
        guard let list = own.baseAddress else { return 0 }
        let mine = UInt16(truncatingIfNeeded: bucket)
        var owned = 0
        for index in indices {
            list[owned] = index
            // + 1 when the bucket is `mine`, in arithmetic (a `? 1 : 0` compiles to a branch:
            // which bucket a packet has is a coin toss a branch predictor loses).
            owned &-= (Int(truncatingIfNeeded: bucketOf[index] ^ mine) &- 1) >> 63
        }
        return owned
    }
}

/// The receive-side-scaling hash of a frame: which of `buckets` workers runs it.
///
/// The flow is the 5-tuple of an unfragmented IPv4 or IPv6 TCP or UDP packet (addresses, ports
/// and protocol), the address pair and protocol of other IP packets (and of IPv4 fragments, so
/// the fragments of a datagram stay together), and one fixed bucket (0) for everything else
/// (ARP, runts, other EtherTypes). Up to two VLAN tags are skipped. IPv6 extension headers are
/// not walked: such packets hash on their addresses. The hash is a multiply–xorshift mix of the
/// flow's two words (`mix`: the addresses, then the protocol and ports), with no random key, so
/// a capture spreads the same way on every run; it has no long dependency chain and no table,
/// so the hashes of consecutive packets overlap in the CPU.
enum FlowHash {
    /// Which of `buckets` workers (fewer than 2³²) runs the frame: its flow's hash scaled to
    /// `buckets`, 0 for a frame without an IP flow. (`FlowHasher` gives the same answer faster for
    /// a capture's packets.)
    static func bucket(of frame: UnsafeRawBufferPointer, buckets: Int) -> Int {
        guard buckets > 1, let hash = hash(of: frame) else { return 0 }
        return Int(bucket(hash, UInt64(buckets)))
    }

    /// The bucket of `hash` among `buckets`: its high 32 bits scaled to `0..<buckets` (a
    /// multiplication, not a division).
    @inline(__always)
    private static func bucket(_ hash: UInt64, _ buckets: UInt64) -> UInt64 { ((hash >> 32) &* buckets) >> 32 }

    /// The bucket of the frame of `length` bytes at `start`: the common frame's in line, the
    /// others out of line, so that the common one keeps its registers.
    @inline(__always)
    fileprivate static func bucket(of start: UnsafeRawPointer, _ length: Int, _ buckets: UInt64) -> UInt64 {
        if length >= 38 {
            // Untagged IPv4, a 20-byte header (so the ports at 34), not a fragment, TCP or UDP:
            // each test a difference that is 0 when it holds, the protocol's a product.
            let etherType = start.loadUnaligned(fromByteOffset: 12, as: UInt16.self) ^ UInt16(0x0800).bigEndian
            let first = start.load(fromByteOffset: 14, as: UInt8.self) ^ 0x45
            let fragment = start.loadUnaligned(fromByteOffset: 20, as: UInt16.self) & UInt16(0x3FFF).bigEndian
            let proto = start.load(fromByteOffset: 23, as: UInt8.self)
            let differences =
                UInt32(etherType) | UInt32(first) | UInt32(fragment) | (UInt32(proto ^ 6) &* UInt32(proto ^ 17))
            if differences == 0 {
                let addresses = word(start, 26, UInt64.self)
                let tail = UInt64(proto) | word(start, 34, UInt32.self) << 8
                return bucket(mix(addresses, tail), buckets)
            }
        }
        return otherBucket(of: start, length, buckets)
    }

    /// The bucket of a frame that is not the common case of `bucket(of:_:_:)`.
    @inline(never)
    private static func otherBucket(of start: UnsafeRawPointer, _ length: Int, _ buckets: UInt64) -> UInt64 {
        guard let hash = hash(of: UnsafeRawBufferPointer(start: start, count: length)) else { return 0 }
        return bucket(hash, buckets)
    }

    /// The flow's hash, or nil for a frame without an IP flow.
    static func hash(of frame: [UInt8]) -> UInt64? {
        frame.withUnsafeBytes { hash(of: $0) }
    }

    /// The flow's hash of a frame in place, or nil for a frame without an IP flow.
    ///
    /// `mix` of the flow's addresses (IPv6's 32 bytes first folded into one word by `mix`) and
    /// its tail: the protocol in the low byte, then the ports when it has them.
    static func hash(of frame: UnsafeRawBufferPointer) -> UInt64? {
        if let flow = ipv4Flow(of: frame) { return mix(flow.addresses, flow.tail) }
        guard let bytes = frame.baseAddress, let (etherType, network) = network(of: frame), etherType == 0x86DD,
            frame.count >= network + 40, bytes.load(fromByteOffset: network, as: UInt8.self) >> 4 == 6
        else { return nil }
        let proto = bytes.load(fromByteOffset: network + 6, as: UInt8.self)
        let source = mix(word(bytes, network + 8, UInt64.self), word(bytes, network + 16, UInt64.self))
        let addresses = mix(source ^ word(bytes, network + 24, UInt64.self), word(bytes, network + 32, UInt64.self))
        let transport = network + 40
        var tail = UInt64(proto)
        if proto == 6 || proto == 17, frame.count >= transport + 4 { tail |= word(bytes, transport, UInt32.self) << 8 }
        return mix(addresses, tail)
    }

    /// The hash of a flow's two words: each multiplied by an odd constant (independent
    /// multiplications), combined, then one xorshift–multiply round, so that the high bits
    /// `bucket` uses depend on every input bit.
    @inline(__always)
    static func mix(_ addresses: UInt64, _ tail: UInt64) -> UInt64 {
        var hash = (addresses &* 0x9E37_79B9_7F4A_7C15) ^ (tail &* 0xC2B2_AE3D_27D4_EB4F)
        hash ^= hash >> 32
        return hash &* 0xD6E8_FEB8_6659_FD93
    }

    /// The EtherType and the offset of the network header after up to two VLAN tags; nil for a
    /// frame too short for them.
    @inline(__always)
    private static func network(of frame: UnsafeRawBufferPointer) -> (etherType: Int, network: Int)? {
        guard let bytes = frame.baseAddress else { return nil }
        func u16(_ at: Int) -> Int { Int(UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self))) }
        var offset = 12
        guard frame.count >= offset + 2 else { return nil }
        var etherType = u16(offset)
        for _ in 0..<2 where etherType == 0x8100 || etherType == 0x88A8 {
            offset += 4
            guard frame.count >= offset + 2 else { return nil }
            etherType = u16(offset)
        }
        return (etherType, offset + 2)
    }

    /// What the hash mixes of an IPv4 frame: the addresses (8 bytes, the first in the low byte)
    /// and `tail`: the protocol in the low byte and, for an unfragmented TCP or UDP datagram, the
    /// ports in the next four (the fragments of a datagram keeping to its address pair). Nil for
    /// a frame that is not IPv4 or is too short for its header.
    @inline(__always)
    private static func ipv4Flow(of frame: UnsafeRawBufferPointer) -> (addresses: UInt64, tail: UInt64)? {
        guard let bytes = frame.baseAddress, let (etherType, network) = network(of: frame), etherType == 0x0800,
            frame.count >= network + 20
        else { return nil }
        let first = bytes.load(fromByteOffset: network, as: UInt8.self)
        guard first >> 4 == 4 else { return nil }
        let headerLength = Int(first & 0x0F) * 4
        let fragment = UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: network + 6, as: UInt16.self)) & 0x3FFF
        let proto = bytes.load(fromByteOffset: network + 9, as: UInt8.self)
        let addresses = word(bytes, network + 12, UInt64.self)
        let transport = network + headerLength
        guard fragment == 0, headerLength >= 20, proto == 6 || proto == 17, frame.count >= transport + 4 else {
            return (addresses, UInt64(proto))
        }
        return (addresses, UInt64(proto) | word(bytes, transport, UInt32.self) << 8)
    }

    /// The bytes of a `T` at `at`, the first in the low byte whatever the host's byte order.
    @inline(__always)
    private static func word<T: FixedWidthInteger>(_ bytes: UnsafeRawPointer, _ at: Int, _: T.Type) -> UInt64 {
        UInt64(T(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: T.self)))
    }
}
