import Testing
import MimicCore
import MimicMemory
import MimicTestSupport
@testable import MimicLinux

/// Checksum and packet helpers against the kernel's documented behaviour.
@Suite struct HelperPacketTests {
    // MARK: Reference checksums (RFC 1071, computed independently of the helpers)

    static func onesComplementSum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        return UInt16(sum)
    }

    static func ipChecksum(_ header: [UInt8]) -> UInt16 { ~onesComplementSum(header) }

    static func udpChecksum(_ packet: [UInt8]) -> UInt16 {
        let ip = Array(packet[14..<34])
        let udp = Array(packet[34...])
        var zeroed = udp
        zeroed[6] = 0
        zeroed[7] = 0
        let pseudo = Array(ip[12..<20]) + [0, 17, UInt8(udp.count >> 8), UInt8(udp.count & 0xFF)]
        return ~onesComplementSum(pseudo + zeroed)
    }

    /// Ethernet + IPv4 (10.0.0.1 -> 10.0.0.2) + UDP 1234 -> 53 with "abcd", both checksums valid.
    static var checksummedPacket: [UInt8] {
        var p = ContextTestSupport.udpPacket
        p[22] = 64 // TTL
        let ip = ipChecksum(Array(p[14..<34]))
        p[24] = UInt8(ip >> 8)
        p[25] = UInt8(ip & 0xFF)
        let udp = udpChecksum(p)
        p[40] = UInt8(udp >> 8)
        p[41] = UInt8(udp & 0xFF)
        return p
    }

    @Test func referencePacketIsValid() {
        let p = Self.checksummedPacket
        #expect(Self.onesComplementSum(Array(p[14..<34])) == 0xFFFF)
        #expect(Self.udpChecksum(p) == UInt16(p[40]) << 8 | UInt16(p[41]))
    }

    // MARK: csum_diff and the checksum arithmetic

    @Test func csumDiffOfAnIPv4HeaderGivesItsChecksum() {
        // The classic example header: checksum 0xb861.
        let header: [UInt8] = [
            0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0, 0xc7,
        ]
        let words = stride(from: 0, to: 20, by: 4).map { get32(header, $0) }
        let folded = Checksum.fold(Checksum.partial(words: words, seed: 0))
        #expect([UInt8(folded & 0xFF), UInt8(folded >> 8)] == [0xb8, 0x61])
    }

    @Test func csumDiffHelper() throws {
        // to = de ad be ef de ad be ef: 0xdeadbeef + 0xdeadbeef = 0x1bd5b7dde, end-around carry 0xbd5b7ddf.
        let (r0, _) = try ContextTestSupport.run(
            """
            \(ContextTestSupport.storeBytes([0xef, 0xbe, 0xad, 0xde, 0xef, 0xbe, 0xad, 0xde], at: 8))
            mov %r1, 0
            mov %r2, 0
            mov %r3, %r10
            add %r3, -8
            mov %r4, 8
            mov %r5, 0
            call 28
            exit
            """)
        #expect(r0 == 0xBD5B_7DDF)
        // from and to cancel out: ~x + x = 0xffffffff (ones' complement zero).
        let (same, _) = try ContextTestSupport.run(
            """
            stw [%r10-4], 0x12345678
            mov %r1, %r10
            add %r1, -4
            mov %r2, 4
            mov %r3, %r10
            add %r3, -4
            mov %r4, 4
            mov %r5, 0
            call 28
            exit
            """)
        #expect(same == 0xFFFF_FFFF)
    }

    @Test(arguments: [(3, 4), (4, 2), (256, 260)])
    func csumDiffRefusesBadSizes(from: Int, to: Int) throws {
        let (r0, _) = try ContextTestSupport.run(
            """
            mov %r1, %r10
            add %r1, -300
            mov %r2, \(from)
            mov %r3, %r10
            add %r3, -300
            mov %r4, \(to)
            mov %r5, 0
            call 28
            exit
            """)
        #expect(r0 == Errno.invalid.helperReturnValue)
    }

    @Test func replaceFormulasAgreeWithRecomputation() {
        // Change the IPv4 destination of the reference header and compare with a full recomputation.
        var header = Array(Self.checksummedPacket[14..<34])
        let old = get32(header, 16)
        let oldSum = UInt16(header[10]) | UInt16(header[11]) << 8
        header[16...19] = [192, 168, 1, 77]
        let new = get32(header, 16)
        header[10] = 0
        header[11] = 0
        let expected = Self.ipChecksum(header)
        let via4 = Checksum.replace4(oldSum, old: old, new: new)
        #expect(via4.byteSwapped == expected)
        let viaProto = Checksum.protoReplace4(oldSum, old: old, new: new)
        #expect(viaProto.byteSwapped == expected)
        let diff = Checksum.partial(words: [~old, new], seed: 0)
        #expect(Checksum.replaceByDiff(oldSum, diff: diff).byteSwapped == expected)
        let lowOld = UInt16(truncatingIfNeeded: old >> 16)
        let lowNew = UInt16(truncatingIfNeeded: new >> 16)
        let twice = Checksum.replace2(
            Checksum.replace2(oldSum, old: UInt16(truncatingIfNeeded: old), new: UInt16(truncatingIfNeeded: new)),
            old: lowOld, new: lowNew)
        #expect(twice.byteSwapped == expected)
    }

    /// The tc NAT rewrite: skb_load_bytes the old destination, skb_store_bytes the new one, fix the
    /// IP checksum with l3_csum_replace and the UDP checksum with l4_csum_replace (pseudo-header).
    static let natProgram = """
        mov %r6, %r1
        mov %r1, %r6
        mov %r2, 30
        mov %r3, %r10
        add %r3, -4
        mov %r4, 4
        call 26
        jne %r0, 0, fail
        stb [%r10-8], 10
        stb [%r10-7], 0
        stb [%r10-6], 0
        stb [%r10-5], 9
        mov %r1, %r6
        mov %r2, 30
        mov %r3, %r10
        add %r3, -8
        mov %r4, 4
        mov %r5, 0
        call 9
        jne %r0, 0, fail
        mov %r1, %r6
        mov %r2, 24
        ldxw %r3, [%r10-4]
        ldxw %r4, [%r10-8]
        mov %r5, 4
        call 10
        jne %r0, 0, fail
        mov %r1, %r6
        mov %r2, 40
        ldxw %r3, [%r10-4]
        ldxw %r4, [%r10-8]
        mov %r5, 0x14
        call 11
        jne %r0, 0, fail
        mov %r0, 0
        exit
        fail:
        mov %r0, 2
        exit
        """

    @Test func tcProgramRewritesTheDestinationAndChecksums() throws {
        let (r0, process) = try ContextTestSupport.run(
            Self.natProgram, context: SKBContext(packet: Self.checksummedPacket))
        #expect(r0 == 0)
        let result = try #require(SKBContext.result(of: process))
        #expect(result.action == .ok)
        let packet = result.packet
        #expect(Array(packet[30..<34]) == [10, 0, 0, 9])
        #expect(Self.onesComplementSum(Array(packet[14..<34])) == 0xFFFF)
        #expect(UInt16(packet[40]) << 8 | UInt16(packet[41]) == Self.udpChecksum(packet))
    }

    @Test func l4ReplaceLeavesAZeroUDPChecksumWithMangled0() throws {
        var packet = Self.checksummedPacket
        packet[40] = 0
        packet[41] = 0
        let source = Self.natProgram.replacingOccurrences(of: "mov %r5, 0x14", with: "mov %r5, 0x34")
        let (_, process) = try ContextTestSupport.run(source, context: SKBContext(packet: packet))
        let result = try #require(SKBContext.result(of: process))
        #expect(Array(result.packet[40..<42]) == [0, 0])
        // With BPF_F_MARK_ENFORCE the zero is updated.
        let enforced = Self.natProgram.replacingOccurrences(of: "mov %r5, 0x14", with: "mov %r5, 0x74")
        let (_, second) = try ContextTestSupport.run(enforced, context: SKBContext(packet: packet))
        #expect(try #require(SKBContext.result(of: second)).packet[40..<42] != [0, 0])
    }

    @Test func l4ReplaceWritesMangled0ForAZeroResult() throws {
        // Find a 16-bit replacement whose result is 0: it must be written as 0xffff.
        let sum: UInt16 = 0x1234
        let old: UInt16 = 0
        guard
            let new = (UInt16(1)...UInt16.max).first(where: {
                Checksum.protoReplace4(sum, old: UInt32(old), new: UInt32($0)) == 0
            })
        else {
            Issue.record("no zero result")
            return
        }
        var packet = Self.checksummedPacket
        packet[40] = UInt8(sum & 0xFF)
        packet[41] = UInt8(sum >> 8)
        let (r0, process) = try ContextTestSupport.run(
            """
            mov %r2, 40
            mov %r3, \(old)
            mov %r4, \(new)
            mov %r5, 0x22
            call 11
            exit
            """, context: SKBContext(packet: packet))
        #expect(r0 == 0)
        #expect(try #require(SKBContext.result(of: process)).packet[40..<42] == [0xFF, 0xFF])
    }

    @Test(
        arguments: [
            (10, "mov %r2, 25\nmov %r5, 2", Errno.fault), // odd offset
            (10, "mov %r2, 70000\nmov %r5, 2", Errno.fault), // offset > 0xffff
            (10, "mov %r2, 46\nmov %r5, 2", Errno.fault), // past the packet
            (10, "mov %r2, 24\nmov %r5, 3", Errno.invalid), // bad size
            (10, "mov %r2, 24\nmov %r5, 0x12", Errno.invalid), // l3 takes no flags
            (10, "mov %r2, 24\nmov %r3, 1\nmov %r5, 0", Errno.invalid), // diff mode needs from = 0
            (11, "mov %r2, 40\nmov %r5, 0x104", Errno.invalid), // unknown l4 flag
        ] as [(Int, String, Errno)])
    func checksumReplaceErrors(helper: Int, setup: String, expected: Errno) throws {
        let (r0, _) = try ContextTestSupport.run(
            "mov %r3, 0\nmov %r4, 0\n\(setup)\ncall \(helper)\nexit",
            context: SKBContext(packet: Self.checksummedPacket))
        #expect(r0 == expected.helperReturnValue)
    }

    // MARK: skb_load_bytes / skb_store_bytes

    @Test func loadBytesOutOfRangeZeroesAndFails() throws {
        let (r0, process) = try ContextTestSupport.run(
            """
            stdw [%r10-8], -1
            mov %r2, 40
            mov %r3, %r10
            add %r3, -8
            mov %r4, 8
            call 26
            exit
            """, context: SKBContext(packet: ContextTestSupport.udpPacket))
        #expect(r0 == Errno.fault.helperReturnValue)
        #expect(try process.memory.load(process.stackBase + UInt64(process.stackSize) - 8, size: 8) == 0)
    }

    @Test(
        arguments: [("mov %r2, 0\nmov %r5, 4", Errno.invalid), ("mov %r2, 44\nmov %r5, 0", Errno.fault)]
            as [(String, Errno)])
    func storeBytesErrors(setup: String, expected: Errno) throws {
        let (r0, _) = try ContextTestSupport.run(
            """
            mov %r3, %r10
            add %r3, -8
            mov %r4, 4
            \(setup)
            call 9
            exit
            """, context: SKBContext(packet: ContextTestSupport.udpPacket))
        #expect(r0 == expected.helperReturnValue)
    }

    @Test func storeBytesCanInvalidateTheHash() throws {
        var context = SKBContext(packet: ContextTestSupport.udpPacket)
        context.hash = 0xABCD
        let (_, process) = try ContextTestSupport.run(
            """
            stw [%r10-4], 0
            mov %r2, 0
            mov %r3, %r10
            add %r3, -4
            mov %r4, 4
            mov %r5, 2
            call 9
            exit
            """, context: context)
        let result = try #require(SKBContext.result(of: process))
        #expect(result.fields.hash == 0)
        #expect(Array(result.packet[0..<4]) == [0, 0, 0, 0])
    }

    @Test func skbHelpersNeedAnSKBContext() throws {
        let (vm, program) = try ContextTestSupport.load(
            "mov %r2, 0\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 4\ncall 26\nexit")
        let error = try #require(throws: ExecutionError.self) {
            try vm.run(program, context: XDPContext(packet: ContextTestSupport.udpPacket))
        }
        #expect("\(error)".contains("bpf_skb_load_bytes"))
        #expect("\(error)".contains("sk_buff"))
    }

    // MARK: change_tail / change_head / adjust_room

    /// r0 = data_end - data (read from __sk_buff after the helper) << 16 | helper result (low 16 bits).
    static func skbLengthAfter(_ call: String) -> String {
        """
        mov %r6, %r1
        \(call)
        and %r0, 0xffff
        ldxw %r2, [%r6+76]
        ldxw %r3, [%r6+80]
        sub %r3, %r2
        lsh %r3, 16
        or %r0, %r3
        exit
        """
    }

    @Test func changeTailGrowsWithZerosAndTrims() throws {
        let packet = ContextTestSupport.udpPacket
        let (grown, process) = try ContextTestSupport.run(
            Self.skbLengthAfter("mov %r2, 60\nmov %r3, 0\ncall 38"),
            context: SKBContext(packet: packet))
        #expect(grown == 60 << 16)
        let result = try #require(SKBContext.result(of: process))
        #expect(result.packet == packet + [UInt8](repeating: 0, count: 60 - packet.count))
        #expect(result.fields.len == 60)
        let (trimmed, _) = try ContextTestSupport.run(
            Self.skbLengthAfter("mov %r2, 20\nmov %r3, 0\ncall 38"),
            context: SKBContext(packet: packet))
        #expect(trimmed == 20 << 16)
        for bad in ["mov %r2, 13\nmov %r3, 0", "mov %r2, 60\nmov %r3, 1", "mov %r2, 20000\nmov %r3, 0"] {
            let (r0, _) = try ContextTestSupport.run(
                Self.skbLengthAfter("\(bad)\ncall 38"), context: SKBContext(packet: packet))
            #expect(r0 == UInt64(packet.count) << 16 | 0xFFEA) // -EINVAL, length unchanged
        }
    }

    @Test func growingRemapsSoOldPacketPointersFault() throws {
        let (vm, program) = try ContextTestSupport.load(
            """
            mov %r6, %r1
            ldxw %r7, [%r6+76]
            mov %r2, 2000
            mov %r3, 0
            call 38
            ldxb %r0, [%r7+0]
            exit
            """)
        #expect(throws: ExecutionError.self) {
            try vm.run(program, context: SKBContext(packet: ContextTestSupport.udpPacket))
        }
    }

    @Test func changeHeadPushesZeros() throws {
        let packet = ContextTestSupport.udpPacket
        let (r0, process) = try ContextTestSupport.run(
            Self.skbLengthAfter("mov %r2, 100\nmov %r3, 0\ncall 43"),
            context: SKBContext(packet: packet))
        #expect(r0 == UInt64(packet.count + 100) << 16)
        #expect(try #require(SKBContext.result(of: process)).packet == [UInt8](repeating: 0, count: 100) + packet)
        let (bad, _) = try ContextTestSupport.run(
            Self.skbLengthAfter("mov %r2, 4\nmov %r3, 1\ncall 43"), context: SKBContext(packet: packet))
        #expect(bad & 0xFFFF == 0xFFEA)
    }

    @Test func adjustRoomGrowsAndShrinksAtTheNetworkHeader() throws {
        let packet = ContextTestSupport.udpPacket
        // BPF_ADJ_ROOM_NET (0): room after the 20-byte IPv4 header (offset 34).
        let (r0, process) = try ContextTestSupport.run(
            Self.skbLengthAfter("mov %r2, 8\nmov %r3, 0\nmov %r4, 0\ncall 50"),
            context: SKBContext(packet: packet))
        #expect(r0 == UInt64(packet.count + 8) << 16)
        #expect(
            try #require(SKBContext.result(of: process)).packet == Array(packet[..<34])
                + [UInt8](repeating: 0, count: 8) + Array(packet[34...]))
        // BPF_ADJ_ROOM_MAC (1), shrinking by 4: bytes 14..<18 go.
        let (_, shrunk) = try ContextTestSupport.run(
            Self.skbLengthAfter("mov %r2, -4\nmov %r3, 1\nmov %r4, 0\ncall 50"),
            context: SKBContext(packet: packet))
        #expect(try #require(SKBContext.result(of: shrunk)).packet == Array(packet[..<14]) + Array(packet[18...]))
    }

    @Test(
        arguments: [
            ("mov %r2, 4096\nmov %r3, 0\nmov %r4, 0", -14), // |len_diff| > 0xfff
            ("mov %r2, 4\nmov %r3, 2\nmov %r4, 0", -524), // unknown mode
            ("mov %r2, 4\nmov %r3, 0\nmov %r4, 0x80", -22), // unknown flag
            ("mov %r2, -24\nmov %r3, 0\nmov %r4, 0", -524), // would leave less than an IPv4 header
            ("mov %r2, -4\nmov %r3, 0\nmov %r4, 2", -22), // encap flags when shrinking
        ] as [(String, Int64)])
    func adjustRoomErrors(setup: String, expected: Int64) throws {
        let (r0, _) = try ContextTestSupport.run(
            "\(setup)\ncall 50\nexit", context: SKBContext(packet: ContextTestSupport.udpPacket))
        #expect(Int64(bitPattern: r0) == expected)
    }

    @Test func adjustRoomNeedsIP() throws {
        var packet = ContextTestSupport.udpPacket
        packet[12] = 0x86
        packet[13] = 0x35
        let (r0, _) = try ContextTestSupport.run(
            "mov %r2, 4\nmov %r3, 0\nmov %r4, 0\ncall 50\nexit", context: SKBContext(packet: packet))
        #expect(Int64(bitPattern: r0) == -524)
    }

    // MARK: VLAN

    @Test func vlanPushSetsTheTagThenMovesItIntoThePacket() throws {
        let packet = ContextTestSupport.udpPacket
        let (_, process) = try ContextTestSupport.run(
            """
            mov %r6, %r1
            mov %r2, 0x0081
            mov %r3, 100
            call 18
            ldxw %r7, [%r6+20]
            mov %r1, %r6
            mov %r2, 0xa888
            mov %r3, 200
            call 18
            mov %r0, %r7
            exit
            """, context: SKBContext(packet: packet))
        let result = try #require(SKBContext.result(of: process))
        #expect(process.registers[0] == 1) // vlan_present after the first push
        #expect(result.vlanTag == VLANTag(proto: 0x88A8, tci: 200))
        #expect(
            result.fields.vlanPresent == 1 && result.fields.vlanTCI == 200
                && result.fields.vlanProto == UInt32(UInt16(0x88A8).bigEndian))
        // The first tag is now inline after the MAC addresses; protocol is 802.1Q.
        #expect(result.packet == Array(packet[..<12]) + [0x81, 0x00, 0, 100] + Array(packet[12...]))
        #expect(result.fields.protocol == UInt32(UInt16(0x8100).bigEndian))
        #expect(
            result.framedPacket == Array(packet[..<12]) + [0x88, 0xA8, 0, 200, 0x81, 0x00, 0, 100]
                + Array(packet[12...]))
    }

    @Test func vlanPopRemovesAnInlineTag() throws {
        let packet = ContextTestSupport.udpPacket
        let tagged = Array(packet[..<12]) + [0x81, 0x00, 0x00, 0x2A] + Array(packet[12...])
        let (r0, process) = try ContextTestSupport.run("call 19\nexit", context: SKBContext(packet: tagged))
        #expect(r0 == 0)
        let result = try #require(SKBContext.result(of: process))
        #expect(result.packet == packet)
        #expect(result.fields.protocol == UInt32(UInt16(0x0800).bigEndian))
        #expect(result.vlanTag == nil)
        // Nothing to pop: 0 and no change.
        let (none, untouched) = try ContextTestSupport.run("call 19\nexit", context: SKBContext(packet: packet))
        #expect(none == 0)
        #expect(try #require(SKBContext.result(of: untouched)).packet == packet)
    }

    // MARK: XDP adjust helpers

    /// r0 = (data_end - data) << 32 | (data - data_meta) << 16 | helper result (low 16 bits).
    static func xdpLayoutAfter(_ call: String) -> String {
        """
        mov %r6, %r1
        \(call)
        and %r0, 0xffff
        ldxw %r2, [%r6+0]
        ldxw %r3, [%r6+4]
        ldxw %r4, [%r6+8]
        sub %r3, %r2
        lsh %r3, 32
        or %r0, %r3
        sub %r2, %r4
        lsh %r2, 16
        or %r0, %r2
        exit
        """
    }

    static let xdpPacket = ContextTestSupport.udpPacket // 46 bytes
    static let n = UInt64(xdpPacket.count)

    @Test func adjustHeadPushesAndPops() throws {
        let (pushed, process) = try ContextTestSupport.run(
            Self.xdpLayoutAfter("mov %r2, -14\ncall 44"),
            context: XDPContext(packet: Self.xdpPacket))
        #expect(pushed == (Self.n + 14) << 32)
        #expect(try #require(XDPContext.result(of: process)).packet.count == Self.xdpPacket.count + 14)
        let (popped, _) = try ContextTestSupport.run(
            Self.xdpLayoutAfter("mov %r2, 14\ncall 44"), context: XDPContext(packet: Self.xdpPacket))
        #expect(popped == (Self.n - 14) << 32)
    }

    @Test(
        arguments: [
            ("mov %r2, -217", 256), // the first 40 bytes belong to struct xdp_frame: 216 can be pushed
            ("mov %r2, 33", 256), // fewer than ETH_HLEN bytes would remain
        ] as [(String, Int)])
    func adjustHeadLimits(setup: String, headroom: Int) throws {
        let (r0, _) = try ContextTestSupport.run(
            Self.xdpLayoutAfter("\(setup)\ncall 44"),
            context: XDPContext(packet: Self.xdpPacket, headroom: headroom))
        #expect(r0 == Self.n << 32 | 0xFFEA)
        let (edge, _) = try ContextTestSupport.run(
            Self.xdpLayoutAfter("mov %r2, -216\ncall 44"),
            context: XDPContext(packet: Self.xdpPacket, headroom: headroom))
        #expect(edge == (Self.n + 216) << 32)
    }

    @Test func adjustTailGrowsIntoTailroomAndShrinks() throws {
        let (grown, process) = try ContextTestSupport.run(
            Self.xdpLayoutAfter("mov %r2, 20\ncall 65"),
            context: XDPContext(packet: Self.xdpPacket, tailroom: 20))
        #expect(grown == (Self.n + 20) << 32)
        #expect(
            try #require(XDPContext.result(of: process)).packet == Self.xdpPacket + [UInt8](repeating: 0, count: 20))
        let (tooFar, _) = try ContextTestSupport.run(
            Self.xdpLayoutAfter("mov %r2, 21\ncall 65"),
            context: XDPContext(packet: Self.xdpPacket, tailroom: 20))
        #expect(tooFar == Self.n << 32 | 0xFFEA)
        let (shrunk, _) = try ContextTestSupport.run(
            Self.xdpLayoutAfter("mov %r2, -32\ncall 65"), context: XDPContext(packet: Self.xdpPacket))
        #expect(shrunk == 14 << 32)
        let (tooShort, _) = try ContextTestSupport.run(
            Self.xdpLayoutAfter("mov %r2, -33\ncall 65"), context: XDPContext(packet: Self.xdpPacket))
        #expect(tooShort == Self.n << 32 | 0xFFEA)
    }

    @Test func adjustMetaReservesMetadataThatMovesWithHead() throws {
        let (r0, process) = try ContextTestSupport.run(
            """
            mov %r6, %r1
            mov %r2, -8
            call 54
            jne %r0, 0, out
            ldxw %r2, [%r6+8]
            stw [%r2+0], 0x11223344
            stw [%r2+4], 0x55667788
            mov %r1, %r6
            mov %r2, -14
            call 44
            out:
            exit
            """, context: XDPContext(packet: Self.xdpPacket))
        #expect(r0 == 0)
        let result = try #require(XDPContext.result(of: process))
        #expect(result.metadata == [0x44, 0x33, 0x22, 0x11, 0x88, 0x77, 0x66, 0x55])
        #expect(result.packet.count == Self.xdpPacket.count + 14)
    }

    @Test(arguments: [("mov %r2, -6", -13), ("mov %r2, -256", -13), ("mov %r2, 4", -22)] as [(String, Int64)])
    func adjustMetaErrors(setup: String, expected: Int64) throws {
        let (r0, _) = try ContextTestSupport.run(
            "\(setup)\ncall 54\nexit", context: XDPContext(packet: Self.xdpPacket, headroom: 512))
        #expect(Int64(bitPattern: r0) == expected)
        let (reserved, _) = try ContextTestSupport.run(
            "mov %r2, -44\ncall 54\nexit", context: XDPContext(packet: Self.xdpPacket, headroom: 80))
        #expect(Int64(bitPattern: reserved) == -22) // into struct xdp_frame's 40 bytes
    }

    // MARK: Redirects

    @Test func redirectInXDPAndTC() throws {
        let (xdp, xdpProcess) = try ContextTestSupport.run(
            "mov %r1, 5\nmov %r2, 0\ncall 23\nexit", context: XDPContext(packet: Self.xdpPacket))
        #expect(xdp == 4)
        let xdpResult = try #require(XDPContext.result(of: xdpProcess))
        #expect(xdpResult.action == .redirect)
        #expect(xdpResult.redirect == .interface(ifindex: 5, flags: 0))
        #expect(xdpResult.redirect?.ifindex == 5)
        let (xdpFlags, _) = try ContextTestSupport.run(
            "mov %r1, 5\nmov %r2, 1\ncall 23\nexit", context: XDPContext(packet: Self.xdpPacket))
        #expect(xdpFlags == 0) // XDP_ABORTED: XDP takes no flags

        let (tc, tcProcess) = try ContextTestSupport.run(
            "mov %r1, 3\nmov %r2, 1\ncall 23\nexit", context: SKBContext(packet: Self.xdpPacket))
        #expect(tc == 7)
        let tcResult = try #require(SKBContext.result(of: tcProcess))
        #expect(tcResult.action == .redirect)
        #expect(tcResult.redirect?.isIngress == true)
        #expect(tcResult.clones.isEmpty)
        let (tcFlags, _) = try ContextTestSupport.run(
            "mov %r1, 3\nmov %r2, 2\ncall 23\nexit", context: SKBContext(packet: Self.xdpPacket))
        #expect(tcFlags == 2) // TC_ACT_SHOT
    }

    @Test func cloneRedirectRecordsACopy() throws {
        let (r0, process) = try ContextTestSupport.run(
            "mov %r2, 9\nmov %r3, 0\ncall 13\nexit", context: SKBContext(packet: Self.xdpPacket))
        #expect(r0 == 0)
        let result = try #require(SKBContext.result(of: process))
        #expect(result.clones == [ClonedPacket(ifindex: 9, flags: 0, packet: Self.xdpPacket)])
        #expect(result.redirect == nil, "a clone is not the packet's redirect")
        let (bad, _) = try ContextTestSupport.run(
            "mov %r2, 9\nmov %r3, 4\ncall 13\nexit", context: SKBContext(packet: Self.xdpPacket))
        #expect(bad == Errno.invalid.helperReturnValue)
    }
}
