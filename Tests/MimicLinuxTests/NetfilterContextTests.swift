import Foundation
import MimicCore
import MimicJSON
import MimicTestSupport
import Testing

@testable import MimicLinux

/// The netfilter program type (`bpf_nf_ctx`) on `Fixtures/netprog_netfilter.c`: the hook and
/// family from `ctx->state`, the sk_buff's fields through CO-RE (laid out from the object's own
/// BTF here), a read-only skb dynptr over the data, and the verdict. The kernel comparison is
/// `NetfilterKernelTests`.
struct NetfilterContextTests {
    static func run(_ context: NetfilterContext) throws -> (NetfilterContext.Result, [Int64]) {
        let loaded = try Fixture.load("netprog_netfilter")
        let source = try #require(loaded.object.object.program(named: "nf_filter"))
        let fitted = try ContextFit.fit(context, to: source)
        let process = try loaded.run("nf_filter", context: fitted)
        let result = try #require(NetfilterContext.result(of: process))
        let bss = try #require(loaded.object.globals[".bss"]).storage.bytes
        let seen = (0..<12).map { index in
            Int64(bitPattern: (0..<8).reduce(UInt64(0)) { $0 | UInt64(bss[8 * index + $1]) << (8 * $1) })
        }
        return (result, seen)
    }

    static func ipv6UDP(port: UInt16) -> [UInt8] {
        let udp: [UInt8] = [0x30, 0x39] + Packet.be16(port) + [0, 12, 0, 0] + Array("mimic".utf8) + [0]
        var ipv6: [UInt8] = [0x60, 0, 0, 0] + Packet.be16(UInt16(udp.count)) + [17, 64]
        ipv6 += [0xFD] + [UInt8](repeating: 0, count: 14) + [1] + [0xFD] + [UInt8](repeating: 0, count: 14) + [2]
        return [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xDD] + ipv6 + udp
    }

    @Test("local_out: the IP packet, hook and family, skb fields, a read-only dynptr, NF_DROP for telnet")
    func localOut() throws {
        let frame = Packet.make(source: "10.0.0.1", destination: "10.0.0.2", protocol: Packet.tcp, destinationPort: 23)
        let ip = Array(frame.dropFirst(14))
        let (result, seen) = try Self.run(NetfilterContext(packet: ip, mark: 7))
        #expect(result.returnValue == NetfilterContext.drop)
        #expect(result.verdict == "NF_DROP")
        #expect(result.hook == .localOut && result.pf == 2)
        #expect(seen == [3, 2, Int64(ip.count), 0, 0x0008, 7, 1, Int64(ip.count), -22, 0x45, 6, 23])
    }

    @Test("pre_routing: an Ethernet frame whose header is pulled; IPv6 by its family; NF_ACCEPT")
    func preRoutingIPv6() throws {
        let frame = Self.ipv6UDP(port: 53)
        let (result, seen) = try Self.run(NetfilterContext(packet: frame, hook: .preRouting, pf: 10))
        #expect(result.returnValue == NetfilterContext.accept)
        // No output device at pre-routing: seen[6] stays 0.
        #expect(seen == [0, 10, Int64(frame.count - 14), 0, 0xDD86, 0, 0, Int64(frame.count - 14), -22, 0x60, 17, 53])
        let (dropped, _) = try Self.run(NetfilterContext(packet: Self.ipv6UDP(port: 9), hook: .forward, pf: 10))
        #expect(dropped.verdict == "NF_DROP")
    }

    @Test("the state's devices follow the hook: state->out at post_routing is the named device")
    func postRoutingDevice() throws {
        let frame = Packet.make(source: "10.0.0.1", destination: "10.0.0.2")
        let (_, seen) = try Self.run(NetfilterContext(packet: frame, hook: .postRouting, ifindex: 2))
        #expect(seen[0] == 4 && seen[6] == 2)
    }

    @Test("a context file: names, numbers and defaults")
    func contextFile() throws {
        let frame = Packet.make(source: "10.0.0.1", destination: "10.0.0.2")
        let hex = frame.map { String(format: "%02x", $0) }.joined(separator: " ")
        let text = """
            { "name": "DNS at input", "type": "bpf_nf_ctx",
              "ctx": { "hook": "input", "pf": "ipv4", "ifindex": 2, "mark": 5, "packet": { "hex": "\(hex)" } } }
            """
        let context = try #require(try ContextFile.load(data: Array(text.utf8)) as? NetfilterContext)
        #expect(context.hook == .localIn && context.pf == 2 && context.ifindex == 2 && context.mark == 5)
        #expect(context.packet == frame && context.name == "DNS at input")
        let numbers = """
            { "type": "bpf_nf_ctx", "ctx": { "hook": 4, "pf": 2, "packet": { "hex": "\(hex)" } } }
            """
        let numbered = try #require(try ContextFile.load(data: Array(numbers.utf8)) as? NetfilterContext)
        #expect(numbered.hook == .postRouting && numbered.ifindex == 1)
        let defaults = try #require(
            try ContextFile.load(data: Array(#"{"type": "bpf_nf_ctx", "ctx": {"packet": {"hex": "\#(hex)"}}}"#.utf8))
                as? NetfilterContext)
        #expect(defaults.hook == .localOut && defaults.pf == 2)
    }

    @Test(
        "bad context files are errors naming the member",
        arguments: [
            (#"{"hook": 3, "pakcet": ""}"#, "ctx.pakcet", "unknown"),
            (#"{"hook": "sideways", "packet": {"hex": "PACKET"}}"#, "ctx.hook", "unknown netfilter hook"),
            (#"{"hook": 5, "packet": {"hex": "PACKET"}}"#, "ctx.hook", "0-4"),
            (#"{"pf": 7, "packet": {"hex": "PACKET"}}"#, "ctx.pf", "NFPROTO_IPV4"),
            (#"{"pf": "ipx", "packet": {"hex": "PACKET"}}"#, "ctx.pf", "ipv4"),
            (#"{"packet": {"hex": "45 00"}}"#, "ctx.packet", "at least an IPv4 header"),
            (#"{"hook": "prerouting", "pf": "ipv6", "packet": {"hex": "PACKET"}}"#, "ctx.packet", "not of family 10"),
            (#"{"hook": "prerouting", "packet": {"hex": "PACKET"}}"#, "ctx.packet", "Ethernet frame"),
            (#"{"ifindex": -1, "packet": {"hex": "PACKET"}}"#, "ctx.ifindex", "out of range"),
            (#"{"mark": "7", "packet": {"hex": "PACKET"}}"#, "ctx.mark", "expected"),
        ])
    func badFiles(ctx: String, path: String, message: String) throws {
        let frame = Packet.make(source: "10.0.0.1", destination: "10.0.0.2")
        // "PACKET" is the IP packet alone: a frame at local_out, too short a frame elsewhere.
        var ip = Array(frame.dropFirst(14).prefix(24))
        if ctx.contains("\"pf\": \"ipv6\"") { ip = frame }
        let hex = ip.map { String(format: "%02x", $0) }.joined(separator: " ")
        let text = #"{"type": "bpf_nf_ctx", "ctx": "# + ctx.replacingOccurrences(of: "PACKET", with: hex) + "}"
        do {
            _ = try ContextFile.load(data: Array(text.utf8))
            Issue.record("\(ctx) loaded")
        } catch {
            #expect(error.path == path, "\(error)")
            #expect(error.message.contains(message), "\(error)")
        }
    }

    @Test("a netfilter program takes only a bpf_nf_ctx, which fits no other program")
    func fit() throws {
        let loaded = try Fixture.load("netprog_netfilter")
        let source = try #require(loaded.object.object.program(named: "nf_filter"))
        #expect(source.type == .netfilter)
        let frame = Packet.make(source: "10.0.0.1", destination: "10.0.0.2")
        #expect(throws: ContextError.self) { try ContextFit.fit(SKBContext(packet: frame), to: source) }
        #expect(throws: ContextError.self) {
            try ContextFit.fit(NetfilterContext(packet: frame), type: .xdp, describing: "an XDP program")
        }
    }

    @Test("without a BTF that has the structs, reading the state fails naming struct nf_hook_state")
    func noBTF() throws {
        let frame = Packet.make(source: "10.0.0.1", destination: "10.0.0.2")
        // A kernel BTF without the netfilter structs (another fixture's) takes the object's place.
        let other = try #require(try Fixture.object("dynptr").btf)
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1, kernelBTF: other))
        let vm = VM(emulator: emulator)
        let loaded = try vm.load(object: Fixture.object("netprog_netfilter"))
        let process = try vm.makeProcess(
            for: loaded.program(named: "nf_filter"), context: NetfilterContext(packet: Array(frame.dropFirst(14))))
        #expect {
            _ = try process.run()
        } throws: { error in
            "\(error)".contains("struct nf_hook_state")
        }
    }
}
