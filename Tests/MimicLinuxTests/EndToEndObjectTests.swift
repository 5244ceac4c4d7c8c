import MimicCore
import MimicLinux
import Testing
import MimicTestSupport

/// Clang-compiled fixtures exercising maps, tail calls, callbacks, events, captured helpers and
/// global data through `VM.load(object:)`.
@Suite("End to end: maps, events and globals")
struct EndToEndObjectTests {
    static let packet = Packet.make(source: "10.0.0.1", destination: "10.0.0.2")

    /// An XDP context on `packet` whose `rx_queue_index` is `queue` (fixtures read it as input).
    static func xdp(_ packet: [UInt8] = packet, queue: UInt32 = 0) -> XDPContext {
        XDPContext(packet: packet, rxQueueIndex: queue)
    }

    /// The little-endian integer of `size` bytes at `offset` of global section `section`.
    static func global(_ fixture: Fixture.Loaded, _ section: String, _ variable: String) throws -> UInt64 {
        let map = try fixture.map(section, as: ArrayMap.self)
        let spec = try #require(fixture.object.globals[section]?.spec)
        let found = try #require(spec.variables.first { $0.name == variable })
        let value = try #require(map.value(forKey: le32(0)))
        return uint64(Array(value[Int(found.offset)..<Int(found.offset + found.size)]))
    }

    // MARK: (c) Tail calls

    @Test(arguments: Fixture.engines)
    func tailCallsFollowTheProgArraySetInC(engine: ExecutionEngine) throws {
        let fixture = try Fixture.load("tail_calls", engine: engine)
        let table = try fixture.map("jump_table", as: ProgramArrayMap.self)
        #expect(table.program(at: 0)?.name == "stage_pass")
        #expect(table.program(at: 1)?.name == "stage_count")
        #expect(table.program(at: 2) == nil)

        func run(queue: UInt32) throws -> (XDPAction?, UInt64) {
            let before = try Self.global(fixture, ".bss", "hops")
            let process = try fixture.run("dispatch", context: Self.xdp(queue: queue))
            return (XDPContext.result(of: process)?.action, try Self.global(fixture, ".bss", "hops") - before)
        }
        #expect(try run(queue: 0) == (.pass, 1))
        #expect(try run(queue: 1) == (.pass, 11), "stage_count chains on to stage_pass")
        #expect(try run(queue: 2) == (.drop, 0), "an empty slot falls through")
        #expect(try run(queue: 9) == (.drop, 0), "an index past the end falls through")
    }

    @Test(arguments: Fixture.engines)
    func mapInMapInitialSlotsAndSpinLockedValues(engine: ExecutionEngine) throws {
        let fixture = try Fixture.load("map_in_map", engine: engine)
        let outer = try fixture.map("outer", as: MapOfMaps.self)
        let innerA = try fixture.map("inner_a", as: ArrayMap.self)
        let innerB = try fixture.map("inner_b", as: ArrayMap.self)
        // The spin lock offset comes from the BTF value type `struct counter`.
        #expect(innerB.attributes.spinLockOffset == 8)
        #expect(outer.attributes.innerMap?.spinLockOffset == 8)
        #expect(outer.innerMap(forKey: le32(1)) === innerB)
        #expect(outer.innerMap(forKey: le32(0)) == nil)

        #expect(XDPContext.result(of: try fixture.run("bump", context: Self.xdp(queue: 1)))?.action == .pass)
        #expect(XDPContext.result(of: try fixture.run("bump", context: Self.xdp(queue: 1)))?.action == .pass)
        #expect(XDPContext.result(of: try fixture.run("bump", context: Self.xdp(queue: 0)))?.action == .aborted)
        #expect(outer.setInnerMap(innerA, forKey: le32(0)) == nil)
        #expect(XDPContext.result(of: try fixture.run("bump", context: Self.xdp(queue: 0)))?.action == .pass)

        #expect(innerB.value(forKey: le32(0)).map { uint64(Array($0[0..<8])) } == 2)
        #expect(innerA.value(forKey: le32(0)).map { uint64(Array($0[0..<8])) } == 1)
        #expect(innerB.value(forKey: le32(0)).map { Array($0[8..<12]) } == [0, 0, 0, 0], "the lock is released")
    }

    // MARK: (d) Ring buffer and perf event array

    @Test(arguments: Fixture.engines)
    func ringBufferAndPerfEventsReachTheHost(engine: ExecutionEngine) throws {
        let fixture = try Fixture.load("events", engine: engine)
        let ring = try fixture.map("ring", as: RingBufferMap.self)
        let perf = try fixture.map("perf", as: PerfEventArrayMap.self)
        #expect(perf.attributes.maxEntries == 2, "libbpf sizes a perf event array to the CPUs")
        perf.attachReaders()

        for (vCPU, length) in [(0, 60), (1, 64), (1, 70)] {
            let process = try fixture.run(
                "report", context: Self.xdp([UInt8](repeating: 0xAB, count: length)), vCPU: vCPU)
            #expect(XDPContext.result(of: process)?.action == .pass)
        }
        func event(cpu: UInt32, length: UInt32, sequence: UInt64) -> [UInt8] {
            le32(cpu) + le32(length) + le64(sequence)
        }
        let expected = [
            event(cpu: 0, length: 60, sequence: 0), event(cpu: 1, length: 64, sequence: 1),
            event(cpu: 1, length: 70, sequence: 2),
        ]
        #expect(ring.drainRecords() == expected)
        #expect(ring.drainRecords().isEmpty)
        #expect(
            perf.drainRecords() == [
                PerfEventArrayMap.Record(cpu: 0, data: expected[0]),
                PerfEventArrayMap.Record(cpu: 1, data: expected[1]),
                PerfEventArrayMap.Record(cpu: 1, data: expected[2]),
            ])
        #expect(try Self.global(fixture, ".bss", "sequence") == 3)
    }

    // MARK: (e) LPM trie

    @Test(arguments: Fixture.engines)
    func lpmTrieRouteLookupPicksTheLongestPrefix(engine: ExecutionEngine) throws {
        let fixture = try Fixture.load("lpm_route", engine: engine)
        let routes = try fixture.map("routes", as: LPMTrieMap.self)
        func add(_ prefix: String, _ length: UInt32, ifindex: UInt32) {
            #expect(
                routes.update(
                    key: le32(length) + Packet.ip(prefix), value: le32(ifindex) + le32(0), flags: .any, cpu: 0) == nil)
        }
        add("10.0.0.0", 8, ifindex: 2)
        add("10.1.0.0", 16, ifindex: 3)
        add("10.1.2.0", 24, ifindex: 4)

        func route(to destination: String) throws -> (XDPAction?, UInt32?) {
            let process = try fixture.run(
                "route", context: Self.xdp(Packet.make(source: "192.0.2.1", destination: destination)))
            let result = try #require(XDPContext.result(of: process))
            return (result.action, result.redirect?.ifindex)
        }
        #expect(try route(to: "10.9.9.9") == (.redirect, 2))
        #expect(try route(to: "10.1.9.9") == (.redirect, 3))
        #expect(try route(to: "10.1.2.3") == (.redirect, 4))
        #expect(try route(to: "11.0.0.1") == (.drop, nil), "no route")
    }

    // MARK: (f) LRU hash

    @Test(arguments: Fixture.engines)
    func lruHashEvictsTheLeastRecentlyUsedSource(engine: ExecutionEngine) throws {
        let fixture = try Fixture.load("lru", engine: engine)
        let flows = try fixture.map("flows", as: HashTableMap.self)
        #expect(flows.isLRU)
        for source in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.1", "10.0.0.5"] {
            try fixture.run("track", context: Self.xdp(Packet.make(source: source, destination: "10.9.9.9")))
        }
        let sources = Set(flows.keys)
        #expect(
            sources == Set(["10.0.0.1", "10.0.0.3", "10.0.0.4", "10.0.0.5"].map(Packet.ip)),
            "10.0.0.2 was least recently used")
        #expect(flows.value(forKey: Packet.ip("10.0.0.1")).map(uint64) == 2)
        #expect(flows.value(forKey: Packet.ip("10.0.0.5")).map(uint64) == 1)
    }

    // MARK: (g) bpf_loop

    @Test(
        arguments: [(9, 285, 10), (0, 0, 1), (1000, 328_350, 100)] as [(UInt32, UInt64, UInt64)], Fixture.engines)
    func bpfLoopRunsTheCallback(expected: (last: UInt32, sum: UInt64, iterations: UInt64), engine: ExecutionEngine)
        throws
    {
        let (last, sum, iterations) = expected
        let fixture = try Fixture.load("loop", engine: engine)
        #expect(XDPContext.result(of: try fixture.run("squares", context: Self.xdp(queue: last)))?.action == .pass)
        #expect(try Self.global(fixture, ".bss", "loop_sum") == sum)
        #expect(try Self.global(fixture, ".bss", "loop_iterations") == iterations)
    }

    // MARK: (h) Captured bpf_get_current_comm

    @Test(arguments: Fixture.engines)
    func kprobeReadsACapturedComm(engine: ExecutionEngine) throws {
        let fixture = try Fixture.load("comm", engine: engine)
        #expect(fixture.object.object.program(named: "trace_open")?.type == .kprobe)
        var regs = [UInt8](repeating: 0, count: 21 * 8)
        regs.replaceSubrange(13 * 8..<14 * 8, with: le64(0x8000)) // si: the open flags
        let comm = Array("curl".utf8) + [UInt8](repeating: 0, count: 12)
        let captured = CapturedContext(
            subContext: GenericContext(memories: [("regs", .block(regs))], registers: [1: "regs"]),
            helperCalls: [
                16: [
                    HelperCallRecord(
                        helper: 16, params: [(2, .number(16))], results: [(0, .number(0)), (1, .bytes(comm))])
                ],
                14: [HelperCallRecord(helper: 14, results: [(0, .number(4321 << 32 | 4322))])],
            ])
        let process = try fixture.run("trace_open", context: captured)
        let state = try #require(LinuxProcessState.of(process))
        #expect(state.replay?.replayedCount(of: 16) == 1)
        #expect(state.warnings.isEmpty, "\(state.warnings)")

        let records = try fixture.map("opens", as: RingBufferMap.self).drainRecords()
        #expect(records == [le32(4322) + le32(4321) + comm])
        // bpf_printk output of the fixture, formatted as the kernel does.
        #expect(state.traceOutput == ["open by curl (pid 4322, flags 8000)"])
    }

    // MARK: (i) Global data maps

    @Test(arguments: Fixture.engines)
    func globalDataIsReadableThroughItsMaps(engine: ExecutionEngine) throws {
        let fixture = try Fixture.load("globals", engine: engine)
        let data = try fixture.map(".data", as: ArrayMap.self)
        let bss = try fixture.map(".bss", as: ArrayMap.self)
        let rodata = try fixture.map(".rodata", as: ArrayMap.self)
        // The maps are the sections the programs use, at the same addresses.
        for (name, map) in [(".data", data), (".bss", bss), (".rodata", rodata)] {
            let global = try #require(fixture.object.globals[name])
            #expect(map.lookupAddress(key: le32(0), cpu: 0) == global.address)
            #expect(map.attributes.maxEntries == 1 && map.attributes.valueSize == global.spec.size)
        }
        #expect(MapFlags(rawValue: rodata.attributes.flags).contains(.readOnlyProgram))

        for length in [60, 61] {
            try fixture.run("count_globals", context: Self.xdp([UInt8](repeating: 0, count: length)))
        }
        #expect(try Self.global(fixture, ".bss", "packets") == 2)
        #expect(try Self.global(fixture, ".bss", "last_length") == 61)
        #expect(try Self.global(fixture, ".data", "generation") == 13)
        #expect(try Self.global(fixture, ".rodata", "step") == 3)
        let label = try #require(data.value(forKey: le32(0)))
        #expect(Array(label[4..<10]) == Array("Mimic\0".utf8))

        // Host writes go to the program's memory; .rodata is frozen.
        #expect(data.update(key: le32(0), value: le32(100) + Array(label[4...]), flags: .any, cpu: 0) == nil)
        try fixture.run("count_globals", context: Self.xdp())
        #expect(try Self.global(fixture, ".data", "generation") == 103)
        #expect(rodata.update(key: le32(0), value: le32(5), flags: .any, cpu: 0) == .notPermitted)

        // A program's bpf_map_lookup_elem on the global-data map returns the section.
        let lookup = try load(
            fixture.vm,
            """
            lddw %r1, \(hex(data.handle))
            mov %r2, 0
            stxw [%r10-4], %r2
            mov %r2, %r10
            add %r2, -4
            call 1
            jeq %r0, 0, +1
            ldxw %r0, [%r0]
            exit
            """)
        #expect(try run(fixture.vm, lookup) == 103)
    }
}
