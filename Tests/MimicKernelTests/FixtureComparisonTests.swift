import Foundation
import Testing
import MimicCore
@testable import MimicKernel
import MimicLinux

/// The clang-compiled fixtures of the ELF and Linux emulator work, and the packets they run on.
enum Fixtures {
    static var directories: [URL] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        return ["MimicCoreTests/Fixtures", "MimicLinuxTests/Fixtures"].map { root.appendingPathComponent($0) }
    }

    /// Every little-endian fixture object with at least one XDP, tc or socket-filter program.
    static var objects: [String] {
        var paths: [String] = []
        for directory in directories {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            for name in names.sorted() where name.hasSuffix(".o") {
                let path = directory.appendingPathComponent(name).path
                guard let object = try? ObjectFile(contentsOf: path), !object.isBigEndian,
                    object.programs.contains(where: { ObjectComparison.supportedTypes.contains($0.type) })
                else { continue }
                paths.append(path)
            }
        }
        return paths
    }

    /// Programs that are valid kernel programs and must be compared (the others of a fixture may
    /// be conformance-style programs the kernel's verifier refuses).
    static let mustCompare: [String: Set<String>] = [
        "xdp_parse.o": ["xdp_filter"], "socket_filter.o": ["trim_long"], "btf_maps.o": ["track"],
        "legacy_maps.o": ["count_packets"], "multi_prog.o": ["xdp_first", "xdp_second", "tc_mark"],
        "xdp_firewall.o": ["firewall"], "tc_nat.o": ["dnat"], "lpm_route.o": ["route"], "lru.o": ["track"],
        "tail_calls.o": ["dispatch", "stage_pass", "stage_count"],
        "net_xdp.o": ["xdp_bytes", "xdp_mtu"],
        "net_skb.o": ["tc_bytes", "tc_state", "tc_ecn", "tc_proto", "sf_relative"],
        "bloom.o": ["bloom"],
        "net_tunnel.o": ["tc_tunnel"],
        "net_syncookie.o": ["xdp_raw_syncookie", "xdp_listener_syncookie"],
        "net_lwt.o": ["tc_xfrm", "lwt_in_encap", "lwt_in_encap6", "lwt_xmit_encap"],
        "netprog_skb.o": ["cg_ingress", "cg_egress", "lwt_input", "lwt_output", "lwt_transmit"],
        "netprog_flow.o": ["dissect"],
        "packet_kfuncs.o": ["tc_dynptr", "xdp_dynptr"],
        // Loaded with the object's BTF (a bpf_loop callback; a spin lock in an inner map's value).
        "loop.o": ["squares"], "MimicLinuxTests/map_in_map.o": ["bump"],
    ]

    static func ethernet(type: UInt16, payload: [UInt8]) -> [UInt8] {
        [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, UInt8(type >> 8), UInt8(type & 0xFF)] + payload
    }

    static func ipv4(protocol proto: UInt8, payload: [UInt8]) -> [UInt8] {
        let length = 20 + payload.count
        return [
            0x45, 0, UInt8(length >> 8), UInt8(length & 0xFF), 0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ] + payload
    }

    /// IPv4/UDP, IPv4/TCP, IPv6/UDP, ARP, a one-byte experimental frame, a long UDP packet, random bytes.
    /// (The kernel's skb test run refuses IPv4/IPv6 packets whose IP header is cut short.)
    static var packets: [[UInt8]] {
        let udp: [UInt8] = [0x30, 0x39, 0x00, 0x35, 0, 16, 0, 0] + Array("mimic!!!".utf8)
        let tcp: [UInt8] = [0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xFF, 0xFF, 0, 0, 0, 0]
        var ipv6: [UInt8] = [0x60, 0, 0, 0, 0, 16, 17, 64] + [UInt8](repeating: 0, count: 32)
        ipv6[23] = 1
        ipv6[39] = 2
        var random = SeededRandom(seed: 99)
        return [
            ethernet(type: 0x0800, payload: ipv4(protocol: 17, payload: udp)),
            ethernet(type: 0x0800, payload: ipv4(protocol: 6, payload: tcp)),
            ethernet(type: 0x86DD, payload: ipv6 + udp),
            ethernet(type: 0x0806, payload: [UInt8](repeating: 0, count: 28)),
            ethernet(type: 0x88B5, payload: [0x01]), // a local experimental EtherType, one byte
            ethernet(type: 0x0800, payload: ipv4(protocol: 17, payload: udp + [UInt8](repeating: 0x5A, count: 120))),
            (0..<60).map { _ in UInt8(truncatingIfNeeded: random.next()) },
        ]
    }
}

@Suite(
    "Fixtures: Mimic and the kernel agree",
    .enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct FixtureComparisonTests {
    @Test("the fixture list holds the XDP, tc and socket-filter objects")
    func fixturesFound() {
        let names = Set(Fixtures.objects.map { URL(fileURLWithPath: $0).lastPathComponent })
        #expect(
            names.isSuperset(of: [
                "xdp_parse.o", "socket_filter.o", "btf_maps.o", "legacy_maps.o", "globals.o", "loops.o",
                "subprog_calls.o",
            ]), "\(names)")
    }

    @Test("every program gives the same return value, packet and maps on every packet", arguments: Fixtures.objects)
    func agree(path: String) throws {
        let object = try ObjectFile(contentsOf: path)
        let name = URL(fileURLWithPath: path).lastPathComponent
        var compared: Set<String> = []
        // sk_lookup programs take no packet: NetProgramKernelTests compares them. netprog_sockmap's
        // tc program reads the socket the kernel's test run gives every sk_buff, which the default
        // Mimic context lacks: SocketMapKernelTests compares it with a context describing it.
        for program in object.programs
        where ObjectComparison.supportedTypes.contains(program.type) && program.type != .skLookup
            && !(name == "netprog_sockmap.o" && program.name == "sockets")
        {
            let comparison: ObjectComparison
            do {
                comparison = try ObjectComparison(object: object, programName: program.name)
            } catch let error as KernelError {
                // Programs the kernel cannot take (conformance-style R1/R2 memory programs,
                // programs only Mimic runs) are listed, not failed.
                let reason = error.verifierLog.map(DifferentialFuzzer.reason(fromLog:)) ?? "\(error)"
                print("◇ \(name) \(program.name): not compared, the kernel refuses it: \(reason)")
                continue
            }
            compared.insert(program.name)
            for (index, packet) in Fixtures.packets.enumerated() {
                let result = try comparison.run(packet: packet)
                #expect(
                    result.differences.isEmpty,
                    "\(name) \(program.name) packet \(index): \(result.differences.joined(separator: "; "))")
            }
        }
        // Keyed by file name, or by test target and file name where two targets have a fixture of that name.
        let target = URL(fileURLWithPath: path).deletingLastPathComponent().deletingLastPathComponent()
            .lastPathComponent
        let required = Fixtures.mustCompare["\(target)/\(name)"] ?? Fixtures.mustCompare[name] ?? []
        #expect(
            compared.isSuperset(of: required),
            "\(name): compared \(compared.sorted()), expected at least \(required.sorted())")
    }
}
