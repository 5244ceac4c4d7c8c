import Foundation
import Testing
import MimicCore
@testable import MimicKernel
import MimicLinux

/// `ObjectComparison` on maps of 2^24 entries (`Fixtures/big_maps.o`): the right differences and
/// agreement, at a memory cost that follows the entries touched, not `max_entries`.
@Suite(
    "Compare: maps of 16 million entries",
    .enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct LargeMapComparisonTests {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/big_maps.o").path

    /// An Ethernet + IPv4/UDP packet from 10.0.0.1 to 10.0.0.2.
    static let packet: [UInt8] = Fixtures.ethernet(
        type: 0x0800, payload: Fixtures.ipv4(protocol: 17, payload: [0x30, 0x39, 0, 0x35, 0, 8, 0, 0]))

    /// The peak resident set size (`VmHWM` of /proc/self/status) in bytes, or nil where unreadable.
    static func peakResident() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { return nil }
        return kilobytes * 1024
    }

    /// Resets the peak to the current resident size (`echo 5 > /proc/self/clear_refs`, Linux 4.0+).
    static func resetPeak() -> Bool {
        guard let file = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? file.close() }
        return (try? file.write(contentsOf: Data("5".utf8))) != nil
    }

    @Test("batched reads return what the key walk returns: hash maps past one batch, per-CPU hash, LPM fallback")
    func batches() throws {
        let hash = try KernelBPF.createMap(
            MapAttributes(name: "h", type: .hash, keySize: 4, valueSize: 8, maxEntries: 1 << 16))
        let perCPU = try KernelBPF.createMap(
            MapAttributes(name: "p", type: .perCPUHash, keySize: 8, valueSize: 4, maxEntries: 64))
        let lpm = try KernelBPF.createMap(
            MapAttributes(
                name: "l", type: .lpmTrie, keySize: 8, valueSize: 4, maxEntries: 16,
                flags: MapFlags.noPrealloc.rawValue))
        for index in 0..<40 {
            try hash.update(
                key: KernelObject.u32(UInt32(index * 977)), value: [UInt8](repeating: UInt8(index), count: 8))
            try perCPU.update(
                key: KernelObject.u32(UInt32(index)) + [1, 2, 3, 4],
                value: [UInt8](repeating: UInt8(index), count: perCPU.userValueSize))
        }
        try lpm.update(key: [24, 0, 0, 0, 10, 1, 2, 0], value: [1, 0, 0, 0])
        try lpm.update(key: [8, 0, 0, 0, 10, 0, 0, 0], value: [2, 0, 0, 0])
        for map in [hash, perCPU, lpm] {
            let walked = Dictionary(uniqueKeysWithValues: try map.entries().map { ($0.key, $0.value) })
            let batched = try map.entriesInBatches(batchSize: 7)
            #expect(batched.count == walked.count, "\(map.attributes.name)")
            #expect(
                Dictionary(uniqueKeysWithValues: batched.map { ($0.key, $0.value) }) == walked, "\(map.attributes.name)"
            )
        }
        #expect(try hash.entriesInBatches().count == 40)
    }

    @Test("two packets agree, changes only one side made are found, and memory stays bounded")
    func bigMaps() throws {
        let object = try ObjectFile(contentsOf: Self.path)
        let reset = Self.resetPeak()
        let startPeak = Self.peakResident()
        let comparison = try ObjectComparison(object: object, programName: "count_big")

        for round in 1...2 {
            let result = try comparison.run(packet: Self.packet)
            #expect(result.kernelReturn == 3, "XDP_TX")
            #expect(result.differences.isEmpty, "packet \(round): \(result.differences)")
        }
        // Both sides counted the packets at the touched indices and key.
        let source = KernelObject.u32(1) // 10.0.0.1 & 0xFFFFFF
        let last = KernelObject.u32(UInt32(1 << 24 - 1))
        let destination: [UInt8] = [10, 0, 0, 2]
        let two = [UInt8](withUnsafeBytes(of: UInt64(2).littleEndian) { Array($0) })
        let four = [UInt8](withUnsafeBytes(of: UInt64(4).littleEndian) { Array($0) })
        #expect(try comparison.kernel.maps["counters"]?.lookup(key: source) == two)
        #expect(try comparison.kernel.maps["counters"]?.lookup(key: last) == four)
        #expect(try comparison.kernel.maps["flows"]?.lookup(key: destination) == two)
        #expect(comparison.emulator.map(named: "counters")?.value(forKey: source) == two)
        #expect(comparison.emulator.map(named: "flows")?.value(forKey: destination) == two)
        let array = try #require(comparison.emulator.map(named: "counters") as? ArrayMap)
        #expect(array.touchedIndices == [1, 1 << 24 - 1])

        // Changes made on the kernel's side only: a touched index, a new hash element.
        let kernelCounters = try #require(comparison.kernel.maps["counters"])
        let kernelFlows = try #require(comparison.kernel.maps["flows"])
        try kernelCounters.update(key: source, value: four)
        try kernelFlows.update(key: [10, 0, 0, 9], value: two)
        let lines = try comparison.compareMaps()
        #expect(
            Set(lines) == [
                "map flows key 0a000009: only in the kernel",
                "map counters key 01000000: kernel \(ObjectComparison.hex(four)), Mimic \(ObjectComparison.hex(two))",
            ],
            "\(lines)")
        #expect(lines.count == 2)
        // Undone, the two agree again.
        try kernelCounters.update(key: source, value: two)
        #expect(try kernelFlows.delete(key: [10, 0, 0, 9]))
        #expect(try comparison.compareMaps().isEmpty)

        #expect(reset, "the peak resident size could not be reset (/proc/self/clear_refs)")
        if reset, let startPeak, let endPeak = Self.peakResident() {
            // Reading every entry of the two maps took gigabytes; what was touched takes little.
            // (Other tests running at the same time count too, hence the generous bound.)
            let growth = endPeak - startPeak
            print("◇ big_maps.o compare: peak resident size grew by \(growth >> 20) MiB")
            #expect(growth < 512 << 20, "peak resident size grew by \(growth >> 20) MiB")
        }
    }
}
