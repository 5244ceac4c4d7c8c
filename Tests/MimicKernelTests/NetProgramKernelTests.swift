import Foundation
import Testing
import MimicCore
@testable import MimicKernel
import MimicLinux

/// The program types beyond XDP and tc that the kernel's `BPF_PROG_TEST_RUN` runs — cgroup_skb,
/// lwt_in / lwt_out / lwt_xmit, flow dissector, sk_lookup — on fixtures of
/// `Tests/MimicLinuxTests/Fixtures/netprog_*.c`: the same return value, packet or flow keys,
/// `ctx_out` and maps in Mimic and the kernel.
@Suite(
    "Socket and cgroup program types: Mimic and the kernel agree",
    .enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct NetProgramKernelTests {
    static func object(_ name: String) throws -> ObjectFile {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        return try ObjectFile(contentsOf: root.appendingPathComponent("MimicLinuxTests/Fixtures/\(name).o").path)
    }

    static func udp(port: UInt16, ttl: UInt8 = 64) -> [UInt8] {
        var ip = Fixtures.ipv4(
            protocol: 17,
            payload: [0x30, 0x39, UInt8(port >> 8), UInt8(port & 0xFF), 0, 16, 0, 0] + Array("mimic!!!".utf8))
        ip[8] = ttl
        return Fixtures.ethernet(type: 0x0800, payload: ip)
    }

    static var packets: [[UInt8]] { [udp(port: 53), udp(port: 9, ttl: 1), udp(port: 443)] + Fixtures.packets }

    @Test(
        "cgroup_skb and lwt programs: verdict, packet, ctx_out and maps",
        arguments: ["cg_ingress", "cg_egress", "lwt_input", "lwt_output", "lwt_transmit"])
    func skbTypes(program: String) throws {
        let comparison = try ObjectComparison(object: try Self.object("netprog_skb"), programName: program)
        var verdicts: [UInt32] = []
        for (index, packet) in Self.packets.enumerated() {
            for fields in ["", "mark=7,cb[3]=41,priority=3"] {
                var skb = SKBContext(packet: packet, ifindex: 1)
                skb.ingressIfindex = 0
                let context = try TestRunContext.apply(try TestRunContext.parse(fields), to: skb)
                let result = try comparison.run(packet: packet, mimicContext: context)
                #expect(result.differences.isEmpty, "\(program) packet \(index) [\(fields)]: \(result.differences)")
                #expect(result.mimicContext == result.kernelContext)
                if fields.isEmpty { verdicts.append(result.kernelReturn) }
            }
        }
        // The fixtures decide by port: both outcomes are exercised.
        #expect(Set(verdicts).count >= 2, "\(program): \(verdicts)")
    }

    @Test("lwt_xmit lowers the TTL and fixes the checksum as the kernel does")
    func lwtTransmitRewrites() throws {
        let comparison = try ObjectComparison(object: try Self.object("netprog_skb"), programName: "lwt_transmit")
        let packet = Self.udp(port: 443)
        let result = try comparison.run(packet: packet)
        #expect(result.differences.isEmpty, "\(result.differences)")
        #expect(result.kernelPacket[8] == 63, "TTL 64 lowered")
        #expect(result.kernelPacket != Array(packet.dropFirst(14)))
    }

    static func ipv6TCP() -> [UInt8] {
        var ipv6: [UInt8] = [0x60, 0x0A, 0xBC, 0xDE, 0, 20, 6, 64] + [UInt8](repeating: 0, count: 32)
        ipv6[8] = 0xFD
        ipv6[23] = 1
        ipv6[24] = 0xFD
        ipv6[39] = 2
        let tcp: [UInt8] = [0x9C, 0x40, 0x01, 0xBB, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xFF, 0xFF, 0, 0, 0, 0]
        return Fixtures.ethernet(type: 0x86DD, payload: ipv6 + tcp)
    }

    static func fragment(first: Bool) -> [UInt8] {
        var ip = Fixtures.ipv4(protocol: 17, payload: [0x30, 0x39, 0x00, 0x35, 0, 16, 0, 0])
        ip[6] = first ? 0x20 : 0x00 // MF
        ip[7] = first ? 0x00 : 0x10 // offset 16 * 8
        return Fixtures.ethernet(type: 0x0800, payload: ip)
    }

    @Test("a flow dissector: verdict and bpf_flow_keys (nhoff/thoff clamped), with and without flags")
    func flowDissector() throws {
        let comparison = try ObjectComparison(object: try Self.object("netprog_flow"))
        let packets = Self.packets + [Self.ipv6TCP(), Self.fragment(first: true), Self.fragment(first: false)]
        var verdicts: Set<UInt32> = []
        for (index, packet) in packets.enumerated() {
            for flags: UInt32 in [0, 1, 6] {
                let context = FlowDissectorContext(packet: packet, flags: flags)
                let result = try comparison.run(packet: packet, mimicContext: context)
                #expect(result.differences.isEmpty, "packet \(index) flags \(flags): \(result.differences)")
                #expect(result.kernelPacket.count == 56, "the test run returns struct bpf_flow_keys")
                if index == 0 {
                    // IPv4/UDP to port 53: ports filled, thoff after the IP header, and
                    // bpf_skb_load_bytes failed with -EFAULT (no sk_buff in a test run).
                    #expect(Array(result.kernelPacket[12..<16]) == [0x30, 0x39, 0x00, 0x35])
                    #expect(result.kernelPacket[2] == 34 && result.kernelPacket[8] == 1)
                }
                verdicts.insert(result.kernelReturn)
            }
        }
        #expect(verdicts == [0, 2], "BPF_OK and BPF_DROP both seen")
    }

    @Test("sk_lookup: verdict, selection (none, cleared by bpf_sk_assign NULL) and maps")
    func skLookup() throws {
        let comparison = try ObjectComparison(object: try Self.object("netprog_sk_lookup"))
        let lookups = [
            SKLookupContext(
                family: 2, protocol: 6, remoteAddress: [10, 0, 0, 9], remotePort: 40000, localAddress: [10, 0, 0, 1],
                localPort: 80),
            SKLookupContext(
                family: 2, protocol: 17, remoteAddress: [192, 168, 1, 2], remotePort: 5353,
                localAddress: [192, 168, 1, 1], localPort: 53),
            SKLookupContext(
                family: 2, protocol: 6, remoteAddress: [10, 0, 0, 9], remotePort: 1, localAddress: [10, 0, 0, 1],
                localPort: 7),
            SKLookupContext(
                family: 10, protocol: 6, remoteAddress: [0xFD] + [UInt8](repeating: 0, count: 14) + [2],
                remotePort: 33000, localAddress: [0xFD] + [UInt8](repeating: 0, count: 14) + [1], localPort: 443),
            SKLookupContext(
                family: 2, protocol: 6, remoteAddress: [10, 0, 0, 9], remotePort: 40000, localAddress: [10, 0, 0, 1],
                localPort: 80),
        ]
        var verdicts: [UInt32] = []
        for (index, lookup) in lookups.enumerated() {
            let result = try comparison.run(lookup: lookup)
            #expect(result.differences.isEmpty, "lookup \(index): \(result.differences)")
            #expect(result.kernelCookie == 0)
            verdicts.append(result.kernelReturn)
        }
        #expect(verdicts == [1, 1, 0, 1, 1])
    }

    @Test(
        "the kernel's verifier takes the sock_addr, sock_ops and cgroup_sock fixtures and refuses the forbidden write Mimic reports"
    )
    func verifierAgreesOnAccess() throws {
        let kernel = try KernelObject(object: try Self.object("netprog_sock"))
        for name in ["connect_redirect", "sendmsg_source", "sock_ops", "sock_create"] {
            #expect(throws: Never.self, "\(name)") { _ = try kernel.program(named: name) }
        }
        let reuseport = try KernelObject(object: try Self.object("netprog_reuseport"))
        #expect(throws: Never.self) { _ = try reuseport.program(named: "select_group") }
        let skbWrites = try KernelObject(object: try Self.object("netprog_skb_forbidden"))
        for name in ["filter_writes_mark", "cgroup_writes_tc_index"] {
            do {
                _ = try skbWrites.program(named: name)
                Issue.record("the kernel loaded \(name), whose __sk_buff write its type may not make")
            } catch {
                #expect(error.verifierLog?.contains("invalid bpf_context access") == true, "\(name): \(error)")
            }
        }
        let message = try KernelObject(object: try Self.object("netprog_msg"))
        #expect(throws: Never.self) { _ = try message.program(named: "msg_rewrite") }
        do {
            _ = try kernel.program(named: "bind_forbidden")
            Issue.record("the kernel loaded bind_forbidden, which writes msg_src_ip4 from bind4")
        } catch {
            #expect(error.verifierLog?.contains("invalid bpf_context access") == true, "\(error)")
        }
    }

    @Test(
        "cgroup storage (shared and per-CPU) from cgroup_skb: ctx_out equal on every run, each run starting fresh as the kernel's test run does"
    )
    func cgroupStorage() throws {
        let comparison = try ObjectComparison(object: try Self.object("netprog_cgstorage"))
        for packet in [Self.udp(port: 53), Self.udp(port: 80)] {
            let result = try comparison.run(packet: packet)
            #expect(result.differences.isEmpty, "\(result.differences)")
            let fields = Dictionary(uniqueKeysWithValues: (result.kernelContext ?? []).map { ($0.name, $0.value) })
            #expect(fields["mark"] == 101 && fields["cb[0]"] == UInt64(packet.count - 14) && fields["cb[1]"] == 1)
        }
    }
}
