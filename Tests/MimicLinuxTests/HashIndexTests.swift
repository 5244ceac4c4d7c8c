import Foundation
import Synchronization
import Testing

@testable import MimicLinux

@Suite("Hash maps: the kernel's jhash and the slot index")
struct HashIndexTests {
    /// `htab_map_hash` over bytes `i * 37 + 11` (i = 0, 1, ...) for these key sizes and seeds,
    /// computed by a C copy of include/linux/jhash.h (`jhash2` for multiples of 4, else `jhash`).
    static let vectors: [(size: Int, seed: UInt32, hash: UInt32)] = [
        (1, 0, 0xb9c0_f036), (3, 0, 0xa710_25c3), (4, 0, 0x44e1_a72e), (5, 0, 0xcd53_084d),
        (8, 0, 0x39c6_0a25), (11, 0, 0x37d9_d710), (12, 0, 0x3879_58f9), (13, 0, 0x0d54_3670),
        (16, 0, 0x7f4b_8ae7), (20, 0, 0xc84f_b716), (24, 0, 0x2d97_23a7), (25, 0, 0x43bd_1aa6),
        (36, 0, 0xb1bf_af9f), (40, 0, 0x4e4e_072c), (64, 0, 0xe7d0_352d),
        (1, 0x1234_5678, 0x8ca0_3486), (3, 0x1234_5678, 0x4259_03dd), (4, 0x1234_5678, 0x9c55_f910),
        (5, 0x1234_5678, 0x0711_2ee0), (8, 0x1234_5678, 0xbc46_521b), (11, 0x1234_5678, 0x02f8_0256),
        (12, 0x1234_5678, 0x2131_3dc9), (13, 0x1234_5678, 0x4724_ca03), (16, 0x1234_5678, 0x708c_93d2),
        (20, 0x1234_5678, 0xb15d_913b), (24, 0x1234_5678, 0x7357_dc70), (25, 0x1234_5678, 0x1f8f_284b),
        (36, 0x1234_5678, 0x59fd_7a1e), (40, 0x1234_5678, 0x33e3_98ae), (64, 0x1234_5678, 0x8b01_bc48),
    ]

    @Test func jhashMatchesTheKernel() {
        let bytes = (0..<64).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
        for vector in Self.vectors {
            let hash = bytes.withUnsafeBytes {
                JenkinsHash.mapHash($0.baseAddress, count: vector.size, seed: vector.seed)
            }
            #expect(hash == vector.hash, "key size \(vector.size), seed \(vector.seed)")
        }
    }

    /// Inserts, lookups and removals against a dictionary, through growth and tombstones.
    @Test(arguments: [4, 6, 13])
    func slotIndexAgreesWithADictionary(keySize: Int) {
        var index = SlotIndex(capacity: 3000)
        var model: [[UInt8]: Int] = [:]
        var generator = SystemRandomNumberGenerator()
        func key(_ n: Int) -> [UInt8] { (0..<keySize).map { UInt8(truncatingIfNeeded: n >> (8 * ($0 % 3)) &+ $0) } }
        for step in 0..<20_000 {
            let n = Int.random(in: 0..<4000, using: &generator)
            let k = key(n)
            if step % 3 == 2 {
                #expect(index.remove(k) == model.removeValue(forKey: k))
            } else if model[k] == nil {
                switch index.insert(k) {
                case .success(let slot): model[k] = slot
                case .failure(let error): #expect(error == .tooBig && model.count == 3000)
                }
            }
            #expect(index.slot(for: k) == model[k])
            #expect(index.count == model.count)
        }
        for (k, slot) in model { #expect(index.slot(for: k) == slot) }
        #expect(Set(index.elements.map(\.slot)) == Set(model.values))
        #expect(index.slot(for: [UInt8](repeating: 0, count: keySize + 1)) == nil, "another size is absent")
        #expect(index.insert([UInt8](repeating: 0, count: keySize + 1)) == .failure(.invalid))
    }
}

/// Lock-free lookups in a hash index (`SlotTable.concurrentSlot(for:)`, a sequence lock) while a
/// writer changes it under the lock, as `HashTableMap` lookups run beside updates from other
/// `MimicPool` workers.
@Suite("Hash maps: lock-free lookups")
struct ConcurrentHashIndexTests {
    final class Shared: @unchecked Sendable {
        let index = Mutex(SlotIndex(capacity: 10_000))
        let done = Atomic<Bool>(false)
        let ready = Atomic<Int>(0)
        let finished = Atomic<Int>(0)
        let validated = Atomic<Int>(0)
        let wrong = Atomic<Int>(0)
        var table: SlotTable { index.withLock { $0.table } }
    }

    func key(_ n: Int, size: Int) -> [UInt8] { (0..<size).map { UInt8(truncatingIfNeeded: n >> (8 * ($0 % 4)) &+ $0) } }

    /// Keys 0..<64 stay in the index while the writer inserts and removes 3,000 others (the table
    /// grows, fills with tombstones and is rebuilt in place): every answer a reader gets without the
    /// lock is right — a staying key at its slot, a key never inserted absent — and with no writer,
    /// every lookup is answered without the lock.
    @Test(arguments: [4, 8, 13])
    func lookupsWithoutTheLockSeeAConsistentTable(keySize: Int) {
        let shared = Shared()
        let stable: [Int] = shared.index.withLock { index in
            (0..<64).compactMap { try? index.insert(key($0, size: keySize)).get() }
        }
        #expect(stable.count == 64)
        let table = shared.table
        // Two reader threads search while this thread writes; the writer starts once both run.
        let readers = 2
        for worker in 0..<readers {
            Thread {
                shared.ready.add(1, ordering: .releasing)
                var n = worker
                while !shared.done.load(ordering: .acquiring) {
                    let probe = n % 128 // below 64: always present; 64..<128: never inserted
                    let answer = key(probe, size: keySize).withUnsafeBytes { table.concurrentSlot(for: $0) }
                    if let answer {
                        shared.validated.add(1, ordering: .relaxed)
                        if answer != (probe < 64 ? stable[probe] : nil) { shared.wrong.add(1, ordering: .relaxed) }
                    }
                    n += 7
                }
                shared.finished.add(1, ordering: .releasing)
            }.start()
        }
        while shared.ready.load(ordering: .acquiring) < readers { sched_yield() }
        for _ in 0..<6 {
            for n in 1_000..<4_000 { shared.index.withLock { _ = $0.insert(key(n, size: keySize)) } }
            for n in 1_000..<4_000 { shared.index.withLock { _ = $0.remove(key(n, size: keySize)) } }
        }
        shared.done.store(true, ordering: .releasing)
        while shared.finished.load(ordering: .acquiring) < readers { sched_yield() }
        #expect(shared.wrong.load(ordering: .relaxed) == 0)
        #expect(shared.validated.load(ordering: .relaxed) > 0)
        for probe in 0..<128 {
            let answer = key(probe, size: keySize).withUnsafeBytes { table.concurrentSlot(for: $0) }
            #expect(answer == .some(probe < 64 ? stable[probe] : nil), "key \(probe)")
        }
    }
}
