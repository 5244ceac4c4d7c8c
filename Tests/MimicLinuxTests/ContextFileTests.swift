import Foundation
import Testing
import MimicCore
import MimicLinux
import MimicMemory
import MimicTestSupport

/// Every example context (the files in `Fixtures/contexts/` and the JSON blocks of
/// `Docs/Contexts.md`) loads and runs.
@Suite struct ContextFileTests {
    /// A program that reads `xdp_md.data` / `data_end`, bounds-checks 14 bytes and returns
    /// XDP_PASS for IPv4, XDP_DROP otherwise.
    static let xdpProgram = """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 14
        mov %r0, 1
        jgt %r4, %r3, out
        ldxh %r5, [%r2+12]
        be16 %r5
        jne %r5, 0x800, out
        mov %r0, 2
        out:
        exit
        """

    @Test func xdpFileRunsAndPasses() throws {
        let context = try ContextFile.load(
            contentsOf: ContextTestSupport.contextsDirectory.appendingPathComponent("xdp.json"))
        let xdp = try #require(context as? XDPContext)
        #expect(xdp.headroom == 192 && xdp.tailroom == 32 && xdp.ingressIfindex == 4 && xdp.rxQueueIndex == 1)
        let (r0, process) = try ContextTestSupport.run(Self.xdpProgram, context: context)
        #expect(r0 == 2)
        let result = try #require(XDPContext.result(of: process))
        #expect(result.action == .pass)
        #expect(result.action?.name == "XDP_PASS")
        #expect(result.packet == ContextTestSupport.udpPacket)
        #expect(result.metadata.isEmpty)
    }

    @Test func xdpFieldsAreKernelLayout() throws {
        let context = XDPContext(
            packet: ContextTestSupport.udpPacket, ingressIfindex: 7, rxQueueIndex: 3, egressIfindex: 9)
        // data_meta == data; ingress_ifindex, rx_queue_index, egress_ifindex at 12, 16, 20.
        let (r0, _) = try ContextTestSupport.run(
            """
            ldxw %r2, [%r1+0]
            ldxw %r3, [%r1+8]
            jne %r2, %r3, bad
            ldxw %r0, [%r1+12]
            ldxw %r4, [%r1+16]
            lsh %r4, 8
            or %r0, %r4
            ldxw %r4, [%r1+20]
            lsh %r4, 16
            or %r0, %r4
            exit
            bad:
            mov %r0, -1
            exit
            """, context: context)
        #expect(r0 == 0x09_03_07)
    }

    @Test func xdpContextIsReadOnly() throws {
        let (vm, program) = try ContextTestSupport.load(
            """
            stw [%r1+0], 0
            mov %r0, 0
            exit
            """)
        #expect(throws: ExecutionError.self) {
            try vm.run(program, context: XDPContext(packet: ContextTestSupport.udpPacket))
        }
    }

    @Test func skbFileRunsWithDerivedFields() throws {
        let context = try ContextFile.load(
            contentsOf: ContextTestSupport.contextsDirectory.appendingPathComponent("skb.json"))
        // r0 = len | protocol << 16 (protocol is the EtherType in network order: 0x0008).
        let (r0, process) = try ContextTestSupport.run(
            """
            ldxw %r0, [%r1+0]
            ldxw %r2, [%r1+16]
            lsh %r2, 16
            or %r0, %r2
            exit
            """, context: context)
        #expect(r0 == UInt64(ContextTestSupport.udpPacket.count) | 0x0008 << 16)
        let result = try #require(SKBContext.result(of: process))
        #expect(result.fields.ifindex == 3)
        #expect(result.fields.family == 2)
        // remote = the socket's destination, network order; local port in host order.
        #expect(result.fields.remoteIP4 == UInt32(littleEndian: 0x0200_000A))
        #expect(result.fields.localIP4 == UInt32(littleEndian: 0x0100_000A))
        #expect(result.fields.remotePort == UInt32(UInt16(53).bigEndian) << 16, "bpf_ntohl(remote_port) == 53")
        #expect(result.fields.localPort == 1234)
        #expect(result.fields.sk != 0 && result.fields.flowKeys != 0)
        #expect(result.packet == ContextTestSupport.udpPacket)
        #expect(process.packet?.length == ContextTestSupport.udpPacket.count)
    }

    @Test func skbSocketAndFlowKeysAreReadable() throws {
        let context = try ContextFile.load(
            contentsOf: ContextTestSupport.contextsDirectory.appendingPathComponent("skb.json"))
        // bpf_sock.dst_port (offset 48, be16) and bpf_flow_keys.dport (offset 14, be16).
        let (r0, _) = try ContextTestSupport.run(
            """
            ldxdw %r2, [%r1+168]
            ldxh %r0, [%r2+48]
            be16 %r0
            ldxdw %r3, [%r1+144]
            ldxh %r4, [%r3+14]
            be16 %r4
            lsh %r4, 16
            or %r0, %r4
            exit
            """, context: context)
        #expect(r0 == 53 | 53 << 16)
    }

    @Test func skbWritableFieldsAreReadAfterTheRun() throws {
        let (_, process) = try ContextTestSupport.run(
            """
            stw [%r1+8], 0x1234
            stw [%r1+32], 7
            stw [%r1+48], 11
            stw [%r1+64], 15
            stw [%r1+44], 3
            mov %r0, 2
            exit
            """, context: SKBContext(packet: ContextTestSupport.udpPacket))
        let result = try #require(SKBContext.result(of: process))
        #expect(result.action == .shot)
        #expect(result.action?.name == "TC_ACT_SHOT")
        #expect(result.fields.mark == 0x1234)
        #expect(result.fields.priority == 7)
        #expect(result.fields.cb == [11, 0, 0, 0, 15])
        #expect(result.fields.tcIndex == 3)
    }

    @Test func skbLegacyPacketLoadsSeeThePacket() throws {
        let (r0, _) = try ContextTestSupport.run(
            """
            ldabsh 12
            exit
            """, context: SKBContext(packet: ContextTestSupport.udpPacket))
        #expect(r0 == 0x0800)
    }

    @Test func genericFileBuildsThirtyTwoBitPointers() throws {
        let context = try ContextFile.load(
            contentsOf: ContextTestSupport.contextsDirectory.appendingPathComponent("generic.json"))
        // xdp_md-shaped struct of six u32 values; data..data_end is the 30 bytes 0x10...0x2d of "frame".
        let (r0, _) = try ContextTestSupport.run(
            """
            ldxw %r2, [%r1+0]
            ldxw %r3, [%r1+4]
            mov %r0, %r3
            sub %r0, %r2
            ldxb %r4, [%r2+3]
            lsh %r4, 8
            or %r0, %r4
            ldxw %r4, [%r1+16]
            lsh %r4, 16
            or %r0, %r4
            exit
            """, context: context)
        #expect(r0 == 30 | 0x13 << 8 | 5 << 16)
    }

    @Test func capturedFileReplaysCommAndTracePrintk() throws {
        let context = try ContextFile.load(
            contentsOf: ContextTestSupport.contextsDirectory.appendingPathComponent("captured.json"))
        let source = """
            mov %r1, %r10
            add %r1, -16
            mov %r2, 16
            call 16
            mov %r6, %r0
            \(ContextTestSupport.storeBytes(Array("%s\n".utf8) + [0], at: 24))
            mov %r1, %r10
            add %r1, -24
            mov %r2, 4
            mov %r3, %r10
            add %r3, -16
            call 6
            lsh %r0, 8
            or %r0, %r6
            exit
            """
        let (r0, process) = try ContextTestSupport.run(source, context: context)
        #expect(r0 == 6 << 8)
        let comm = try process.memory.read(process.stackBase + UInt64(process.stackSize) - 16, count: 16)
        #expect(comm == Array("nginx".utf8) + [UInt8](repeating: 0, count: 11))
        let state = try #require(LinuxProcessState.of(process))
        // trace_printk still prints (its R0 is the recorded 6).
        #expect(state.traceOutput == ["nginx"])
        #expect(state.replay?.replayedCount(of: 16) == 1)
    }

    @Test func everyMarkdownExampleLoadsAndRuns() throws {
        // The envelope block is a schema (`"ctx": { ... }`), not an example.
        let examples = try ContextTestSupport.markdownExamples().filter { !$0.contains("{ ... }") }
        #expect(examples.count == 13)
        for example in examples {
            let loaded = try ContextFile.loadEnvelope(data: Array(example.utf8))
            let (_, process) = try ContextTestSupport.run("mov %r0, 0\nexit", context: loaded.context)
            #expect(process.state == .exited(0), "\(loaded.name)")
        }
    }

    @Test func markdownGenericExampleLaysOutPointersAndInts() throws {
        let examples = try ContextTestSupport.markdownExamples()
        let generic = try #require(
            examples.first(where: { $0.contains("\"type\": \"generic\"") && $0.contains("message and length") }))
        // r1 -> args { data: 8-byte pointer to "mimic" in "hello, mimic", size: 12 }; r2 = 12.
        let (r0, process) = try ContextTestSupport.run(
            """
            ldxdw %r3, [%r1+0]
            ldxb %r0, [%r3+0]
            ldxdw %r4, [%r1+8]
            lsh %r4, 8
            or %r0, %r4
            lsh %r2, 16
            or %r0, %r2
            exit
            """, context: try ContextFile.load(data: Array(generic.utf8)))
        #expect(r0 == UInt64(UInt8(ascii: "m")) | 12 << 8 | 12 << 16)
        // The emulator keys set the task the helpers report.
        let environment = try #require(LinuxProcessState.of(process)?.environment)
        #expect(environment.comm == "demo" && environment.pid == 42)
    }

    @Test func markdownCapturedExampleReplaysPidTgidAndComm() throws {
        let examples = try ContextTestSupport.markdownExamples()
        let captured = try #require(examples.first(where: { $0.contains("\"type\": \"captured\"") }))
        let (r0, _) = try ContextTestSupport.run(
            "call 14\nexit", context: try ContextFile.load(data: Array(captured.utf8)))
        #expect(r0 == 8000 << 32 | 8001)
        let (_, process) = try ContextTestSupport.run(
            """
            mov %r1, %r10
            add %r1, -16
            mov %r2, 16
            call 16
            exit
            """, context: try ContextFile.load(data: Array(captured.utf8)))
        let comm = try process.memory.read(process.stackBase + UInt64(process.stackSize) - 16, count: 16)
        #expect(comm == Array("sshd".utf8) + [UInt8](repeating: 0, count: 12))
    }

    @Test func markdownPacketExamplesDecode() throws {
        let examples = try ContextTestSupport.markdownExamples()
        let xdpText = try #require(examples.first(where: { $0.contains("\"type\": \"xdp_md\"") }))
        let xdp = try #require(try ContextFile.load(data: Array(xdpText.utf8)) as? XDPContext)
        #expect(xdp.packet.count == 54 && xdp.packet[23] == 6 && xdp.headroom == 256 && xdp.ingressIfindex == 2)
        let skbText = try #require(examples.first(where: { $0.contains("\"type\": \"sk_buff\"") }))
        let skb = try #require(try ContextFile.load(data: Array(skbText.utf8)) as? SKBContext)
        #expect(skb.packet.count == 47 && skb.ifindex == 2)
        #expect(skb.socket?.destinationPort == 53 && skb.socket?.sourceIPv4 == [10, 1, 0, 7])
        #expect(skb.flowKeys?.sport == 5353 && skb.flowKeys?.destinationAddress == [10, 1, 0, 53])
    }

    @Test func registeredTypesDecode() throws {
        struct Fixed: Context {
            var value: UInt64
            func attach(to process: MimicCore.Process) throws(SetupError) { process.registers[1] = value }
        }
        ContextFile.register(type: "test_fixed") { ctx, _ throws(ContextError) in
            Fixed(value: try ctx["value"].integer(UInt64.self))
        }
        #expect(ContextFile.registeredTypes.contains("test_fixed"))
        let context = try ContextFile.load(
            data: Array(#"{"name":"x","type":"test_fixed","ctx":{"value":18446744073709551615}}"#.utf8))
        let (r0, _) = try ContextTestSupport.run("mov %r0, %r1\nexit", context: context)
        #expect(r0 == .max)
    }
}
