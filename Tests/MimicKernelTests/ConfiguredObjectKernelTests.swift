import Foundation
import Testing
import MimicCore
import MimicJSON
@testable import MimicKernel
import MimicLinux

/// Objects configured before load (`ObjectConfiguration`: `.rodata` constants, map sizes, a
/// program type for a legacy section) and contexts given as `ctx_in`, run in the kernel (the
/// configured object through `bpf()`: `.rodata` written before load and frozen, maps sized before
/// create) and in Mimic: the same verdicts, maps and `ctx_out`.
@Suite(
    "Configured objects: Mimic and the kernel agree",
    .enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct ConfiguredObjectKernelTests {
    static func object(_ name: String) throws -> ObjectFile {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        return try ObjectFile(contentsOf: root.appendingPathComponent("MimicCLITests/Fixtures/\(name).o").path)
    }

    static func udp(port: UInt16) -> [UInt8] {
        Fixtures.ethernet(
            type: 0x0800,
            payload: Fixtures.ipv4(
                protocol: 17,
                payload: [0x30, 0x39, UInt8(port >> 8), UInt8(port & 0xFF), 0, 16, 0, 0] + Array("mimic!!!".utf8)))
    }

    @Test(".rodata constants and a max_entries 0 map, configured the same on both sides")
    func rodataAndMapSize() throws {
        let configuration = ObjectConfiguration(
            globals: [
                .init(name: "blocked_port", value: .number("53")), .init(name: "enabled", value: .bool(true)),
                .init(name: "mode", value: .string("MODE_DROP")),
                .init(name: "limits", value: try JSONValue.parse(#"{"low": 10, "flags": [0, 3]}"#)),
            ],
            mapSizes: ["hits": 8])
        let object = try Self.object("configured").configured(configuration)
        let comparison = try ObjectComparison(object: object)
        var verdicts: [UInt32] = []
        for port: UInt16 in [53, 80, 53, 5] {
            let result = try comparison.run(packet: Self.udp(port: port))
            #expect(result.differences.isEmpty, "port \(port): \(result.differences)")
            verdicts.append(result.kernelReturn)
        }
        #expect(verdicts == [1, 2, 1, 2], "XDP_DROP for port 53 only")
        // The kernel froze .rodata: a write fails, as Mimic's does.
        let rodata = try #require(object.global(named: ".rodata")).contents
        #expect(throws: KernelError.self) {
            try comparison.kernel.maps[".rodata"]?.update(key: [0, 0, 0, 0], value: rodata)
        }
        #expect(
            comparison.emulator.map(named: ".rodata")?.update(key: [0, 0, 0, 0], value: rodata, flags: .any, cpu: 0)
                == .notPermitted)
    }

    @Test("without a size the max_entries 0 map is refused on both sides, naming the option")
    func unsized() throws {
        let object = try Self.object("configured")
        #expect(object.unsizedMapProblem?.contains("--map-size hits=N") == true)
        #expect(throws: KernelError.self) { try KernelObject(object: object) }
        #expect(throws: LoadError.self) { try VM(emulator: LinuxEmulator()).load(object: object) }
    }

    @Test("a legacy section runs with the program type given")
    func legacySection() throws {
        let original = try Self.object("legacy_section")
        #expect(original.programs.first?.type == .unspec)
        let object = try original.configured(ObjectConfiguration(programTypes: ["xdp_vlan_filter": .xdp]))
        let comparison = try ObjectComparison(object: object)
        let tagged =
            [UInt8](repeating: 2, count: 12) + [0x81, 0x00, 0x00, 0x05, 0x08, 0x00] + [UInt8](repeating: 0, count: 40)
        for packet in [Self.udp(port: 53), tagged] {
            let result = try comparison.run(packet: packet)
            #expect(result.differences.isEmpty, "\(result.differences)")
        }
    }

    @Test(
        "mark, priority, cb and the other ctx_in fields in, ctx_out equal",
        arguments: [
            "mark=5,cb[0]=3,priority=2", "mark=6",
            "mark=5,cb[0]=7,ingress_ifindex=4,tstamp=77,hwtstamp=9,gso_segs=2,gso_size=100,wire_len=60", "",
        ])
    func skbContext(fields: String) throws {
        let comparison = try ObjectComparison(object: try Self.object("tc_mark"))
        let packet = Self.udp(port: 53)
        var skb = SKBContext(packet: packet, ifindex: 1)
        skb.ingressIfindex = 0
        let context = try TestRunContext.apply(try TestRunContext.parse(fields), to: skb)
        let result = try comparison.run(packet: packet, mimicContext: context)
        #expect(result.differences.isEmpty, "\(result.differences)")
        let kernel = Dictionary((result.kernelContext ?? []).map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
        #expect(kernel["mark"] == (fields.hasPrefix("mark=5") ? 0x55 : (fields.hasPrefix("mark=6") ? 0x106 : 0x100)))
        #expect(result.mimicContext == result.kernelContext)
    }

    @Test("a prog-array slot filled by program name, the same on both sides")
    func progArraySlot() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let original = try ObjectFile(
            contentsOf: root.appendingPathComponent("MimicLinuxTests/Fixtures/tail_calls.o").path)
        // Slot 2 was empty (dispatch returns XDP_DROP); now it runs stage_count, which chains to stage_pass.
        let object = try original.configured(
            ObjectConfiguration(slots: [
                .init(map: "jump_table", index: 0, target: .program("stage_count")),
                .init(map: "jump_table", index: 2, target: .program("stage_pass")),
            ]))
        let comparison = try ObjectComparison(object: object, programName: "dispatch")
        let result = try comparison.run(packet: Self.udp(port: 53))
        #expect(result.differences.isEmpty, "\(result.differences)")
        #expect(result.kernelReturn == 0, "slot 0 now loops through stage_count until the tail-call limit: XDP_ABORTED")
    }

    @Test("xdp_md ingress_ifindex and rx_queue_index as ctx_in")
    func xdpContext() throws {
        let object = try Self.object("legacy_section").configured(
            ObjectConfiguration(programTypes: ["xdp_vlan_filter": .xdp]))
        let comparison = try ObjectComparison(object: object)
        let packet = Self.udp(port: 53)
        let context = try TestRunContext.apply(
            try TestRunContext.parse("ingress_ifindex=1,rx_queue_index=0"), to: XDPContext(packet: packet))
        let result = try comparison.run(packet: packet, mimicContext: context)
        #expect(result.differences.isEmpty, "\(result.differences)")
    }
}
