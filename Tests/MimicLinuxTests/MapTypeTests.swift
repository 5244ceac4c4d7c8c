import MimicCore
import MimicLinux
import Testing
import MimicTestSupport

@Suite("Maps: hash and array")
struct MapHashArrayTests {
    @Test func hashUpdateFlagsAndErrors() throws {
        let (vm, emulator) = makeLinuxVM()
        let map = try makeMap(emulator, vm, .hash, key: 4, value: 8, max: 2)
        #expect(map.update(key: le32(1), value: le64(10), flags: .any, cpu: 0) == nil)
        #expect(map.update(key: le32(1), value: le64(11), flags: .noExist, cpu: 0) == .exists)
        #expect(map.update(key: le32(2), value: le64(20), flags: .exist, cpu: 0) == .noEntry)
        #expect(map.update(key: le32(1), value: le64(12), flags: .exist, cpu: 0) == nil)
        #expect(map.value(forKey: le32(1)) == le64(12))
        #expect(map.update(key: le32(2), value: le64(20), flags: .noExist, cpu: 0) == nil)
        #expect(map.update(key: le32(3), value: le64(30), flags: .any, cpu: 0) == .tooBig)
        #expect(map.update(key: le32(1), value: le64(13), flags: .any, cpu: 0) == nil, "a full map still updates")
        #expect(map.update(key: le32(1), value: le64(1), flags: MapUpdateFlags(rawValue: 8), cpu: 0) == .invalid)
        #expect(map.update(key: le32(1), value: le64(1), flags: .lock, cpu: 0) == .invalid, "no spin lock in the value")
        #expect(map.update(key: [1, 2], value: le64(1), flags: .any, cpu: 0) == .invalid)
        #expect(map.update(key: le32(1), value: [1], flags: .any, cpu: 0) == .invalid)
        #expect(map.delete(key: le32(9)) == .noEntry)
        #expect(map.delete(key: le32(2)) == nil)
        #expect(map.value(forKey: le32(2)) == nil)
        #expect(map.lookupAddress(key: le32(2), cpu: 0) == nil)
        #expect(map.update(key: le32(3), value: le64(30), flags: .any, cpu: 0) == nil, "the freed slot is reused")
        #expect(Set(map.keys) == [le32(1), le32(3)])
    }

    @Test func hashIteration() throws {
        let (vm, emulator) = makeLinuxVM()
        let map = try makeMap(emulator, vm, .hash, key: 4, value: 4, max: 8)
        for i: UInt32 in 1...3 { #expect(map.update(key: le32(i), value: le32(i * 10), flags: .any, cpu: 0) == nil) }
        let first = try #require(map.nextKey(after: nil))
        #expect(map.nextKey(after: le32(99)) == first, "an unknown key restarts at the first, as the kernel does")
        var seen = [first]
        while let next = map.nextKey(after: seen.last) { seen.append(next) }
        #expect(Set(seen) == [le32(1), le32(2), le32(3)])
        #expect(seen.count == 3)
    }

    @Test func lookupPointsIntoMapStorage() throws {
        let (vm, emulator) = makeLinuxVM()
        let map = try makeMap(emulator, vm, .hash, key: 4, value: 8, max: 4)
        _ = map.update(key: le32(5), value: le64(0x1122), flags: .any, cpu: 0)
        let address = try #require(map.lookupAddress(key: le32(5), cpu: 0))
        let process = try vm.makeProcess(for: load(vm, "mov %r0, 0\nexit"))
        #expect(try process.memory.read(address, count: 8) == le64(0x1122))
        try process.memory.write(le64(0x3344), at: address)
        #expect(map.value(forKey: le32(5)) == le64(0x3344), "writes through the pointer change the map")
    }

    @Test func lruEvictsLeastRecentlyUsed() throws {
        let (vm, emulator) = makeLinuxVM()
        let map = try makeMap(emulator, vm, .lruHash, key: 4, value: 4, max: 3)
        for i: UInt32 in 1...3 { #expect(map.update(key: le32(i), value: le32(i), flags: .any, cpu: 0) == nil) }
        #expect(map.lookupAddress(key: le32(1), cpu: 0) != nil) // 1 is now the most recent; 2 the oldest
        #expect(map.update(key: le32(4), value: le32(4), flags: .any, cpu: 0) == nil, "LRU maps evict instead of E2BIG")
        #expect(map.value(forKey: le32(2)) == nil)
        #expect(Set(map.keys) == [le32(1), le32(3), le32(4)])
        #expect(map.update(key: le32(3), value: le32(33), flags: .exist, cpu: 0) == nil) // 3 refreshed; 1 oldest
        #expect(map.update(key: le32(5), value: le32(5), flags: .noExist, cpu: 0) == nil)
        #expect(map.value(forKey: le32(1)) == nil)
        #expect(Set(map.keys) == [le32(3), le32(4), le32(5)])
        #expect(map.update(key: le32(3), value: le32(1), flags: .noExist, cpu: 0) == .exists)
        #expect(map.update(key: le32(9), value: le32(1), flags: .exist, cpu: 0) == .noEntry)
        #expect(
            map.update(key: le32(3), value: le32(1), flags: .lock, cpu: 0) == .invalid, "LRU maps take no BPF_F_LOCK")
        #expect(map.delete(key: le32(9)) == .noEntry)
    }

    @Test func lruPerCPUEvictsToo() throws {
        let (vm, emulator) = makeLinuxVM(cpus: 2)
        let map = try makeMap(emulator, vm, .lruPerCPUHash, key: 4, value: 4, max: 2)
        for i: UInt32 in 1...3 { #expect(map.update(key: le32(i), value: le32(i), flags: .any, cpu: 1) == nil) }
        #expect(Set(map.keys) == [le32(2), le32(3)])
        #expect(map.perCPUValues(forKey: le32(3)) == [le32(0), le32(3)])
    }

    @Test func perCPUHashKeepsAValuePerCPU() throws {
        let (vm, emulator) = makeLinuxVM(cpus: 3)
        let map = try #require(try makeMap(emulator, vm, .perCPUHash, key: 4, value: 4, max: 4) as? HashTableMap)
        #expect(map.update(key: le32(1), value: le32(7), flags: .any, cpu: 2) == nil)
        #expect(map.perCPUValues(forKey: le32(1)) == [le32(0), le32(0), le32(7)], "other CPUs start at zero")
        #expect(map.update(key: le32(1), value: le32(5), flags: .exist, cpu: 0) == nil)
        #expect(map.perCPUValues(forKey: le32(1)) == [le32(5), le32(0), le32(7)])
        #expect(map.update(key: le32(1), perCPUValues: [le32(1), le32(2), le32(3)]) == nil)
        #expect(map.perCPUValues(forKey: le32(1)) == [le32(1), le32(2), le32(3)])
        #expect(map.update(key: le32(1), perCPUValues: [le32(1)]) == .invalid)
        let cpu0 = try #require(map.lookupAddress(key: le32(1), cpu: 0))
        let cpu1 = try #require(map.lookupAddress(key: le32(1), cpu: 1))
        // Each CPU's values in an area of its own (4 slots of 8 bytes, aligned to 128 bytes).
        #expect(cpu1 - cpu0 == 128, "each CPU's values are together, CPU areas 128 bytes apart")
        #expect(map.update(key: le32(2), value: le32(4), flags: .any, cpu: 1) == nil)
        let next = try #require(map.lookupAddress(key: le32(2), cpu: 1))
        #expect(next % 8 == 0 && next / 128 == cpu1 / 128, "values padded to 8 bytes, in the CPU's area")
        #expect(map.perCPUValues(forKey: le32(2)) == [le32(0), le32(4), le32(0)])
        #expect(map.update(key: le32(1), value: le32(1), flags: .lock, cpu: 0) == .invalid)
    }

    /// A per-CPU array keeps each CPU's values apart from the other CPUs' (no cache line is
    /// shared by two vCPUs' values, so workers on different threads do not falsely share one).
    @Test func perCPUArrayCPUsDoNotShareCacheLines() throws {
        let (vm, emulator) = makeLinuxVM(cpus: 3)
        let map = try makeMap(emulator, vm, .perCPUArray, key: 4, value: 8, max: 5)
        for key: UInt32 in 0..<5 {
            let addresses = try (0..<3).map { cpu in try #require(map.lookupAddress(key: le32(key), cpu: cpu)) }
            #expect(Set(addresses.map { $0 / 128 }).count == 3, "key \(key): one 128-byte block per CPU")
            #expect(addresses[1] - addresses[0] == 128 && addresses[2] - addresses[1] == 128)
            if key > 0 {
                #expect(try addresses[0] - #require(map.lookupAddress(key: le32(key - 1), cpu: 0)) == 8)
            }
            #expect(map.update(key: le32(key), value: le64(UInt64(key) + 100), flags: .any, cpu: 2) == nil)
        }
        for key: UInt32 in 0..<5 {
            #expect(map.perCPUValues(forKey: le32(key)) == [le64(0), le64(0), le64(UInt64(key) + 100)])
        }
        let process = try vm.makeProcess(for: load(vm, "mov %r0, 0\nexit"))
        let last = try #require(map.lookupAddress(key: le32(4), cpu: 2))
        #expect(try process.memory.read(last, count: 8) == le64(104), "the address and the map's reads agree")
    }

    @Test func arraySemantics() throws {
        let (vm, emulator) = makeLinuxVM()
        let map = try makeMap(emulator, vm, .array, key: 4, value: 4, max: 3)
        #expect(map.value(forKey: le32(2)) == le32(0), "array elements exist from the start, zeroed")
        #expect(map.update(key: le32(2), value: le32(9), flags: .any, cpu: 0) == nil)
        #expect(map.update(key: le32(2), value: le32(8), flags: .exist, cpu: 0) == nil)
        #expect(map.value(forKey: le32(2)) == le32(8))
        #expect(map.update(key: le32(1), value: le32(1), flags: .noExist, cpu: 0) == .exists)
        #expect(map.update(key: le32(3), value: le32(1), flags: .any, cpu: 0) == .tooBig)
        #expect(map.update(key: le32(1), value: le32(1), flags: MapUpdateFlags(rawValue: 3), cpu: 0) == .invalid)
        #expect(map.update(key: le32(1), value: le32(1), flags: .lock, cpu: 0) == .invalid)
        #expect(map.delete(key: le32(1)) == .invalid)
        #expect(map.lookupAddress(key: le32(3), cpu: 0) == nil)
        #expect(map.value(forKey: le32(3)) == nil)
        #expect(map.keys == [le32(0), le32(1), le32(2)])
        #expect(map.nextKey(after: nil) == le32(0))
        #expect(map.nextKey(after: le32(1)) == le32(2))
        #expect(map.nextKey(after: le32(2)) == nil)
        #expect(map.nextKey(after: le32(7)) == le32(0))
        let a0 = try #require(map.lookupAddress(key: le32(0), cpu: 0))
        let a1 = try #require(map.lookupAddress(key: le32(1), cpu: 0))
        #expect(a1 - a0 == 8, "elements are padded to 8 bytes")
    }

    @Test func perCPUArray() throws {
        let (vm, emulator) = makeLinuxVM(cpus: 2)
        let map = try #require(try makeMap(emulator, vm, .perCPUArray, key: 4, value: 8, max: 2) as? ArrayMap)
        #expect(map.update(key: le32(1), value: le64(5), flags: .any, cpu: 1) == nil)
        #expect(map.perCPUValues(forKey: le32(1)) == [le64(0), le64(5)])
        #expect(map.update(key: le32(0), perCPUValues: [le64(1), le64(2)]) == nil)
        #expect(map.perCPUValues(forKey: le32(0)) == [le64(1), le64(2)])
        #expect(map.update(key: le32(0), value: le64(1), flags: .lock, cpu: 0) == .invalid)
        #expect(map.update(key: le32(2), value: le64(1), flags: .any, cpu: 0) == .tooBig)
    }

    @Test func spinLockWordIsNeverOverwrittenAndFLockWorks() throws {
        let (vm, emulator) = makeLinuxVM()
        let map = try makeMap(emulator, vm, .hash, key: 4, value: 16, max: 2, spinLock: 0)
        #expect(
            map.update(key: le32(1), value: le32(0xFFFF_FFFF) + [UInt8](repeating: 7, count: 12), flags: .any, cpu: 0)
                == nil)
        #expect(map.value(forKey: le32(1)) == le32(0) + [UInt8](repeating: 7, count: 12), "the lock word stays")
        #expect(
            map.update(key: le32(1), value: [UInt8](repeating: 9, count: 16), flags: [.lock, .exist], cpu: 0) == nil)
        #expect(map.value(forKey: le32(1)) == le32(0) + [UInt8](repeating: 9, count: 12))
        #expect(
            map.update(key: le32(1), value: [UInt8](repeating: 9, count: 16), flags: [.lock, .noExist], cpu: 0)
                == .exists)
        let array = try makeMap(emulator, vm, .array, key: 4, value: 8, max: 1, name: "locked", spinLock: 4)
        #expect(array.update(key: le32(0), value: le64(0xAAAA_BBBB_CCCC_DDDD), flags: .lock, cpu: 0) == nil)
        #expect(array.value(forKey: le32(0)) == le32(0xCCCC_DDDD) + le32(0))
    }
}

@Suite("Maps: LPM trie")
struct MapLPMTests {
    func key(_ length: UInt32, _ a: UInt8, _ b: UInt8 = 0, _ c: UInt8 = 0, _ d: UInt8 = 0) -> [UInt8] {
        le32(length) + [a, b, c, d]
    }

    @Test func longestPrefixMatch() throws {
        let (vm, emulator) = makeLinuxVM()
        let map = try makeMap(emulator, vm, .lpmTrie, key: 8, value: 4, max: 4, flags: .noPrealloc)
        #expect(map.update(key: key(8, 10), value: le32(1), flags: .any, cpu: 0) == nil)
        #expect(map.update(key: key(16, 10, 1), value: le32(2), flags: .any, cpu: 0) == nil)
        #expect(map.update(key: key(0, 0), value: le32(99), flags: .any, cpu: 0) == nil)
        #expect(map.value(forKey: key(32, 10, 1, 2, 3)) == le32(2))
        #expect(map.value(forKey: key(32, 10, 2, 0, 1)) == le32(1))
        #expect(map.value(forKey: key(32, 11, 0, 0, 1)) == le32(99), "the /0 default route matches everything")
        #expect(map.value(forKey: key(12, 10, 1)) == le32(1), "a /16 never matches a /12 key")
        #expect(map.lookupAddress(key: key(33, 10), cpu: 0) == nil, "prefix longer than the data")
        #expect(map.delete(key: key(0, 0)) == nil)
        #expect(map.value(forKey: key(32, 11)) == nil)
    }

    @Test func exactUpdateDeleteAndErrors() throws {
        let (vm, emulator) = makeLinuxVM()
        let map = try makeMap(emulator, vm, .lpmTrie, key: 8, value: 4, max: 2, flags: .noPrealloc)
        #expect(map.update(key: key(16, 192, 168), value: le32(1), flags: .noExist, cpu: 0) == nil)
        #expect(
            map.update(key: key(16, 192, 168, 77), value: le32(2), flags: .any, cpu: 0) == nil,
            "bits past the prefix do not make a new element")
        #expect(map.keys.count == 1)
        #expect(map.value(forKey: key(32, 192, 168, 1, 1)) == le32(2))
        #expect(map.update(key: key(16, 192, 168), value: le32(3), flags: .noExist, cpu: 0) == .exists)
        #expect(map.update(key: key(24, 192, 168), value: le32(3), flags: .exist, cpu: 0) == .noEntry)
        #expect(map.update(key: key(33, 192), value: le32(3), flags: .any, cpu: 0) == .invalid)
        #expect(map.update(key: key(8, 1), value: le32(3), flags: MapUpdateFlags(rawValue: 4), cpu: 0) == .invalid)
        #expect(map.update(key: key(8, 1), value: le32(3), flags: .any, cpu: 0) == nil)
        #expect(map.update(key: key(8, 2), value: le32(3), flags: .any, cpu: 0) == .noSpace, "a full trie is ENOSPC")
        #expect(map.update(key: key(8, 1), value: le32(4), flags: .any, cpu: 0) == nil, "a full trie still replaces")
        #expect(map.delete(key: key(33, 1)) == .invalid)
        #expect(map.delete(key: key(24, 192, 168)) == .noEntry)
        #expect(map.delete(key: key(16, 192, 168)) == nil)
        #expect(map.delete(key: key(16, 192, 168)) == .noEntry)
    }

    @Test func iteratesMoreSpecificFirst() throws {
        let (vm, emulator) = makeLinuxVM()
        let map = try makeMap(emulator, vm, .lpmTrie, key: 8, value: 4, max: 8, flags: .noPrealloc)
        for k in [key(16, 192, 168), key(24, 192, 168, 0), key(24, 192, 168, 1), key(24, 192, 168, 128)] {
            #expect(map.update(key: k, value: le32(0), flags: .any, cpu: 0) == nil)
        }
        // The kernel's documented post-order for this example (lpm_trie.c, trie_get_next_key).
        #expect(map.keys == [key(24, 192, 168, 0), key(24, 192, 168, 1), key(24, 192, 168, 128), key(16, 192, 168)])
        #expect(map.nextKey(after: key(24, 192, 168, 128)) == key(16, 192, 168))
        #expect(map.nextKey(after: key(16, 192, 168)) == nil)
    }
}

@Suite("Maps: queue and stack")
struct MapQueueStackTests {
    @Test func queueIsFIFOAndStackLIFO() throws {
        let (vm, emulator) = makeLinuxVM()
        let queue = try makeMap(emulator, vm, .queue, key: 0, value: 4, max: 3, name: "q")
        let stack = try makeMap(emulator, vm, .stack, key: 0, value: 4, max: 3, name: "s")
        for map in [queue, stack] {
            for i: UInt32 in 1...3 { #expect(map.push(value: le32(i), flags: .any) == nil) }
        }
        #expect(try queue.peek().get() == le32(1))
        #expect(try queue.pop().get() == le32(1))
        #expect(try queue.pop().get() == le32(2))
        #expect(try stack.peek().get() == le32(3))
        #expect(try stack.pop().get() == le32(3))
        #expect(try stack.pop().get() == le32(2))
    }

    @Test(arguments: [MapType.queue, .stack])
    func fullEmptyAndFlags(type: MapType) throws {
        let (vm, emulator) = makeLinuxVM()
        let map = try makeMap(emulator, vm, type, key: 0, value: 4, max: 2)
        #expect(map.pop() == .failure(.noEntry))
        #expect(map.peek() == .failure(.noEntry))
        #expect(map.push(value: le32(1), flags: .noExist) == .invalid)
        #expect(map.push(value: le32(1), flags: MapUpdateFlags(rawValue: 4)) == .invalid)
        #expect(map.push(value: le32(1), flags: .any) == nil)
        #expect(map.push(value: le32(2), flags: .exist) == nil)
        #expect(map.push(value: le32(3), flags: .any) == .tooBig)
        #expect(map.push(value: le32(3), flags: .exist) == nil, "BPF_EXIST drops the oldest value")
        let order: [[UInt8]] = type == .queue ? [le32(2), le32(3)] : [le32(3), le32(2)]
        #expect(try map.pop().get() == order[0])
        #expect(try map.pop().get() == order[1])
        #expect(map.pop() == .failure(.noEntry))
        #expect(map.lookupAddress(key: [], cpu: 0) == nil)
        #expect(map.update(key: [], value: le32(1), flags: .any, cpu: 0) == .invalid)
        #expect(map.delete(key: []) == .invalid)
        #expect(map.nextKey(after: nil) == nil)
    }
}

@Suite("Maps: ring buffer and perf event array")
struct MapRecordTests {
    @Test func ringBufferReserveSubmitDiscardQuery() throws {
        let (vm, emulator) = makeLinuxVM()
        let ring = try #require(try makeMap(emulator, vm, .ringBuffer, key: 0, value: 0, max: 4096) as? RingBufferMap)
        let process = try vm.makeProcess(for: load(vm, "mov %r0, 0\nexit"))
        #expect(ring.query(RingBufferMap.Query.ringSize.rawValue) == 4096)
        let a = try #require(ring.reserve(size: 5))
        let b = try #require(ring.reserve(size: 3))
        let c = try #require(ring.reserve(size: 8))
        #expect(b - a == 16, "8-byte header plus data, rounded to 8")
        #expect(ring.query(RingBufferMap.Query.producerPosition.rawValue) == 16 + 16 + 16)
        #expect(ring.query(RingBufferMap.Query.availableData.rawValue) == 48)
        try process.memory.write([1, 2, 3, 4, 5], at: a)
        try process.memory.write([6, 7, 8], at: b)
        try process.memory.write(le64(9), at: c)
        #expect(try process.memory.read(a - 8, count: 4) == le32(5 | 1 << 31), "the header says busy")
        #expect(ring.commit(address: b, discard: true))
        #expect(ring.drainRecords() == [], "the first record is still reserved")
        #expect(ring.commit(address: c, discard: false))
        #expect(ring.commit(address: a, discard: false))
        #expect(!ring.commit(address: a, discard: false), "a record commits once")
        #expect(try process.memory.read(b - 8, count: 4) == le32(3 | 1 << 30), "the header says discarded")
        #expect(ring.drainRecords() == [[1, 2, 3, 4, 5], le64(9)], "in order, the discarded one skipped")
        #expect(ring.query(RingBufferMap.Query.consumerPosition.rawValue) == 48)
        #expect(ring.query(RingBufferMap.Query.availableData.rawValue) == 0)
        #expect(ring.query(99) == 0)
        #expect(ring.reserve(size: 1, flags: 1) == nil, "reserve takes no flags")
        #expect(ring.reserve(size: 4096) == nil, "larger than the ring with its header")
        #expect(ring.output([1], flags: 4) == .invalid)
    }

    @Test func ringBufferFillsAndWraps() throws {
        let (vm, emulator) = makeLinuxVM()
        let ring = try #require(try makeMap(emulator, vm, .ringBuffer, key: 0, value: 0, max: 4096) as? RingBufferMap)
        for i in 0..<3 { #expect(ring.output([UInt8](repeating: UInt8(i), count: 1000)) == nil) }
        #expect(ring.output([UInt8](repeating: 9, count: 1100)) == .tryAgain, "no room until the consumer reads")
        #expect(ring.drainRecords().count == 3)
        let wrapped = (0..<1500).map { UInt8(truncatingIfNeeded: $0) }
        #expect(ring.output(wrapped) == nil) // starts at 3024, runs past 4096
        #expect(ring.drainRecords() == [wrapped])
    }

    @Test func perfEventArrayOutputAndErrors() throws {
        let (vm, emulator) = makeLinuxVM(cpus: 2)
        let perf = try #require(
            try makeMap(emulator, vm, .perfEventArray, key: 4, value: 4, max: 4) as? PerfEventArrayMap)
        // A new map has no events, as in the kernel (issue 13.4: it answered 0, not -ENOENT).
        #expect(perf.output([1, 2], index: 0xFFFF_FFFF, cpu: 1) == .noEntry)
        #expect(perf.output([3], index: 0, cpu: 0) == .noEntry)
        #expect(perf.drainRecords().isEmpty)
        perf.attachReaders()
        #expect(perf.output([1, 2], index: 0xFFFF_FFFF, cpu: 1) == nil)
        #expect(perf.output([3], index: 0, cpu: 0) == nil)
        #expect(perf.output([4], index: 1, cpu: 0) == .notSupported, "the event on index 1 is bound to CPU 1")
        #expect(perf.output([4], index: 2, cpu: 0) == .noEntry, "no event opened at index 2")
        #expect(perf.output([4], index: 4, cpu: 0) == .tooBig)
        #expect(perf.update(key: le32(2), value: le32(0), flags: .any, cpu: 0) == nil)
        #expect(perf.output([5], index: 2, cpu: 0) == nil)
        #expect(perf.update(key: le32(2), value: le32(0), flags: .noExist, cpu: 0) == .invalid)
        #expect(perf.update(key: le32(9), value: le32(0), flags: .any, cpu: 0) == .tooBig)
        #expect(perf.delete(key: le32(3)) == .noEntry)
        #expect(perf.delete(key: le32(2)) == nil)
        #expect(
            perf.drainRecords() == [.init(cpu: 0, data: [3]), .init(cpu: 0, data: [5]), .init(cpu: 1, data: [1, 2])])
        #expect(perf.drainRecords(cpu: 0) == [])
        let big = [UInt8](repeating: 0, count: perf.bufferSize)
        #expect(perf.output(big, index: 0, cpu: 0) == .noSpace)
        #expect(perf.lostRecords(cpu: 0) == 1)
    }
}

@Suite("Maps: program arrays, maps of maps, redirect maps")
struct MapReferenceTests {
    @Test func programArraySlots() throws {
        let (vm, emulator) = makeLinuxVM()
        let progs = try #require(try makeMap(emulator, vm, .progArray, key: 4, value: 4, max: 2) as? ProgramArrayMap)
        let program = try load(vm, "mov %r0, 1\nexit")
        #expect(progs.setProgram(program, at: 1) == nil)
        #expect(progs.setProgram(program, at: 2) == .tooBig)
        #expect(progs.program(at: 1) === program)
        #expect(progs.update(key: le32(0), value: le32(1), flags: .any, cpu: 0) == .invalid)
        #expect(progs.lookupAddress(key: le32(1), cpu: 0) == nil)
        #expect(progs.delete(key: le32(0)) == .noEntry)
        #expect(progs.delete(key: le32(5)) == .tooBig)
        #expect(progs.delete(key: le32(1)) == nil)
        #expect(progs.program(at: 1) == nil)
    }

    @Test func arrayOfMaps() throws {
        let (vm, emulator) = makeLinuxVM()
        let innerDefinition = MapAttributes(name: "inner", type: .hash, keySize: 4, valueSize: 4, maxEntries: 4)
        let outer = try #require(
            try makeMap(emulator, vm, .arrayOfMaps, key: 4, value: 4, max: 2, inner: innerDefinition) as? MapOfMaps)
        let inner = try emulator.createMap(innerDefinition, in: vm)
        let other = try makeMap(emulator, vm, .hash, key: 4, value: 4, max: 5, name: "other")
        #expect(outer.setInnerMap(other, forKey: le32(0)) == .invalid, "max_entries differs without BPF_F_INNER_MAP")
        #expect(outer.setInnerMap(inner, forKey: le32(0)) == nil)
        #expect(outer.lookupAddress(key: le32(0), cpu: 0) == inner.handle)
        #expect(outer.innerMap(forKey: le32(0)) === inner)
        let id = UInt32(try #require(MapHandle.id(of: inner.handle)))
        #expect(outer.value(forKey: le32(0)) == le32(id))
        #expect(outer.update(key: le32(1), value: le32(id), flags: .any, cpu: 0) == nil)
        #expect(
            outer.update(key: le32(1), value: le32(id), flags: .noExist, cpu: 0) == .invalid,
            "fd arrays take BPF_ANY only")
        #expect(outer.update(key: le32(2), value: le32(id), flags: .any, cpu: 0) == .tooBig)
        #expect(outer.update(key: le32(1), value: le32(9999), flags: .any, cpu: 0) == .invalid)
        #expect(outer.delete(key: le32(1)) == nil)
        #expect(outer.delete(key: le32(1)) == .noEntry)
        #expect(outer.lookupAddress(key: le32(1), cpu: 0) == nil)
    }

    @Test func hashOfMapsWithInnerMapFlag() throws {
        let (vm, emulator) = makeLinuxVM()
        let innerDefinition = MapAttributes(
            name: "i", type: .array, keySize: 4, valueSize: 4, maxEntries: 1,
            flags: MapFlags.innerMap.rawValue)
        let outer = try #require(
            try makeMap(emulator, vm, .hashOfMaps, key: 4, value: 4, max: 1, inner: innerDefinition) as? MapOfMaps)
        let big = try makeMap(emulator, vm, .array, key: 4, value: 4, max: 100, flags: .innerMap, name: "big")
        #expect(outer.setInnerMap(big, forKey: le32(7)) == nil, "BPF_F_INNER_MAP allows another max_entries")
        #expect(outer.setInnerMap(big, forKey: le32(7), flags: .noExist) == .exists)
        #expect(outer.setInnerMap(big, forKey: le32(8), flags: .exist) == .noEntry)
        #expect(outer.setInnerMap(big, forKey: le32(8)) == .tooBig)
        #expect(outer.delete(key: le32(8)) == .noEntry)
        #expect(outer.keys == [le32(7)])
    }

    @Test func devmapCpumapXskmapRules() throws {
        let (vm, emulator) = makeLinuxVM(cpus: 2)
        let dev = try makeMap(emulator, vm, .devMap, key: 4, value: 4, max: 4, name: "dev")
        #expect(dev.update(key: le32(1), value: le32(5), flags: .any, cpu: 0) == nil)
        #expect(dev.value(forKey: le32(1)) == le32(5))
        #expect(dev.lookupAddress(key: le32(2), cpu: 0) == nil)
        #expect(dev.update(key: le32(1), value: le32(5), flags: .noExist, cpu: 0) == .exists)
        #expect(dev.update(key: le32(4), value: le32(5), flags: .any, cpu: 0) == .tooBig)
        #expect(dev.update(key: le32(1), value: le32(5), flags: MapUpdateFlags(rawValue: 4), cpu: 0) == .invalid)
        #expect(dev.delete(key: le32(4)) == .invalid)
        #expect(dev.delete(key: le32(2)) == nil)
        #expect(dev.update(key: le32(1), value: le32(0), flags: .any, cpu: 0) == nil, "ifindex 0 empties the entry")
        #expect(dev.value(forKey: le32(1)) == nil)

        let hash = try makeMap(emulator, vm, .devMapHash, key: 4, value: 4, max: 1, name: "devhash")
        #expect(hash.update(key: le32(10), value: le32(0), flags: .any, cpu: 0) == .invalid)
        #expect(hash.update(key: le32(10), value: le32(3), flags: .any, cpu: 0) == nil)
        #expect(hash.update(key: le32(10), value: le32(3), flags: .noExist, cpu: 0) == .exists)
        #expect(hash.update(key: le32(11), value: le32(3), flags: .any, cpu: 0) == .tooBig)
        #expect(hash.delete(key: le32(11)) == .noEntry)

        let cpu = try makeMap(emulator, vm, .cpuMap, key: 4, value: 4, max: 4, name: "cpu")
        #expect(cpu.update(key: le32(1), value: le32(192), flags: .any, cpu: 0) == nil)
        #expect(cpu.update(key: le32(1), value: le32(16_385), flags: .any, cpu: 0) == .overflow)
        #expect(cpu.update(key: le32(3), value: le32(192), flags: .any, cpu: 0) == .noDevice, "only 2 CPUs")
        #expect(cpu.update(key: le32(4), value: le32(192), flags: .any, cpu: 0) == .tooBig)
        #expect(cpu.update(key: le32(0), value: le32(192), flags: .noExist, cpu: 0) == .exists)

        let xsk = try makeMap(emulator, vm, .xskMap, key: 4, value: 4, max: 2, name: "xsk")
        #expect(xsk.update(key: le32(0), value: le32(40), flags: .exist, cpu: 0) == .noEntry)
        #expect(xsk.update(key: le32(0), value: le32(40), flags: .noExist, cpu: 0) == nil)
        #expect(xsk.update(key: le32(0), value: le32(41), flags: .noExist, cpu: 0) == .exists)
        #expect(xsk.update(key: le32(2), value: le32(41), flags: .any, cpu: 0) == .tooBig)
    }
}
