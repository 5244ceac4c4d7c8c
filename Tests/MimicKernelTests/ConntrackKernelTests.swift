import Foundation
import Glibc
import Testing
import MimicCore
@testable import MimicKernel
@testable import MimicLinux

/// The conntrack kfuncs against the kernel's (`net_conntrack.o`, issue 14): the program runs with
/// `BPF_PROG_TEST_RUN` in a fresh network namespace (whose conntrack table starts empty) and in
/// Mimic with an empty `Network.conntrack`; every answer must agree. Skipped plainly without
/// root, `ip`, the kernel's BPF or its conntrack (`/proc/net/nf_conntrack`).
@Suite(
    "The conntrack kfuncs against the kernel's",
    .enabled(
        if: TestNamespace.unavailableReason == nil && FileManager.default.fileExists(atPath: "/proc/net/nf_conntrack"),
        "needs root, the ip command, the kernel's BPF and its conntrack (/proc/net/nf_conntrack)"))
struct ConntrackKernelTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

    @Test func lookupsAllocationsAndErrorsAgreeWithTheKernel() throws {
        let namespace = try TestNamespace("ct")
        try namespace.configure("link set lo up")
        let object = try ObjectFile(contentsOf: Self.fixtures.appendingPathComponent("net_conntrack.o").path)
        let answers = try namespace.enter { () throws -> [Int64] in
            let comparison = try ObjectComparison(object: object, programName: "tc_conntrack", network: .standard)
            let result = try comparison.run(packet: Fixtures.packets[0])
            for difference in result.differences { Issue.record("tc_conntrack: \(difference)") }
            let contents = comparison.mimicContents("answers")
            return (0..<21).map {
                Int64(bitPattern: get64(contents[Self.le32(UInt32($0))]?.first ?? [UInt8](repeating: 0, count: 8), 0))
            }
        }
        // What the kernel answered (and Mimic with it): ENOENT, EINVAL, EPROTO, EAFNOSUPPORT,
        // EINVAL, ENONET, EINVAL, EINVAL; the allocation, zone direction 3, set_status's EBUSY and
        // 0, the insertion, change_status's EBUSY,
        // change_timeout's 0; the entry in both directions, no UDP entry, no second
        // insertion.
        #expect(
            answers == [
                -2, -22, -71, -97, -22, -64, -22, -22, 1, 3, -16, 0, 1, 0, -16, 0, 100, 101, 0, -2, 0,
            ])
    }

    /// What `net_conntrack_nat.o` answers (the kernel's `nf_nat_setup_info` through
    /// `bpf_ct_set_nat_info`): SNAT 0, a second SNAT -ENOMEM, DNAT 0, inserted, found in the
    /// original direction and at the translated reply, not at the plain reverse; a NAT to the own
    /// address changes nothing; a port-less SNAT keeps a free port; a SNAT whose reply tuple is
    /// taken is not inserted.
    static let natAnswers: [Int64] = [0, -12, 0, 1, 100, 101, -2, 0, 1, 101, 0, 1, 101, 0, 0, -2]

    static func natAnswers(_ comparison: ObjectComparison) -> [Int64] {
        let contents = comparison.mimicContents("answers")
        return (0..<16).map {
            Int64(bitPattern: get64(contents[Self.le32(UInt32($0))]?.first ?? [UInt8](repeating: 0, count: 8), 0))
        }
    }

    /// `net_conntrack_nat.o`, and `net_conntrack_nat6.o`: the same steps with IPv6 tuples, the same
    /// answers.
    @Test(arguments: [("net_conntrack_nat.o", "tc_ct_nat"), ("net_conntrack_nat6.o", "tc_ct_nat6")])
    func natInfoAgreesWithTheKernel(fixture: String, program: String) throws {
        let namespace = try TestNamespace(program.replacingOccurrences(of: "tc_ct_", with: "ct"))
        try namespace.configure("link set lo up")
        let object = try ObjectFile(contentsOf: Self.fixtures.appendingPathComponent(fixture).path)
        let answers = try namespace.enter { () throws -> [Int64] in
            let comparison = try ObjectComparison(object: object, programName: program, network: .standard)
            let result = try comparison.run(packet: Fixtures.packets[0])
            for difference in result.differences { Issue.record("\(program): \(difference)") }
            return Self.natAnswers(comparison)
        }
        #expect(answers == Self.natAnswers)
    }
}

/// The same program in Mimic alone, with the entry already in the network's table (read from
/// `--net` JSON): the lookups find it at once and the program's insertions are refused.
@Suite struct ConntrackTableTests {
    @Test func entriesOfTheNetworkDescriptionAreFound() throws {
        let network = try Network(
            jsonData: Array(
                """
                {"conntrack": [{"protocol": "tcp", "source": "198.18.0.1:40000", "destination": "198.18.0.2:80",
                                "mark": 7, "status": 14}]}
                """.utf8))
        #expect(network.conntrack.count == 1 && network.conntrack.first?.mark == 7)
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1, network: network))
        let vm = VM(emulator: emulator)
        let object = try ObjectFile(
            contentsOf: ConntrackKernelTests.fixtures.appendingPathComponent("net_conntrack.o").path)
        let program = try vm.load(object: object).program(named: "tc_conntrack")
        let process = try vm.makeProcess(for: program, context: SKBContext(packet: Fixtures.packets[0]))
        #expect(try process.run() == 0)
        let answers = try #require(emulator.map(named: "answers"))
        func answer(_ index: UInt32) -> Int64? {
            answers.value(forKey: ConntrackKernelTests.le32(index)).map { Int64(bitPattern: get64($0, 0)) }
        }
        #expect(answer(0) == 100) // found in the original direction from the start
        #expect(answer(12) == 0) // the allocated copy's tuples are taken: not inserted
        #expect(answer(16) == 100 && answer(17) == 101)
        #expect(emulator.networkState.conntrack.entries.count == 1)
        // A malformed entry is refused with its JSON path.
        #expect(throws: (any Error).self) {
            try Network(
                jsonData: Array(
                    #"{"conntrack": [{"protocol": "icmp", "source": "1.2.3.4:1", "destination": "1.2.3.5:2"}]}"#.utf8))
        }
    }
}

/// `bpf_ct_set_nat_info` in Mimic alone: what the kernel comparison cannot read (the status bits
/// and reply tuples of the inserted entries, which the fixture treats as opaque) and the port
/// Mimic chooses where the kernel's is random.
@Suite struct ConntrackNATTests {
    @Test func theTranslatedEntriesAreInTheTable() throws {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1))
        let vm = VM(emulator: emulator)
        let object = try ObjectFile(
            contentsOf: ConntrackKernelTests.fixtures.appendingPathComponent("net_conntrack_nat.o").path)
        let program = try vm.load(object: object).program(named: "tc_ct_nat")
        let process = try vm.makeProcess(for: program, context: SKBContext(packet: Fixtures.packets[0]))
        #expect(try process.run() == 0)
        let answers = try #require(emulator.map(named: "answers"))
        let values = (0..<16).map { index in
            answers.value(forKey: ConntrackKernelTests.le32(UInt32(index))).map { Int64(bitPattern: get64($0, 0)) } ?? 0
        }
        #expect(values == ConntrackKernelTests.natAnswers)
        let entries = emulator.networkState.conntrack.entries
        #expect(entries.count == 3)
        let snatDnat: UInt32 = 0x10 | 0x20 | 0x80 | 0x100 | 0x8 // SRC_NAT, DST_NAT, both DONE, CONFIRMED
        #expect(entries[0].status == snatDnat)
        #expect(
            entries[0].tuple(1)
                == .init(
                    source: [198, 18, 0, 3], sourcePort: 8080, destination: [198, 18, 0, 99], destinationPort: 5555))
        #expect(entries[1].status == 0x80 | 0x8, "no change: only IPS_SRC_NAT_DONE")
        #expect(entries[1].reply == nil || entries[1].tuple(1) == entries[1].tuple(0).inverted)
        #expect(entries[2].status == 0x10 | 0x80 | 0x8)
    }

    /// A port-less source NAT whose tuple is taken moves to the first free port of its range
    /// (the kernel starts at a random offset).
    @Test func aTakenTupleMovesThePort() {
        let table = Conntrack([
            Network.ConntrackEntry(
                transport: .tcp, source: [10, 0, 0, 1], sourcePort: 2000, destination: [10, 0, 0, 9],
                destinationPort: 80)
        ])
        var first = table.entries[0]
        #expect(
            ConntrackKfuncs.setNAT(
                &first, address: [10, 0, 0, 50] + [UInt8](repeating: 0, count: 12), port: 0, source: true, table) == 0)
        table.update(0) { $0 = first }
        var second = Network.ConntrackEntry(
            transport: .tcp, source: [10, 0, 0, 2], sourcePort: 2000, destination: [10, 0, 0, 9], destinationPort: 80,
            status: 0)
        #expect(
            ConntrackKfuncs.setNAT(
                &second, address: [10, 0, 0, 50] + [UInt8](repeating: 0, count: 12), port: 0, source: true, table) == 0)
        #expect(
            second.tuple(1).destinationPort == 1024, "2000 is taken by the first: the range 1024-65535 from its start")
        var low = Network.ConntrackEntry(
            transport: .tcp, source: [10, 0, 0, 3], sourcePort: 2000, destination: [10, 0, 0, 9], destinationPort: 80,
            status: 0)
        #expect(
            ConntrackKfuncs.setNAT(
                &low, address: [10, 0, 0, 50] + [UInt8](repeating: 0, count: 12), port: 0, source: false, table) == 0)
        #expect(low.status == 0x20 | 0x100 && low.tuple(1).source == [10, 0, 0, 50])
    }
}
