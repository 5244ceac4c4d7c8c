#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import MimicCore
import MimicLinux
import MimicPcap

/// `mimic run --pcap`: one run per packet of a capture, a verdict summary, the packets that
/// leave alive written to `--out`.
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
        let packets = try options.packets()
        let display = ValueDisplay(object: session.object, cpus: session.cpus)
        let before = session.snapshot()
        var writer = options.outPath.map { _ in PcapWriter() }
        var counts: [UInt64: Int] = [:]
        var errors: [String] = []
        var errorCount = 0
        var modified = 0
        var instructions: UInt64 = 0
        var trace: [(Int, String)] = []
        var traceCount = 0
        var events: [(Int, Session.Event)] = []
        var eventCount = 0
        var warnings: [String] = []
        let progress = Progress(total: packets.count)
        let start = DispatchTime.now().uptimeNanoseconds

        // One process per vCPU, reset for each packet instead of built anew.
        var processes = [MimicCore.Process?](repeating: nil, count: session.cpus)
        for (index, (number, packet)) in packets.enumerated() {
            progress.update(index)
            let context = try session.context(packet: packet.data)
            let cpu = index % session.cpus
            let process = try session.process(reusing: processes[cpu], context: context, vCPU: cpu)
            processes[cpu] = process
            let r0: UInt64
            do {
                r0 = try Timeout.run(process, limit: session.limit, timeout: session.timeout)
            } catch {
                errorCount += 1
                if errors.count < Self.maxErrorsShown { errors.append("packet \(number): \(session.message(for: error))") }
                instructions &+= process.instructionsExecuted
                continue
            }
            instructions &+= process.instructionsExecuted
            counts[r0, default: 0] += 1
            if let state = LinuxProcessState.of(process) {
                for line in state.traceOutput {
                    traceCount += 1
                    if trace.count < Self.maxReported { trace.append((number, line)) }
                }
                for warning in state.warnings where warnings.count < Self.maxReported {
                    warnings.append("packet \(number): \(warning)")
                }
            }
            for event in session.drainEvents() {
                eventCount += 1
                if events.count < Self.maxReported { events.append((number, event)) }
            }
            if writer != nil, let out = output(r0: r0, process: process) {
                if out != packet.data { modified += 1 }
                writer?.append(PcapPacket(data: out, timestamp: packet.timestamp,
                                          originalLength: out == packet.data ? packet.originalLength : nil))
            }
        }
        progress.finish()
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9

        if let outPath = options.outPath, let writer {
            try Input.write(writer.bytes, to: outPath)
        }
        // With `--out -` the capture is standard output, so the report goes to standard error.
        let toStandardError = options.outPath == "-"
        func report(_ text: String) {
            if toStandardError { Console.err(text) } else { Console.out(text) }
        }
        let changes = before.changes(to: session.snapshot())
        let verdicts = counts.keys.sorted { sortKey($0) < sortKey($1) }.map { (session.verdict($0) ?? "r0 = \($0)", counts[$0] ?? 0) }

        if options.json {
            var members: [(String, JSONOutput)] = [
                ("program", .string(session.source.name)),
                ("type", .string(session.type.description)),
                ("input", .string(name)),
                ("packets", .integer(Int64(packets.count))),
                ("verdicts", .object(verdicts.map { ($0.0, .integer(Int64($0.1))) })),
                ("errors", .integer(Int64(errorCount))),
                ("instructions", .unsigned(instructions)),
            ]
            if let writer, let outPath = options.outPath {
                members.append(("out", .string(outPath)))
                members.append(("written", .integer(Int64(writer.packetCount))))
                members.append(("modified", .integer(Int64(modified))))
            }
            members.append(("trace", .array(trace.map { .object([("packet", .integer(Int64($0.0))), ("line", .string($0.1))]) })))
            members.append(("events", .array(events.map { number, event in
                guard case .object(let fields) = display.json(event) else { return .null }
                return .object([("packet", .integer(Int64(number)))] + fields)
            })))
            members.append(("map_changes", .array(changes.map(display.json))))
            if !errors.isEmpty { members.append(("error_messages", .array(errors.map(JSONOutput.string)))) }
            report(JSONOutput.object(members).text)
        } else {
            var out = "program \(session.source.name) (\(session.type)) over \(name): \(packets.count) packet\(packets.count == 1 ? "" : "s")\n"
            out += "verdicts:\n"
            let rows = verdicts + (errorCount > 0 ? [("error", errorCount)] : [])
            let width = rows.map(\.0.count).max() ?? 0
            let countWidth = rows.map { String($0.1).count }.max() ?? 0
            for (verdict, count) in rows {
                let percent = packets.isEmpty ? 0 : Double(count) * 100 / Double(packets.count)
                out += "  \(verdict)\(String(repeating: " ", count: width - verdict.count))  "
                    + String(count).leftPadded(to: countWidth, with: " ") + "  (\(String(format: "%.1f", percent))%)\n"
            }
            let perPacket = packets.isEmpty ? 0 : Double(instructions) / Double(packets.count)
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
            if let writer, let outPath = options.outPath {
                out += "wrote \(writer.packetCount) packet\(writer.packetCount == 1 ? "" : "s") to \(outPath) (\(modified) modified)\n"
            }
            for warning in warnings { out += "warning: \(warning)\n" }
            if packets.count > 0, elapsed > 0 {
                out += "time: \(String(format: "%.3f", elapsed)) s (\(Int(Double(packets.count) / elapsed)) packets/s)\n"
            }
            report(out)
        }
        if errorCount > 0 {
            throw RuntimeError("\(errorCount) of \(packets.count) runs failed:\n  " + errors.joined(separator: "\n  ")
                               + (errorCount > errors.count ? "\n  ... \(errorCount - errors.count) more" : ""))
        }
    }

    /// Verdicts sort by their value (tc actions as signed numbers).
    func sortKey(_ r0: UInt64) -> Int64 {
        session.type == .schedCls || session.type == .schedAct ? Int64(Int32(truncatingIfNeeded: r0)) : Int64(bitPattern: r0)
    }

    /// The packet to write for a run that returned `r0`, or nil if the packet does not leave.
    func output(r0: UInt64, process: MimicCore.Process) -> [UInt8]? {
        guard let packet = session.packet(after: process) else { return nil }
        switch session.type {
        case .xdp:
            guard let action = XDPAction(returnValue: r0) else { return nil }
            return action == .pass || action == .tx || action == .redirect ? packet : nil
        case .schedCls, .schedAct:
            guard let action = TCAction(returnValue: r0) else { return nil }
            return [.ok, .unspec, .pipe, .reclassify, .redirect].contains(action) ? packet : nil
        case .socketFilter:
            // r0 bytes of the data are kept; a header pulled before the data leaves with them.
            guard r0 != 0, let buffer = LinuxProcessState.of(process)?.packet else { return nil }
            return Array(buffer.frame.prefix(buffer.pulledLength + Int(min(r0, UInt64(buffer.length)))))
        default:
            return r0 & 1 == 1 ? packet : nil
        }
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

    func update(_ index: Int) {
        guard enabled, index & 0x3FFF == 0 else { return }
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
