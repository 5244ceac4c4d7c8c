import Foundation
import MimicCore
import MimicLinux
import MimicPcap
import MimicTestSupport
import Testing

/// Devmap and cpumap entries that carry their own program (issue 14), on the `xdp_devmap_prog`
/// fixture: the entry program runs on the redirected frame before it leaves, as the kernel's
/// `dev_map_bpf_prog_run` and `cpu_map_bpf_prog_run_xdp` run it, and its verdict decides.
@Suite("devmap and cpumap programs")
struct DevmapProgramTests {
    static let object = Examples.fixture("xdp_devmap_prog.o")

    /// A UDP frame to `destination`, port `port`.
    static func frame(to destination: String, port: UInt16 = 53) -> [UInt8] {
        Packet.make(source: "192.0.2.1", destination: destination, destinationPort: port)
    }

    /// `frame` as egress_mark leaves it on `ifindex`: the source MAC's last byte is the ifindex.
    static func marked(_ frame: [UInt8], _ ifindex: UInt8) -> [UInt8] {
        var out = frame
        out[11] = ifindex
        return out
    }

    /// The fixture loaded, its entries set: ports[0] ifindex 2 and ports[2] ifindex 4 with
    /// egress_mark, ports[1] ifindex 3 without a program, cpus[1] with cpu_steer.
    static func load() throws -> (LinuxEmulator, LoadedObject) {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 2, randomSeed: 1))
        let vm = VM(emulator: emulator)
        let object = try ObjectFile(contentsOf: Self.object)
        let loaded = try vm.load(object: object)
        let ports = try #require(emulator.map(named: "ports") as? RedirectMap)
        let cpus = try #require(emulator.map(named: "cpus") as? RedirectMap)
        let mark = try loaded.program(named: "egress_mark")
        let steer = try loaded.program(named: "cpu_steer")
        #expect(ports.setEntry(key: 0, value: le32(2) + le32(0), program: mark, attachType: .xdpDevmap) == nil)
        #expect(ports.setEntry(key: 1, value: le32(3) + le32(0), program: nil, attachType: nil) == nil)
        #expect(ports.setEntry(key: 2, value: le32(4) + le32(0), program: mark, attachType: .xdpDevmap) == nil)
        #expect(cpus.setEntry(key: 1, value: le32(192) + le32(0), program: steer, attachType: .xdpCpumap) == nil)
        return (emulator, loaded)
    }

    /// Runs xdp_forward on `frame` arriving on ifindex 3 and follows the redirect.
    static func forward(_ frame: [UInt8], _ emulator: LinuxEmulator, _ loaded: LoadedObject) throws
        -> (UInt64, [RedirectDelivery]?)
    {
        let program = try loaded.program(named: "xdp_forward")
        let process = try program.vm.makeProcess(for: program, context: XDPContext(packet: frame, ingressIfindex: 3))
        let r0 = try process.run()
        return (r0, emulator.deliver(redirectOf: process))
    }

    @Test func entriesCarryTheirProgramsAsTheKernelChecksThem() throws {
        let (emulator, loaded) = try Self.load()
        let ports = try #require(emulator.map(named: "ports") as? RedirectMap)
        let cpus = try #require(emulator.map(named: "cpus") as? RedirectMap)
        let mark = try loaded.program(named: "egress_mark")
        let steer = try loaded.program(named: "cpu_steer")
        // The value read back holds the program's id in bpf_prog (the same for both entries).
        let first = try #require(ports.value(forKey: le32(0)))
        let third = try #require(ports.value(forKey: le32(2)))
        #expect(first.prefix(4) == [2, 0, 0, 0] && first.suffix(4) != [0, 0, 0, 0])
        #expect(first.suffix(4) == third.suffix(4))
        #expect(Array(first.suffix(4)) == le32(mark.id))
        #expect(ports.program(forKey: 0)?.name == "egress_mark")
        #expect(ports.program(forKey: 0)?.id == mark.id, "a detached program made whole keeps its id")
        // Ids are the process's, as bpf_prog.id is the system's: another program, or the same
        // one loaded into another VM, has another.
        let again = try Self.load().1.program(named: "egress_mark")
        #expect(Set([mark.id, steer.id, again.id]).count == 3)
        #expect(ports.program(forKey: 1) == nil)
        // The kernel's refusals: a program of another attach type, a program on ifindex 0, an fd
        // through bytes (no program has an fd in Mimic): -EINVAL for a devmap; a cpumap entry
        // that cannot load its program is -ENOMEM; a queue size of 0 empties the entry.
        #expect(ports.setEntry(key: 3, value: le32(5) + le32(0), program: steer, attachType: .xdpCpumap) == .invalid)
        #expect(ports.setEntry(key: 3, value: le32(0) + le32(0), program: mark, attachType: .xdpDevmap) == .invalid)
        #expect(ports.update(key: le32(3), value: le32(5) + le32(7), flags: .any, cpu: 0) == .invalid)
        #expect(cpus.update(key: le32(0), value: le32(64) + le32(7), flags: .any, cpu: 0) == .noMemory)
        #expect(cpus.update(key: le32(0), value: le32(20_000) + le32(7), flags: .any, cpu: 0) == .overflow)
        #expect(cpus.setEntry(key: 0, value: le32(64) + le32(0), program: mark, attachType: .xdpDevmap) == .invalid)
        #expect(cpus.setEntry(key: 1, value: le32(0) + le32(0), program: steer, attachType: .xdpCpumap) == nil)
        #expect(cpus.program(forKey: 1) == nil)
        // Deleting an entry drops its program.
        #expect(ports.delete(key: le32(0)) == nil)
        #expect(ports.program(forKey: 0) == nil)
    }

    @Test func theEntryProgramRunsAndItsVerdictDecides() throws {
        let (emulator, loaded) = try Self.load()
        let seen = try #require(emulator.map(named: "seen"))

        // ports[0]: egress_mark passes, the frame leaves ifindex 2 as the program left it.
        let frame = Self.frame(to: "10.0.2.5")
        let (r0, deliveries) = try Self.forward(frame, emulator, loaded)
        #expect(r0 == 4)
        let only = try #require(deliveries?.first)
        #expect(deliveries?.count == 1)
        #expect(only.target == .interface(2))
        #expect(only.packet == Self.marked(frame, 2))
        #expect(only.runs.map(\.program) == ["egress_mark"] && only.runs.map(\.returnValue) == [2])
        // Its xdp_md: ingress_ifindex of the receiving device, rx_queue_index 0, egress_ifindex of
        // the entry; the metadata xdp_forward wrote (the address's last byte) came along.
        #expect(seen.value(forKey: le32(2)) == le32(3) + le32(0) + le32(2) + le32(5) + le32(1))

        // Port 9: egress_mark drops it.
        let dropped = try #require(try Self.forward(Self.frame(to: "10.0.2.6", port: 9), emulator, loaded).1)
        #expect(dropped.map(\.target) == [.dropped("XDP_DROP from the devmap program")])

        // ports[1] has no program: the frame leaves unchanged.
        let plain = Self.frame(to: "10.0.3.5")
        #expect(
            try Self.forward(plain, emulator, loaded).1 == [
                RedirectDelivery(target: .interface(3), packet: plain, runs: [])
            ])

        // cpus[1]: cpu_steer passes 10.0.4.1 to CPU 1's stack, redirects the rest into ports[0].
        let local = Self.frame(to: "10.0.4.1")
        let toCPU = try #require(try Self.forward(local, emulator, loaded).1)
        #expect(toCPU.map(\.target) == [.cpu(1)] && toCPU.first?.packet == local)
        let steered = Self.frame(to: "10.0.4.7")
        let again = try #require(try Self.forward(steered, emulator, loaded).1)
        #expect(again.map(\.target) == [.interface(2)])
        #expect(again.first?.packet == Self.marked(steered, 2))
        #expect(again.first?.runs.map(\.program) == ["cpu_steer", "egress_mark"])
        #expect(seen.value(forKey: le32(2)) == le32(3) + le32(0) + le32(2) + le32(7) + le32(3))

        // A broadcast excluding the ingress ifindex 3: ports[0] and ports[2], each marked by its
        // own run of egress_mark.
        let everyone = Self.frame(to: "10.0.5.5")
        let copies = try #require(try Self.forward(everyone, emulator, loaded).1)
        #expect(copies.map(\.target) == [.interface(2), .interface(4)])
        #expect(copies.map(\.packet) == [Self.marked(everyone, 2), Self.marked(everyone, 4)])
        #expect(seen.value(forKey: le32(4)) == le32(3) + le32(0) + le32(4) + le32(5) + le32(1))

        // Not a map redirect: nothing to deliver.
        #expect(try Self.forward(Self.frame(to: "10.0.1.1"), emulator, loaded).1 == nil)
    }

    @Test func outDirShowsWhereEachFrameWent() throws {
        let directory = try TemporaryDirectory()
        let frames: [[UInt8]] = [
            Self.frame(to: "10.0.2.5"), Self.frame(to: "10.0.2.6", port: 9), Self.frame(to: "10.0.3.5"),
            Self.frame(to: "10.0.4.1"), Self.frame(to: "10.0.4.7"), Self.frame(to: "10.0.5.5"),
            Self.frame(to: "10.0.1.1"),
        ]
        let packets = frames.enumerated().map {
            PcapPacket(data: $0.element, timestamp: (1_700_000_000 + UInt64($0.offset)) * 1_000_000_000)
        }
        let input = try directory.file("in.pcap", bytes: PcapWriter.file(packets))
        let ports = try directory.file(
            "ports.json",
            bytes: Array(
                """
                [{"key": 0, "value": {"ifindex": 2, "program": "egress_mark"}},
                 {"key": 1, "value": "03000000 00000000"},
                 {"key": 2, "value": {"ifindex": 4, "program": "egress_mark"}}]
                """.utf8))
        let cpus = try directory.file(
            "cpus.json", bytes: Array(#"[{"key": 1, "value": {"qsize": 192, "program": "cpu_steer"}}]"#.utf8))
        let outDir = directory.path("out")
        let result = try MimicCLI.run([
            "run", Self.object, "-p", "xdp_forward", "--pcap", input, "--ctx", "ingress_ifindex=3", "--cpus", "2",
            "--map", "ports=" + ports, "--map", "cpus=" + cpus, "--out-dir", outDir,
        ])
        #expect(result.status == 0, "\(result)")
        let expected: [String: [[UInt8]]] = [
            "pass": [frames[6]],
            "if2": [Self.marked(frames[0], 2), Self.marked(frames[4], 2), Self.marked(frames[5], 2)],
            "if3": [frames[2]],
            "if4": [Self.marked(frames[5], 4)],
            "cpu1": [frames[3]],
            "drop": [Self.marked(frames[1], 2)],
        ]
        let written = try FileManager.default.contentsOfDirectory(atPath: outDir).sorted()
        #expect(written == expected.keys.map { $0 + ".pcap" }.sorted())
        for (name, packets) in expected {
            let got = try PcapReader.readAll(
                [UInt8](Data(contentsOf: URL(fileURLWithPath: outDir + "/" + name + ".pcap"))))
            #expect(got.map(\.data) == packets, "\(name)")
        }

        // A program of the wrong kind for the entry is refused by name.
        let wrong = try directory.file(
            "wrong.json", bytes: Array(#"[{"key": 0, "value": {"ifindex": 2, "program": "cpu_steer"}}]"#.utf8))
        let refused = try MimicCLI.run([
            "run", Self.object, "-p", "xdp_forward", "--pcap", input, "--map", "ports=" + wrong,
        ])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("program cpu_steer is not an xdp/devmap program"), "\(refused)")
    }

    /// The trace lines and failures of entry programs are reported with the packet that ran
    /// them, after the main program's lines, with one worker and two alike (the
    /// `xdp_devmap_trace` fixture: egress_trace and cpu_trace print, egress_fault faults).
    @Test(arguments: ["1", "2"])
    func entryProgramTraceAndFailuresAreReported(workers: String) throws {
        let directory = try TemporaryDirectory()
        let frames = ["10.0.2.5", "10.0.3.7", "10.0.4.9", "10.0.1.1"].map { Self.frame(to: $0) }
        let input = try directory.file("in.pcap", bytes: PcapWriter.file(frames.map { PcapPacket(data: $0) }))
        let ports = try directory.file(
            "ports.json",
            """
            [{"key": 0, "value": {"ifindex": 2, "program": "egress_trace"}},
             {"key": 1, "value": {"ifindex": 3, "program": "egress_fault"}}]
            """)
        let cpus = try directory.file(
            "cpus.json", #"[{"key": 1, "value": {"qsize": 192, "program": "cpu_trace"}}]"#)
        let result = try MimicCLI.run([
            "run", Examples.fixture("xdp_devmap_trace.o"), "-p", "xdp_send", "--pcap", input, "--ctx",
            "ingress_ifindex=3", "--cpus", "2", "--map", "ports=" + ports, "--map", "cpus=" + cpus,
            "--workers", workers,
        ])
        #expect(result.status == 0, "\(result)")
        #expect(
            result.stdout.contains(
                """
                trace output (6 lines):
                  [packet 1] send 2.5
                  [packet 1] egress 2 host 5
                  [packet 2] send 3.7
                  [packet 3] send 4.9
                  [packet 3] cpu host 9
                  [packet 4] send 1.1

                """), "\(result)")
        #expect(
            result.stdout.contains(
                "warning: packet 2: ports[1] program egress_fault: program egress_fault, instruction 1 "
                    + "(ldxb %r1, [%r1+4000]): invalid memory access: read of 1 byte"), "\(result)")
        #expect(result.stdout.contains("  error  1\n"), "\(result)")
        // The JSON report lists the same warnings.
        let json = try MimicCLI.run([
            "run", Examples.fixture("xdp_devmap_trace.o"), "-p", "xdp_send", "--pcap", input, "--ctx",
            "ingress_ifindex=3", "--cpus", "2", "--map", "ports=" + ports, "--map", "cpus=" + cpus,
            "--workers", workers, "--json",
        ])
        #expect(json.status == 0, "\(json)")
        #expect(json.stdout.contains(#""warnings""#), "\(json)")
        #expect(
            json.stdout.contains(#""packet 2: ports[1] program egress_fault: program egress_fault, instruction 1 "#),
            "\(json)")
    }

    /// Every mistake in an entry that names a program is refused before the first packet, naming
    /// the file, the entry and what is wrong.
    @Test(arguments: [
        (
            "ports", #"[{"key": 0, "value": {"ifindex": 2, "program": "nosuch"}}]"#,
            "has no program named 'nosuch'; programs: xdp_forward"
        ),
        (
            "ports", #"[{"key": 0, "value": {"ifindex": 2, "qsize": 1, "program": "egress_mark"}}]"#,
            "give either ifindex or qsize, not both"
        ),
        (
            "ports", #"[{"key": 0, "value": {"ifindex": 2, "colour": 1, "program": "egress_mark"}}]"#,
            "unknown member \"colour\""
        ),
        (
            "ports", #"[{"key": 0, "value": {"program": "egress_mark"}}]"#,
            "give the entry's ifindex (devmap) or qsize (cpumap)"
        ),
        ("ports", #"[{"key": 0, "value": {"ifindex": -1, "program": "egress_mark"}}]"#, "[0].value.ifindex"),
        ("ports", #"[{"key": 0, "value": {"ifindex": 2, "program": 7}}]"#, "[0].value.program: expected a string"),
        (
            "ports", #"[{"key": 9, "value": {"ifindex": 2, "program": "egress_mark"}}]"#,
            "index outside the array (max_entries 4)"
        ),
        ("seen", #"[{"key": 0, "value": {"ifindex": 2, "program": "egress_mark"}}]"#, "needs 8-byte values"),
        (
            "cpus", #"[{"key": 1, "value": {"qsize": 192, "program": "egress_mark"}}]"#,
            "program egress_mark is not an xdp/cpumap program"
        ),
    ])
    func entryProgramMistakesAreNamed(map: String, entries: String, message: String) throws {
        let directory = try TemporaryDirectory()
        let input = try directory.file(
            "in.pcap", bytes: PcapWriter.file([PcapPacket(data: Self.frame(to: "10.0.2.5"))]))
        let file = try directory.file("entries.json", bytes: Array(entries.utf8))
        let result = try MimicCLI.run([
            "run", Self.object, "-p", "xdp_forward", "--pcap", input, "--cpus", "2", "--map", map + "=" + file,
        ])
        #expect(result.status != 0)
        #expect(result.stderr.contains("entries.json"), "\(result)")
        #expect(result.stderr.contains(message), "\(result)")
    }
}

/// Little-endian bytes of a u32.
private func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(value >> (8 * $0) & 0xFF) } }
