import MimicCore
import Testing
import MimicTestSupport

/// The end-to-end scenarios of MimicLinuxTests (EndToEndPacketTests, EndToEndObjectTests),
/// written once and run against both backends with identical expectations: MimicLinux linked
/// statically, and loaded as a plugin through ABI 1.1 (maps, contexts, tail calls, callbacks).
@Suite(.serialized) struct PluginEndToEndTests {
    static let packet = Packet.make(source: "10.0.0.1", destination: "10.0.0.2")

    /// The little-endian integer of variable `variable` of global section `section`, read
    /// through the section's array map.
    func global(_ environment: any Environment, _ section: String, _ variable: String) throws -> UInt64 {
        let map = try environment.map(section)
        let spec = try #require(environment.object.globals[section]?.spec)
        let found = try #require(spec.variables.first { $0.name == variable })
        let value = try #require(try map.value(le32(0)))
        return uint64(Array(value[Int(found.offset)..<Int(found.offset + found.size)]))
    }

    // MARK: (a) XDP firewall

    @Test(arguments: Backend.allCases)
    func xdpFirewallDropsBlockedSourcesAndCountsPerCPU(backend: Backend) throws {
        let fixture = try backend.load("xdp_firewall")
        let blocked = try fixture.map("blocked")
        let verdicts = try fixture.map("verdicts")
        for address in ["192.0.2.1", "198.51.100.7"] {
            #expect(try blocked.update(Packet.ip(address), le64(0), flags: 1) == nil)
        }
        #expect(
            try blocked.update(Packet.ip("192.0.2.1"), le64(0), flags: 1) == 17,
            "BPF_NOEXIST on an existing key: EEXIST")

        func verdict(from source: String, vCPU: Int) throws -> String? {
            try fixture.run(
                "firewall", context: ContextJSON.xdp(Packet.make(source: source, destination: "10.0.0.2")), vCPU: vCPU
            ).action
        }
        #expect(try verdict(from: "192.0.2.1", vCPU: 0) == "XDP_DROP")
        #expect(try verdict(from: "10.1.1.1", vCPU: 0) == "XDP_PASS")
        #expect(try verdict(from: "198.51.100.7", vCPU: 1) == "XDP_DROP")
        #expect(try verdict(from: "192.0.2.1", vCPU: 1) == "XDP_DROP")
        #expect(try verdict(from: "10.1.1.2", vCPU: 1) == "XDP_PASS")
        #expect(try verdict(from: "10.1.1.3", vCPU: 1) == "XDP_PASS")
        // Too short for an IPv4 header: aborted; not IPv4: passed.
        let short = Array(Packet.make(source: "1.2.3.4", destination: "5.6.7.8")[0..<20])
        #expect(try fixture.run("firewall", context: ContextJSON.xdp(short)).action == "XDP_ABORTED")
        var arp = Packet.make(source: "1.2.3.4", destination: "5.6.7.8")
        arp[12] = 0x08
        arp[13] = 0x06
        #expect(try fixture.run("firewall", context: ContextJSON.xdp(arp)).action == "XDP_PASS")

        func counts(_ action: UInt32) throws -> [UInt64] { (try verdicts.perCPUValues(le32(action)) ?? []).map(uint64) }
        #expect(try counts(1) == [1, 2], "XDP_DROP per CPU")
        #expect(try counts(2) == [2, 2], "XDP_PASS per CPU")
        #expect(try counts(0) == [1, 0], "XDP_ABORTED per CPU")
        #expect(try blocked.value(Packet.ip("192.0.2.1")).map(uint64) == 2)
        #expect(try blocked.value(Packet.ip("198.51.100.7")).map(uint64) == 1)
    }

    @Test(arguments: Backend.allCases)
    func reusedProcessStartsOver(backend: Backend) throws {
        let fixture = try backend.load("xdp_firewall")
        #expect(try fixture.map("blocked").update(Packet.ip("192.0.2.1"), le64(0), flags: 0) == nil)
        let (first, second) = try fixture.runTwice(
            "firewall",
            contexts: (
                ContextJSON.xdp(Packet.make(source: "192.0.2.1", destination: "10.0.0.2")),
                ContextJSON.xdp(Packet.make(source: "10.1.1.1", destination: "10.0.0.2"))
            ))
        #expect(first.action == "XDP_DROP")
        #expect(second.action == "XDP_PASS")
        #expect(second.packet == Packet.make(source: "10.1.1.1", destination: "10.0.0.2"))
    }

    // MARK: (b) tc rewrite with checksum helpers

    @Test(arguments: Backend.allCases, [Packet.udp, Packet.tcp])
    func tcNATRewritesDestinationAndKeepsChecksumsValid(backend: Backend, proto: UInt8) throws {
        let fixture = try backend.load("tc_nat")
        let input = Packet.make(
            source: "10.0.0.1", destination: "10.0.0.99", protocol: proto, sourcePort: 40000, destinationPort: 80)
        let result = try fixture.run("dnat", context: ContextJSON.skb(input))
        #expect(result.action == "TC_ACT_OK")
        #expect(result.mark == 0x4E4154)
        let expected = Packet.make(
            source: "10.0.0.1", destination: "192.168.1.100", protocol: proto, sourcePort: 40000,
            destinationPort: 8080)
        #expect(result.packet == expected)
        let packet = try #require(result.packet)
        #expect(Packet.ipChecksumIsValid(packet))
        #expect(Packet.l4ChecksumIsValid(packet))
    }

    @Test(arguments: Backend.allCases)
    func tcNATLeavesOtherDestinationsAlone(backend: Backend) throws {
        let fixture = try backend.load("tc_nat")
        let input = Packet.make(source: "10.0.0.1", destination: "10.0.0.98")
        let result = try fixture.run("dnat", context: ContextJSON.skb(input))
        #expect(result.packet == input)
        #expect(result.mark == 0)
    }

    // MARK: (c) Tail calls

    @Test(arguments: Backend.allCases)
    func tailCallsFollowTheProgArraySetInC(backend: Backend) throws {
        let fixture = try backend.load("tail_calls")
        func run(queue: UInt32) throws -> (String?, UInt64) {
            let before = try global(fixture, ".bss", "hops")
            let result = try fixture.run("dispatch", context: ContextJSON.xdp(Self.packet, queue: queue))
            return (result.action, try global(fixture, ".bss", "hops") - before)
        }
        #expect(try run(queue: 0) == ("XDP_PASS", 1))
        #expect(try run(queue: 1) == ("XDP_PASS", 11), "stage_count chains on to stage_pass")
        #expect(try run(queue: 2) == ("XDP_DROP", 0), "an empty slot falls through")
        #expect(try run(queue: 9) == ("XDP_DROP", 0), "an index past the end falls through")
    }

    // MARK: Maps of maps

    @Test(arguments: Backend.allCases)
    func mapInMapInitialSlotsAndSpinLockedValues(backend: Backend) throws {
        let fixture = try backend.load("map_in_map")
        let innerA = try fixture.map("inner_a")
        let innerB = try fixture.map("inner_b")
        let outer = try fixture.map("outer")
        // The outer map's host-side value is the inner map's id: slot 1 is set, slot 0 is not.
        #expect(try outer.value(le32(1)) != nil)
        #expect(try outer.value(le32(0)) == nil)

        #expect(try fixture.run("bump", context: ContextJSON.xdp(Self.packet, queue: 1)).action == "XDP_PASS")
        #expect(try fixture.run("bump", context: ContextJSON.xdp(Self.packet, queue: 1)).action == "XDP_PASS")
        #expect(try fixture.run("bump", context: ContextJSON.xdp(Self.packet, queue: 0)).action == "XDP_ABORTED")
        #expect(try fixture.setInnerMap("outer", index: 0, to: "inner_a") == nil)
        #expect(try fixture.run("bump", context: ContextJSON.xdp(Self.packet, queue: 0)).action == "XDP_PASS")

        #expect(try innerB.value(le32(0)).map { uint64(Array($0[0..<8])) } == 2)
        #expect(try innerA.value(le32(0)).map { uint64(Array($0[0..<8])) } == 1)
        #expect(try innerB.value(le32(0)).map { Array($0[8..<12]) } == [0, 0, 0, 0], "the lock is released")
    }

    // MARK: (d) Ring buffer and perf event array

    @Test(arguments: Backend.allCases)
    func ringBufferAndPerfEventsReachTheHost(backend: Backend) throws {
        let fixture = try backend.load("events")
        let ring = try fixture.map("ring")
        let perf = try fixture.map("perf")
        #expect(perf.maxEntries == 2, "libbpf sizes a perf event array to the CPUs")

        for (vCPU, length) in [(0, 60), (1, 64), (1, 70)] {
            let result = try fixture.run(
                "report", context: ContextJSON.xdp([UInt8](repeating: 0xAB, count: length)), vCPU: vCPU)
            #expect(result.action == "XDP_PASS")
        }
        func event(cpu: UInt32, length: UInt32, sequence: UInt64) -> [UInt8] {
            le32(cpu) + le32(length) + le64(sequence)
        }
        let expected = [
            event(cpu: 0, length: 60, sequence: 0), event(cpu: 1, length: 64, sequence: 1),
            event(cpu: 1, length: 70, sequence: 2),
        ]
        #expect(try ring.drainRecords() == expected.map { Record(cpu: nil, data: $0) })
        #expect(try ring.drainRecords().isEmpty)
        #expect(
            try perf.drainRecords() == [
                Record(cpu: 0, data: expected[0]), Record(cpu: 1, data: expected[1]),
                Record(cpu: 1, data: expected[2]),
            ])
        #expect(try global(fixture, ".bss", "sequence") == 3)
    }

    // MARK: (e) LPM trie

    @Test(arguments: Backend.allCases)
    func lpmTrieRouteLookupPicksTheLongestPrefix(backend: Backend) throws {
        let fixture = try backend.load("lpm_route")
        let routes = try fixture.map("routes")
        for (prefix, length, ifindex) in [("10.0.0.0", 8, 2), ("10.1.0.0", 16, 3), ("10.1.2.0", 24, 4)]
            as [(String, UInt32, UInt32)]
        {
            #expect(try routes.update(le32(length) + Packet.ip(prefix), le32(ifindex) + le32(0), flags: 0) == nil)
        }
        func route(to destination: String) throws -> (String?, UInt32?) {
            let result = try fixture.run(
                "route", context: ContextJSON.xdp(Packet.make(source: "192.0.2.1", destination: destination)))
            return (result.action, result.redirectIfindex)
        }
        #expect(try route(to: "10.9.9.9") == ("XDP_REDIRECT", 2))
        #expect(try route(to: "10.1.9.9") == ("XDP_REDIRECT", 3))
        #expect(try route(to: "10.1.2.3") == ("XDP_REDIRECT", 4))
        #expect(try route(to: "11.0.0.1") == ("XDP_DROP", nil), "no route")
    }

    // MARK: (f) LRU hash

    @Test(arguments: Backend.allCases)
    func lruHashEvictsTheLeastRecentlyUsedSource(backend: Backend) throws {
        let fixture = try backend.load("lru")
        let flows = try fixture.map("flows")
        for source in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.1", "10.0.0.5"] {
            _ = try fixture.run("track", context: ContextJSON.xdp(Packet.make(source: source, destination: "10.9.9.9")))
        }
        #expect(
            Set(try flows.keys()) == Set(["10.0.0.1", "10.0.0.3", "10.0.0.4", "10.0.0.5"].map(Packet.ip)),
            "10.0.0.2 was least recently used")
        #expect(try flows.value(Packet.ip("10.0.0.1")).map(uint64) == 2)
        #expect(try flows.value(Packet.ip("10.0.0.5")).map(uint64) == 1)
    }

    // MARK: (g) bpf_loop

    @Test(arguments: Backend.allCases, [(9, 285, 10), (0, 0, 1), (1000, 328_350, 100)] as [(UInt32, UInt64, UInt64)])
    func bpfLoopRunsTheCallback(backend: Backend, loop: (last: UInt32, sum: UInt64, iterations: UInt64)) throws {
        let fixture = try backend.load("loop")
        #expect(
            try fixture.run("squares", context: ContextJSON.xdp(Self.packet, queue: loop.last)).action == "XDP_PASS")
        #expect(try global(fixture, ".bss", "loop_sum") == loop.sum)
        #expect(try global(fixture, ".bss", "loop_iterations") == loop.iterations)
    }

    // MARK: (h) Captured bpf_get_current_comm

    @Test(arguments: Backend.allCases)
    func kprobeReadsACapturedComm(backend: Backend) throws {
        let fixture = try backend.load("comm")
        #expect(fixture.object.object.program(named: "trace_open")?.type == .kprobe)
        var regs = [UInt8](repeating: 0, count: 21 * 8)
        regs.replaceSubrange(13 * 8..<14 * 8, with: le64(0x8000)) // si: the open flags
        let comm = Array("curl".utf8) + [UInt8](repeating: 0, count: 12)
        let context = ContextJSON.captured(
            regs: regs,
            calls: [
                16: [(params: [(2, 16)], results: [(0, .number(0)), (1, .bytes(comm))])],
                14: [(params: [], results: [(0, .number(4321 << 32 | 4322))])],
            ])
        let result = try fixture.run("trace_open", context: context)
        #expect(result.warnings.isEmpty, "\(result.warnings)")
        // The comm only the record holds reached the ring: the call was replayed.
        #expect(try fixture.map("opens").drainRecords() == [Record(cpu: nil, data: le32(4322) + le32(4321) + comm)])
        #expect(result.trace == ["open by curl (pid 4322, flags 8000)"])
    }

    // MARK: (i) Global data maps

    @Test(arguments: Backend.allCases)
    func globalDataIsReadableThroughItsMaps(backend: Backend) throws {
        let fixture = try backend.load("globals")
        let data = try fixture.map(".data")
        let rodata = try fixture.map(".rodata")
        // The maps are the sections the programs use, at the same addresses.
        for name in [".data", ".bss", ".rodata"] {
            let map = try fixture.map(name)
            let global = try #require(fixture.object.globals[name])
            #expect(try map.lookupAddress(le32(0)) == global.address)
            #expect(map.maxEntries == 1 && map.valueSize == global.spec.size)
        }
        #expect(rodata.flags & (1 << 7) != 0, "BPF_F_RDONLY_PROG")

        for length in [60, 61] {
            _ = try fixture.run("count_globals", context: ContextJSON.xdp([UInt8](repeating: 0, count: length)))
        }
        #expect(try global(fixture, ".bss", "packets") == 2)
        #expect(try global(fixture, ".bss", "last_length") == 61)
        #expect(try global(fixture, ".data", "generation") == 13)
        #expect(try global(fixture, ".rodata", "step") == 3)
        let label = try #require(try data.value(le32(0)))
        #expect(Array(label[4..<10]) == Array("Mimic\0".utf8))

        // Host writes go to the program's memory; .rodata is frozen (EPERM).
        #expect(try data.update(le32(0), le32(100) + Array(label[4...]), flags: 0) == nil)
        _ = try fixture.run("count_globals", context: ContextJSON.xdp(Self.packet))
        #expect(try global(fixture, ".data", "generation") == 103)
        #expect(try rodata.update(le32(0), le32(5) + [UInt8](repeating: 0, count: rodata.valueSize - 4), flags: 0) == 1)

        // A program's bpf_map_lookup_elem on the global-data map returns the section.
        let lookup = try fixture.vm.load(
            Assembler.assemble(
                """
                lddw %r1, 0x\(String(data.handle, radix: 16))
                mov %r2, 0
                stxw [%r10-4], %r2
                mov %r2, %r10
                add %r2, -4
                call 1
                jeq %r0, 0, +1
                ldxw %r0, [%r0]
                exit
                """), name: "lookup")
        #expect(try fixture.vm.makeProcess(for: lookup).run() == 103)
    }
}
