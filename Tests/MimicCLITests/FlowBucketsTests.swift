import Dispatch
import MimicPcap
import Testing

@testable import mimic_cli

/// How `--workers` splits a capture: `FlowHasher` (the in-place hash the workers run) gives every
/// frame the bucket `FlowHash.bucket(of:buckets:)` gives it, and `FlowBuckets` hands each packet
/// to exactly one worker, in capture order, however the workers' threads are scheduled.
@Suite("--workers flow buckets")
struct FlowBucketsTests {
    /// `count` random frames: IPv4 TCP and UDP (with and without options, fragments, truncated),
    /// VLAN-tagged and double-tagged frames, IPv6, ARP, and runts of every short length.
    static func randomFrames(count: Int, seed: UInt64) -> [[UInt8]] {
        var state = seed
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(next(256)) } }
        let macs = bytes(12)
        return (0..<count).map { _ in
            var frame = macs
            for _ in 0..<[0, 0, 0, 1, 2][next(5)] { frame += [[0x81, 0x00], [0x88, 0xA8]][next(2)] + bytes(2) }
            switch next(8) {
            case 0...4: // IPv4
                let options = next(4) == 0 ? next(11) : 0
                let proto: UInt8 = [6, 17, 6, 17, 1, 47][next(6)]
                let fragment: [UInt8] = next(6) == 0 ? [UInt8(next(2) << 5), UInt8(next(256))] : [0x40, 0]
                frame += [0x08, 0x00, UInt8(0x40 | (5 + options)), 0] + bytes(4) + fragment + [64, proto, 0, 0]
                frame += bytes(8 + options * 4 + 4 + next(20))
            case 5: // IPv6
                frame += [0x86, 0xDD, 0x60, 0, 0, 0, 0, 20, [6, 17, 0, 58][next(4)], 64] + bytes(32 + 4 + next(20))
            case 6: // ARP
                frame += [0x08, 0x06] + bytes(28)
            default: // a runt or a truncated header
                frame = Array((frame + [0x08, 0x00, 0x45] + bytes(40)).prefix(next(48)))
            }
            if next(10) == 0 { frame = Array(frame.prefix(next(frame.count + 1))) }
            return frame
        }
    }

    /// A capture of `frames`, indexed as `mimic run --pcap` indexes one.
    static func capture(_ frames: [[UInt8]]) throws -> CaptureIndex {
        let file = PcapWriter.file(frames.enumerated().map { PcapPacket(data: $1, timestamp: UInt64($0) * 1_000) })
        var reader = try PcapReader(bytes: file)
        let records = try reader.remainingRecords()
        return CaptureIndex(reader: reader, records: records, firstNumber: 1, linkType: reader.linkType)
    }

    @Test("the in-place hash gives every frame the bucket of FlowHash.bucket(of:buckets:)", arguments: [2, 3, 5, 512])
    func hasherAgreesFrameByFrame(buckets: Int) throws {
        let frames = Self.randomFrames(count: 20_000, seed: UInt64(buckets))
        let capture = try Self.capture(frames)
        let bucketOf = UnsafeMutablePointer<UInt16>.allocate(capacity: frames.count)
        defer { bucketOf.deallocate() }
        capture.withHasher(buckets: buckets) { hasher in
            // In uneven runs, as the workers call it between packets.
            var start = 0
            var step = 1
            while start < frames.count {
                let end = min(start + step, frames.count)
                hasher.hash(start..<end, into: bucketOf)
                start = end
                step = step % 7 + 1
            }
        }
        var hashed = 0
        for (index, frame) in frames.enumerated() {
            let expected = frame.withUnsafeBytes { FlowHash.bucket(of: $0, buckets: buckets) }
            #expect(Int(bucketOf[index]) == expected, "frame \(index): \(frame)")
            if FlowHash.hash(of: frame) != nil { hashed += 1 }
        }
        // The frames exercise both paths: flows hashed, and frames without one (bucket 0).
        #expect(hashed > frames.count / 2 && hashed < frames.count)
    }

    /// Each worker's packets as `FlowWorkers` walks them: block by block, waiting for the block,
    /// listing its own, hashing a few of its claim after each.
    static func walk(_ buckets: FlowBuckets, worker: Int, hasher: FlowHasher, block: Int) -> [Int] {
        let own = UnsafeMutableBufferPointer<Int>.allocate(capacity: block)
        defer { own.deallocate() }
        var claim = FlowBuckets.Claim()
        var walked: [Int] = []
        for index in 0..<buckets.blocks {
            buckets.waitUntilHashed(index, &claim, with: hasher)
            let owned = buckets.list(block: index, bucket: worker, into: own)
            for packet in own[..<owned] {
                walked.append(packet)
                buckets.advance(&claim, whileRunning: index, with: hasher)
            }
        }
        return walked
    }

    @Test("every packet goes to the worker of its bucket, once, in capture order", arguments: [1, 2, 3, 8])
    func eachPacketOnce(workers: Int) throws {
        let frames = Self.randomFrames(count: 5_000, seed: 99)
        let capture = try Self.capture(frames)
        let block = 64
        let buckets = FlowBuckets(packets: frames.count, block: block, workers: workers)
        let walks = UnsafeMutableBufferPointer<[Int]>.allocate(capacity: workers)
        walks.initialize(repeating: [])
        defer {
            walks.deinitialize()
            walks.deallocate()
        }
        let shared = UncheckedBox(walks)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            capture.withHasher(buckets: workers) { hasher in
                shared.value[worker] = Self.walk(buckets, worker: worker, hasher: hasher, block: block)
            }
        }
        var seen = [Int](repeating: -1, count: frames.count)
        for worker in 0..<workers {
            #expect(walks[worker] == walks[worker].sorted(), "worker \(worker) out of capture order")
            for packet in walks[worker] {
                #expect(seen[packet] == -1, "packet \(packet) run twice")
                seen[packet] = worker
            }
        }
        for (index, frame) in frames.enumerated() {
            #expect(seen[index] == frame.withUnsafeBytes { FlowHash.bucket(of: $0, buckets: workers) })
        }
    }

    @Test("workers that run one after another (more workers than threads) do not wait for each other")
    func workersOneAfterAnother() throws {
        let frames = Self.randomFrames(count: 3_000, seed: 7)
        let capture = try Self.capture(frames)
        let workers = 4
        let buckets = FlowBuckets(packets: frames.count, block: 100, workers: workers)
        var total = 0
        capture.withHasher(buckets: workers) { hasher in
            // Worker 0 walks the whole capture before worker 1 starts: it must hash every block
            // it has to wait for itself, since no other worker runs yet.
            for worker in 0..<workers {
                total += Self.walk(buckets, worker: worker, hasher: hasher, block: 100).count
            }
        }
        #expect(total == frames.count)
    }
}

/// A value the threads of `concurrentPerform` share, each writing only its own element.
private struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
