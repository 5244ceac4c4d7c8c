import Foundation
import MimicCore
import MimicKernel
import MimicLinux

/// `mimic-bench --firewall`: what one packet of `mimic run --pcap` costs for the example firewall
/// (`Examples/xdp_firewall.o`, blocklist preloaded) — the process reset, the XDP context
/// attached with the packet's bytes in place, and the run — on each engine, beside the kernel's
/// JIT running the same object through `BPF_PROG_TEST_RUN` with a repeat count (when `bpf()` is
/// reachable: root).
///
/// The packets cycle through four frames (a TCP SYN from the blocked 192.0.2.66, a UDP query from
/// an allowed address, an IPv6 frame, an ARP request), so the program takes its drop, pass and
/// non-IPv4 paths as a capture makes it. The process and context are made before the clock
/// starts; each round runs `packets` packets; the best round counts. R0 of every path is checked
/// against the kernel's, when it runs. Then each frame is run alone, repeated as the kernel's
/// repeat count runs it, beside the kernel's figure for that frame (the kernel reports whole
/// nanoseconds): which path costs what, and the mean of the frames measured as the kernel's are.
struct FirewallBenchmark {
    let rounds: Int
    let quick: Bool
    let engines: [Engine]

    static var objectPath: String {
        SuiteBenchmark.packageRoot.appendingPathComponent("Examples/xdp_firewall.o").path
    }

    /// The frames the packets cycle through, and the verdict each must get (XDP_DROP for the
    /// blocked source, XDP_PASS for the rest).
    static let frames: [(name: String, bytes: [UInt8], verdict: UInt64)] = [
        ("blocked TCP", ipv4(source: [192, 0, 2, 66], protocol: 6, payload: tcpSyn), 1),
        ("allowed UDP", ipv4(source: [10, 0, 0, 1], protocol: 17, payload: udpQuery), 2),
        ("IPv6", ethernet(type: 0x86DD, payload: [0x60] + [UInt8](repeating: 0, count: 39) + udpQuery), 2),
        ("ARP", ethernet(type: 0x0806, payload: [UInt8](repeating: 0, count: 28)), 2),
    ]

    static let tcpSyn: [UInt8] = [0x04, 0x00, 0x00, 0x16] + [UInt8](repeating: 0, count: 8) + [0x50, 0x02, 0xFF, 0xFF]
        + [0, 0, 0, 0]
    static let udpQuery: [UInt8] = [0x04, 0x00, 0x00, 0x35, 0x00, 0x10, 0x00, 0x00] + Array("query123".utf8)

    static func ethernet(type: UInt16, payload: [UInt8]) -> [UInt8] {
        [0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, UInt8(type >> 8), UInt8(type & 0xFF)] + payload
    }

    static func ipv4(source: [UInt8], protocol proto: UInt8, payload: [UInt8]) -> [UInt8] {
        let length = 20 + payload.count
        let header: [UInt8] =
            [0x45, 0, UInt8(length >> 8), UInt8(length & 0xFF), 0, 1, 0, 0, 64, proto, 0, 0] + source + [10, 0, 0, 2]
        return ethernet(type: 0x0800, payload: header + payload)
    }

    /// An `XDPContext` attached with other bytes as its packet (as `mimic run --pcap` attaches
    /// each packet of a memory-mapped capture).
    final class PacketSlot: Context {
        let context: XDPContext
        var packet = UnsafeRawBufferPointer(start: nil, count: 0)
        init(_ context: XDPContext) { self.context = context }
        func attach(to process: MimicCore.Process) throws(SetupError) {
            try context.attach(to: process, packet: packet)
        }
        func rearm(_ process: MimicCore.Process) -> Bool { context.rearm(process, packet: packet) }
    }

    func run() throws {
        let packets = quick ? 20_000 : 200_000
        let object = try ObjectFile(contentsOf: Self.objectPath)
        let blockedKey: [UInt8] = [192, 0, 2, 66]
        let zero = [UInt8](repeating: 0, count: 8)
        // The frames in one buffer, read in place.
        let all = Self.frames.flatMap(\.bytes)
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: all.count, alignment: 16)
        defer { storage.deallocate() }
        storage.copyBytes(from: all)
        var views: [UnsafeRawBufferPointer] = []
        var offset = 0
        for frame in Self.frames {
            views.append(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(storage)[offset..<offset + frame.bytes.count]))
            offset += frame.bytes.count
        }

        print("\(packets) packets per round, \(rounds) rounds (best), frames: \(Self.frames.map(\.name).joined(separator: ", "))")
        var kernelNanoseconds: Double?
        var kernelOfFrame: [Double]?
        if KernelBPF.isAvailable {
            let kernel = try KernelObject(object: object)
            guard let map = kernel.maps["blocklist"] else { throw FirewallError("the kernel object has no blocklist map") }
            try map.update(key: blockedKey, value: zero)
            let program = try kernel.program(named: "xdp_firewall")
            var best = Double.infinity
            var bestOfFrame = [Double](repeating: .infinity, count: Self.frames.count)
            for _ in 0..<rounds {
                var total = 0.0
                for (index, frame) in Self.frames.enumerated() {
                    let run = try program.testRun(data: frame.bytes, repeat: packets / Self.frames.count)
                    guard UInt64(run.returnValue) == frame.verdict else {
                        throw FirewallError("the kernel returned \(run.returnValue) for the \(frame.name) frame, expected \(frame.verdict)")
                    }
                    total += Double(run.durationNanoseconds)
                    bestOfFrame[index] = min(bestOfFrame[index], Double(run.durationNanoseconds))
                }
                best = min(best, total / Double(Self.frames.count))
            }
            kernelNanoseconds = best
            kernelOfFrame = bestOfFrame
            print(String(format: "kernel JIT (BPF_PROG_TEST_RUN)   run %8.1f ns/packet", best))
        } else {
            print("kernel JIT: not measured (\(KernelBPF.unavailableReason ?? "bpf() not reachable"))")
        }

        for engine in engines {
            let vm = engine.makeVM()
            let loaded = try vm.load(object: object)
            let program = try loaded.program(named: "xdp_firewall")
            guard let blocklist = (vm.emulator as? LinuxEmulator)?.map(named: "blocklist") else {
                throw FirewallError("\(Self.objectPath) has no blocklist map")
            }
            if let errno = blocklist.update(key: blockedKey, value: zero, flags: .any, cpu: 0) {
                throw FirewallError("preloading the blocklist failed: \(errno)")
            }
            let slot = PacketSlot(XDPContext(packet: Self.frames[0].bytes))
            let process = try vm.makeProcess(for: program, context: slot)
            for (index, frame) in Self.frames.enumerated() {
                slot.packet = views[index]
                try process.reset(context: slot)
                let r0 = try process.run()
                guard r0 == frame.verdict else {
                    throw FirewallError("\(engine.rawValue) returned \(r0) for the \(frame.name) frame, expected \(frame.verdict)")
                }
            }
            let count = views.count
            var resetOnly = Double.infinity
            var whole = Double.infinity
            for _ in 0..<rounds {
                var start = DispatchTime.now().uptimeNanoseconds
                for index in 0..<packets {
                    slot.packet = views[index % count]
                    try process.reset(context: slot)
                }
                resetOnly = min(resetOnly, Double(DispatchTime.now().uptimeNanoseconds - start) / Double(packets))
                start = DispatchTime.now().uptimeNanoseconds
                for index in 0..<packets {
                    slot.packet = views[index % count]
                    try process.reset(context: slot)
                    _ = try process.run()
                }
                whole = min(whole, Double(DispatchTime.now().uptimeNanoseconds - start) / Double(packets))
            }
            var line = String(
                format: "%-12@ reset + attach %7.1f ns, + run %7.1f ns/packet", engine.rawValue as NSString, resetOnly,
                whole)
            if let kernelNanoseconds { line += String(format: "  (%.1fx the kernel's JIT)", whole / kernelNanoseconds) }
            print(line)
            // Each frame repeated, as the kernel's repeat count runs it: which path costs what.
            var ofFrame = [Double](repeating: .infinity, count: count)
            for _ in 0..<rounds {
                for index in 0..<count {
                    slot.packet = views[index]
                    let repeats = packets / count
                    let start = DispatchTime.now().uptimeNanoseconds
                    for _ in 0..<repeats {
                        try process.reset(context: slot)
                        _ = try process.run()
                    }
                    let nanoseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(repeats)
                    ofFrame[index] = min(ofFrame[index], nanoseconds)
                }
            }
            func report(_ label: String, _ nanoseconds: Double, kernel: Double?) {
                let padded = (label + ":").padding(toLength: 13, withPad: " ", startingAt: 0)
                var line = "  \(engine.rawValue), each frame repeated, \(padded)"
                line += String(format: "%7.1f ns/packet", nanoseconds)
                if let kernel { line += String(format: ", kernel %5.1f ns (%.1fx)", kernel, nanoseconds / kernel) }
                print(line)
            }
            for (index, frame) in Self.frames.enumerated() {
                report(frame.name, ofFrame[index], kernel: kernelOfFrame?[index])
            }
            report(
                "mean", ofFrame.reduce(0, +) / Double(count),
                kernel: kernelOfFrame.map { $0.reduce(0, +) / Double(count) })
        }
    }
}

/// Why `mimic-bench --firewall` stopped.
struct FirewallError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
