#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Foundation
import MimicCore
import MimicLinux
import MimicPcap

/// `mimic run --pcap`: one run per packet of a capture, a verdict summary, where each packet
/// went (`PacketDestination`), the packets that leave alive written to `--out` and every
/// destination's packets to a capture of its own in `--out-dir`.
struct PcapRun {
    let session: Session
    let options: RunOptions

    /// Trace lines and events kept for the report (the rest are counted).
    static let maxReported = 1000
    /// Failed runs whose message is shown.
    static let maxErrorsShown = 10

    func run() throws {
        let path = options.pcapPath ?? ""
        let name = Input.displayName(path)
        let capture = try options.captureIndex()
        let records = capture.records
        // sk_lookup packets take their ingress_ifindex from --ctx: refused here, before any run.
        if session.type == .skLookup { _ = try session.lookupIngressIfindex() }
        if let directory = options.outDirectory { try Self.prepare(directory: directory) }
        let display = ValueDisplay(object: session.object, cpus: session.cpus)
        let before = session.snapshot()
        // Timestamps finer than microseconds keep their nanoseconds; the link type is the input's.
        // (Looked for only when a capture is written: a pass over every record.)
        let writes = options.outPath != nil || options.outDirectory != nil
        let nanosecond = writes && records.contains { $0.timestamp % 1000 != 0 }
        // The `--out` capture: one slot per packet, as large as its record unchanged.
        let output =
            options.outPath == nil
            ? nil
            : try OutputCapture(
                header: PcapWriter(nanosecond: nanosecond, linkType: capture.linkType), count: records.count,
                writers: options.workers
            ) { PcapWriter.recordHeaderSize + Int(records[$0].length) }
        var outputs: [PacketDestination: [PcapPacket]] = [:]
        let keepOutputs = options.outDirectory != nil
        var errors: [String] = []
        var trace: [(Int, String)] = []
        var traceCount = 0
        var events: [(Int, Session.Event)] = []
        var eventCount = 0
        var warnings: [String] = []
        if options.workers > 1, session.maps.contains(where: { $0 is RingBufferMap || $0 is PerfEventArrayMap }) {
            throw RuntimeError(
                "--workers \(options.workers): program \(session.source.name) has a ring buffer or perf event array map, whose records workers running at once would interleave by timing; run it with --workers 1"
            )
        }
        let progress = Progress(total: records.count)
        let start = DispatchTime.now().uptimeNanoseconds

        // Adds what of one packet's outcome the report lists in capture order (the counts are in
        // the `PacketTally`).
        func add(_ outcome: PacketOutcome, index: Int) {
            let number = capture.firstNumber + index
            guard outcome.r0 != nil || !outcome.ran else {
                if errors.count < Self.maxErrorsShown, let error = outcome.error {
                    errors.append("packet \(number): \(error)")
                }
                if keepOutputs { outputs[.error, default: []].append(capture.packet(index)) }
                return
            }
            for line in outcome.trace {
                traceCount += 1
                if trace.count < Self.maxReported { trace.append((number, line)) }
            }
            for warning in outcome.warnings where warnings.count < Self.maxReported {
                warnings.append("packet \(number): \(warning)")
            }
            for event in outcome.events {
                eventCount += 1
                if events.count < Self.maxReported { events.append((number, event)) }
            }
            if keepOutputs {
                for delivery in outcome.deliveries {
                    outputs[delivery.destination, default: []].append(
                        Self.record(delivery.packet, from: capture.bytes(index), of: records[index]))
                }
            }
        }

        let workers = options.workers
        let tally: PacketTally
        if workers <= 1 {
            // One process per vCPU, reset for each packet instead of built anew; packets take the
            // vCPUs in turn.
            // The `--out` records are written straight into the output capture (`run(...out:)`).
            let cpus = session.cpus
            let runner = PacketRunner(session: session, processes: cpus, keepsDeliveries: keepOutputs)
            var writer = output?.records()
            for index in records.indices {
                progress.update(index)
                let cpu = cpus == 1 ? 0 : index % cpus
                if let listed = try runner.run(
                    capture.bytes(index), records[index], index: index, cpu: cpu, slot: cpu, out: &writer)
                {
                    add(listed, index: index)
                }
            }
            if let writer { output?.finish([writer]) }
            tally = runner.tally
        } else {
            tally = try FlowWorkers(session: session, workers: workers, keepsDeliveries: keepOutputs).run(
                capture, progress: progress, out: output
            ) { index, outcome in
                add(outcome, index: index)
            }
        }
        let (counts, destinations, errorCount, modified, instructions) = (
            tally.verdicts, tally.destinations, tally.errors, tally.modified, tally.instructions
        )
        // Packets the program's hook does not see (sk_lookup: not looked up), a row of their own.
        let notRunRow = tally.notRun > 0 ? [("not looked up", tally.notRun)] : []
        progress.finish()
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9

        let ordered = destinations.keys.sorted { $0.sortKey < $1.sortKey }
        var files: [PacketDestination: String] = [:]
        if let directory = options.outDirectory {
            for destination in ordered { files[destination] = Self.path(destination.fileName, in: directory) }
            try checkCollisions(files.values.sorted())
        }
        if let outPath = options.outPath, let output {
            try output.write(to: outPath)
        }
        for destination in ordered {
            guard let file = files[destination] else { continue }
            var destinationWriter = PcapWriter(nanosecond: nanosecond, linkType: capture.linkType)
            for record in outputs[destination] ?? [] { destinationWriter.append(record) }
            try Input.write(destinationWriter.bytes, to: file)
        }
        // With `--out -` the capture is standard output, so the report goes to standard error.
        let toStandardError = options.outPath == "-"
        func report(_ text: String) {
            if toStandardError { Console.err(text) } else { Console.out(text) }
        }
        let changes = before.changes(to: session.snapshot())
        let verdicts = counts.keys.sorted { sortKey($0) < sortKey($1) }.map {
            (session.verdict($0) ?? "r0 = \($0)", counts[$0] ?? 0)
        }

        if options.json {
            var members: [(String, JSONOutput)] = [
                ("program", .string(session.source.name)),
                ("type", .string(session.type.description)),
                ("input", .string(name)),
                ("packets", .integer(Int64(records.count))),
                ("verdicts", .object((verdicts + notRunRow).map { ($0.0, .integer(Int64($0.1))) })),
                ("errors", .integer(Int64(errorCount))),
                ("instructions", .unsigned(instructions)),
            ]
            members.append(
                (
                    "destinations",
                    .array(
                        ordered.map { destination in
                            var fields: [(String, JSONOutput)] = [
                                ("destination", .string(destination.description)),
                                ("packets", .integer(Int64(destinations[destination] ?? 0))),
                            ]
                            if let file = files[destination] { fields.append(("file", .string(file))) }
                            return .object(fields)
                        })
                ))
            if let directory = options.outDirectory { members.append(("out_dir", .string(directory))) }
            if let output, let outPath = options.outPath {
                members.append(("out", .string(outPath)))
                members.append(("written", .integer(Int64(output.packetCount))))
                members.append(("modified", .integer(Int64(modified))))
            }
            members.append(
                ("trace", .array(trace.map { .object([("packet", .integer(Int64($0.0))), ("line", .string($0.1))]) })))
            members.append(
                (
                    "events",
                    .array(
                        events.map { number, event in
                            guard case .object(let fields) = display.json(event) else { return .null }
                            return .object([("packet", .integer(Int64(number)))] + fields)
                        })
                ))
            members.append(("map_changes", .array(changes.map(display.json))))
            if !errors.isEmpty { members.append(("error_messages", .array(errors.map(JSONOutput.string)))) }
            if !warnings.isEmpty { members.append(("warnings", .array(warnings.map(JSONOutput.string)))) }
            report(JSONOutput.object(members).text)
        } else {
            var out =
                "program \(session.source.name) (\(session.type)) over \(name): \(records.count) packet\(records.count == 1 ? "" : "s")\n"
            out += "verdicts:\n"
            let rows = verdicts + notRunRow + (errorCount > 0 ? [("error", errorCount)] : [])
            let width = rows.map(\.0.count).max() ?? 0
            let countWidth = rows.map { String($0.1).count }.max() ?? 0
            for (verdict, count) in rows {
                let percent = records.isEmpty ? 0 : Double(count) * 100 / Double(records.count)
                out +=
                    "  \(verdict)\(String(repeating: " ", count: width - verdict.count))  "
                    + String(count).leftPadded(to: countWidth, with: " ") + "  (\(String(format: "%.1f", percent))%)\n"
            }
            if !ordered.isEmpty {
                out += options.outDirectory.map { "destinations (one capture each in \($0)):\n" } ?? "destinations:\n"
                let nameWidth = ordered.map(\.description.count).max() ?? 0
                let numberWidth = ordered.map { String(destinations[$0] ?? 0).count }.max() ?? 0
                for destination in ordered {
                    let name = destination.description
                    out +=
                        "  \(name)\(String(repeating: " ", count: nameWidth - name.count))  "
                        + String(destinations[destination] ?? 0).leftPadded(to: numberWidth, with: " ")
                    if files[destination] != nil { out += "  \(destination.fileName)" }
                    out += "\n"
                }
            }
            let perPacket = records.isEmpty ? 0 : Double(instructions) / Double(records.count)
            out += "instructions executed: \(instructions) (\(String(format: "%.1f", perPacket)) per packet)\n"
            if traceCount > 0 {
                out += "trace output (\(traceCount) line\(traceCount == 1 ? "" : "s")):\n"
                out += trace.map { "  [packet \($0.0)] \($0.1)\n" }.joined()
                if traceCount > trace.count { out += "  ... \(traceCount - trace.count) more\n" }
            }
            if eventCount > 0 {
                out += "events (\(eventCount)):\n"
                out += events.map { "  [packet \($0.0)] \(display.describe($0.1))\n" }.joined()
                if eventCount > events.count { out += "  ... \(eventCount - events.count) more\n" }
            }
            out += changes.isEmpty ? "maps: no changes\n" : "map changes:\n" + display.describe(changes)
            if let output, let outPath = options.outPath {
                out +=
                    "wrote \(output.packetCount) packet\(output.packetCount == 1 ? "" : "s") to \(outPath) (\(modified) modified)\n"
            }
            for warning in warnings { out += "warning: \(warning)\n" }
            if records.count > 0, elapsed > 0 {
                out +=
                    "time: \(String(format: "%.3f", elapsed)) s (\(Int(Double(records.count) / elapsed)) packets/s"
                    + (workers > 1 ? ", \(workers) workers)\n" : ")\n")
            }
            report(out)
        }
        if errorCount > 0 {
            throw RuntimeError(
                "\(errorCount) of \(records.count) runs failed:\n  " + errors.joined(separator: "\n  ")
                    + (errorCount > errors.count ? "\n  ... \(errorCount - errors.count) more" : ""))
        }
    }

    /// Verdicts sort by their value (tc actions as signed numbers).
    func sortKey(_ r0: UInt64) -> Int64 {
        session.type == .schedCls || session.type == .schedAct
            ? Int64(Int32(truncatingIfNeeded: r0)) : Int64(bitPattern: r0)
    }

    /// A capture record of `bytes`, which a run made of the packet `original` (bytes in place)
    /// of `record`: its timestamp, and its original length when the bytes are unchanged.
    static func record(_ bytes: [UInt8], from original: UnsafeRawBufferPointer, of record: PcapRecord) -> PcapPacket {
        let unchanged = bytes.withUnsafeBytes { same($0, original) }
        return PcapPacket(
            data: bytes, timestamp: record.timestamp, originalLength: unchanged ? record.originalLength : nil)
    }

    /// Whether two byte ranges hold the same bytes.
    static func same(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        guard let first = a.baseAddress, let second = b.baseAddress, a.count > 0 else { return true }
        return memcmp(first, second, a.count) == 0
    }

    /// `name` in `directory`.
    static func path(_ name: String, in directory: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// Makes sure `--out-dir` is a writable directory, creating it (and its parents) if missing.
    static func prepare(directory: String) throws(RuntimeError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw RuntimeError(
                    "--out-dir \(directory) exists and is not a directory; give a directory (it is created if missing)")
            }
        } else {
            // mkdir each missing part of the path, so a failure names its errno.
            var prefix = directory.hasPrefix("/") ? "/" : ""
            for part in directory.split(separator: "/") {
                prefix += part
                if mkdir(prefix, 0o777) != 0, errno != EEXIST {
                    throw RuntimeError(
                        "--out-dir \(directory): cannot create the directory \(prefix) (\(String(cString: strerror(errno))))"
                    )
                }
                prefix += "/"
            }
        }
        guard access(directory, W_OK | X_OK) == 0 else {
            throw RuntimeError("--out-dir \(directory): cannot write into the directory (permission denied)")
        }
    }

    /// Refuses, before anything is written, a destination capture that is the input capture or
    /// the `--out` file.
    func checkCollisions(_ files: [String]) throws(RuntimeError) {
        func same(_ a: String, _ b: String) -> Bool {
            Input.sameFile(a, b)
                || URL(fileURLWithPath: a).standardizedFileURL.path == URL(fileURLWithPath: b).standardizedFileURL.path
        }
        for file in files {
            if let input = options.pcapPath, same(file, input) {
                throw RuntimeError(
                    "--out-dir would overwrite the input capture \(input) with \(file): choose another directory")
            }
            if let out = options.outPath, out != "-", same(file, out) {
                throw RuntimeError(
                    "--out \(out) is also the --out-dir capture \(file): choose another --out file or directory")
            }
        }
    }
}

/// The context of each packet of a capture, with its ingress ifindex.
///
/// XDP contexts are refilled in place: one `XDPContext` with the `--ctx` fields applied and
/// checked once (its checks do not depend on the packet), made for the first packet and kept in
/// `slot`, whose packet is replaced for each packet — no existential box, field pass or dynamic
/// cast per packet. Other contexts (`sk_buff`, whose `wire_len` is checked against each packet)
/// are made anew.
final class PacketContexts {
    private let session: Session
    /// The XDP context of every packet once the first packet made it (`isReady`): the caller
    /// sets each packet's bytes (`packet`) and attaches it.
    let slot = XDPSlot()

    init(session: Session) { self.session = session }

    /// The context of a packet whose bytes are `packet` (read in place: they must stay valid
    /// until the context is attached). The first XDP packet's context fills `slot` (the context
    /// returned), which the next packets reuse.
    func context(packet: UnsafeRawBufferPointer) throws(RuntimeError) -> (context: any Context, ingressIfindex: UInt32)
    {
        let context = try session.context(packet: Array(packet))
        if let xdp = context as? XDPContext {
            slot.fill(xdp)
            slot.packet = packet
            return (slot, xdp.ingressIfindex)
        }
        return (context, (context as? SKBContext)?.ingressIfindex ?? 0)
    }

    /// An `XDPContext` passed by reference, attached with the current packet's bytes in place.
    final class XDPSlot: Context {
        /// The context, once the first packet made it (attaching before that is an error),
        /// behind a reference held by hand (released when replaced and in `deinit`): attaching
        /// reads it from a `let` of an object used unretained, no reference count per packet.
        private var made: Unmanaged<Made>?
        /// Whether `made` is set: a stored flag, so the per-packet test touches no reference.
        private(set) var isReady = false
        private(set) var ingressIfindex: UInt32 = 0
        /// The packet attached next (set per packet: no dynamic exclusivity check).
        @exclusivity(unchecked) var packet = UnsafeRawBufferPointer(start: nil, count: 0)

        private final class Made {
            let context: XDPContext
            init(_ context: XDPContext) { self.context = context }
            // Here, `context` is a `let` of `self`: attaching borrows it (no copy of its fields).
            func attach(to process: MimicCore.Process, packet: UnsafeRawBufferPointer) -> Result<Void, SetupError> {
                Result { () throws(SetupError) in try context.attach(to: process, packet: packet) }
            }
        }

        func fill(_ context: XDPContext) {
            made?.release()
            made = Unmanaged.passRetained(Made(context))
            ingressIfindex = context.ingressIfindex
            isReady = true
        }

        func attach(to process: MimicCore.Process) throws(SetupError) {
            guard let made else { throw .message("no XDP context was made for the capture's packets") }
            let packet = packet
            try made._withUnsafeGuaranteedRef { $0.attach(to: process, packet: packet) }.get()
        }

        /// The reset's quick path (`Context.rearm`): the packet attached by renewing the previous one.
        func rearm(_ process: MimicCore.Process) -> Bool {
            guard let made else { return false }
            let packet = packet
            return made._withUnsafeGuaranteedRef { $0.context.rearm(process, packet: packet) }
        }

        deinit { made?.release() }
    }
}

/// A progress line on standard error for long captures, shown only when standard error is a
/// terminal (so piped and tested output stays deterministic).
final class Progress {
    let total: Int
    let enabled: Bool
    private var lastShown = -1

    /// Captures of at least this many packets show progress.
    static let minimumPackets = 10_000

    init(total: Int) {
        self.total = total
        enabled = total >= Progress.minimumPackets && isatty(STDERR_FILENO) == 1
    }

    /// Called with each packet's index: shows the line now and then (cheap to call per packet).
    @inline(__always)
    func update(_ index: Int) {
        if enabled, index & 0x3FFF == 0 { show(index) }
    }

    private func show(_ index: Int) {
        let percent = index * 100 / max(1, total)
        guard percent != lastShown else { return }
        lastShown = percent
        Console.err("\rpacket \(index + 1) of \(total) (\(percent)%)")
    }

    func finish() {
        guard enabled else { return }
        Console.err("\r\u{1B}[K")
    }
}
