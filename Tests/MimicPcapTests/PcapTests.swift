import Testing
import MimicPcap

/// Builds capture files byte by byte, in either byte order.
struct CaptureBuilder {
    var bigEndian = false
    var bytes: [UInt8] = []

    mutating func u16(_ value: UInt16) {
        let pair = [UInt8(truncatingIfNeeded: value), UInt8(truncatingIfNeeded: value >> 8)]
        bytes += bigEndian ? pair.reversed() : pair
    }

    mutating func u32(_ value: UInt32) {
        let quad = (0..<4).map { UInt8(truncatingIfNeeded: value >> UInt32($0 * 8)) }
        bytes += bigEndian ? quad.reversed() : quad
    }

    /// A classic pcap header.
    static func classic(bigEndian: Bool = false, nanosecond: Bool = false, linkType: UInt32 = 1) -> CaptureBuilder {
        var builder = CaptureBuilder(bigEndian: bigEndian)
        builder.u32(nanosecond ? 0xA1B2_3C4D : 0xA1B2_C3D4)
        builder.u16(2)
        builder.u16(4)
        builder.u32(0)
        builder.u32(0)
        builder.u32(65535)
        builder.u32(linkType)
        return builder
    }

    mutating func record(seconds: UInt32, fraction: UInt32, data: [UInt8], original: UInt32? = nil) {
        u32(seconds)
        u32(fraction)
        u32(UInt32(data.count))
        u32(original ?? UInt32(data.count))
        bytes += data
    }

    /// A pcapng block: type, length, body padded to 4 bytes, length again.
    mutating func block(_ type: UInt32, _ body: (inout CaptureBuilder) -> Void) {
        var inner = CaptureBuilder(bigEndian: bigEndian)
        body(&inner)
        while inner.bytes.count % 4 != 0 { inner.bytes.append(0) }
        let length = UInt32(inner.bytes.count + 12)
        u32(type)
        u32(length)
        bytes += inner.bytes
        u32(length)
    }

    static func pcapng(bigEndian: Bool = false) -> CaptureBuilder {
        var builder = CaptureBuilder(bigEndian: bigEndian)
        builder.block(0x0A0D_0D0A) { body in
            body.u32(0x1A2B_3C4D)
            body.u16(1)
            body.u16(0)
            body.u32(0xFFFF_FFFF)
            body.u32(0xFFFF_FFFF) // section length: unknown
        }
        return builder
    }

    mutating func interface(linkType: UInt16 = 1, snapLength: UInt32 = 0, tsresol: UInt8? = nil) {
        block(1) { body in
            body.u16(linkType)
            body.u16(0)
            body.u32(snapLength)
            if let tsresol {
                body.u16(9)
                body.u16(1)
                body.bytes += [tsresol, 0, 0, 0]
                body.u16(0)
                body.u16(0)
            }
        }
    }

    mutating func enhanced(interface: UInt32 = 0, timestamp: UInt64, data: [UInt8], original: UInt32? = nil) {
        block(6) { body in
            body.u32(interface)
            body.u32(UInt32(timestamp >> 32))
            body.u32(UInt32(truncatingIfNeeded: timestamp))
            body.u32(UInt32(data.count))
            body.u32(original ?? UInt32(data.count))
            body.bytes += data
        }
    }

    mutating func simple(data: [UInt8]) {
        block(3) { body in
            body.u32(UInt32(data.count))
            body.bytes += data
        }
    }
}

@Suite struct PcapTests {
    static let frameA: [UInt8] = Array(0..<60)
    static let frameB: [UInt8] = Array(repeating: 0xAB, count: 42) + [1, 2, 3]

    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func classicBothByteOrdersAndResolutions(bigEndian: Bool, nanosecond: Bool) throws {
        var file = CaptureBuilder.classic(bigEndian: bigEndian, nanosecond: nanosecond)
        file.record(seconds: 1_700_000_000, fraction: 123, data: Self.frameA)
        file.record(seconds: 1_700_000_001, fraction: 999, data: Self.frameB, original: 1500)
        var reader = try PcapReader(bytes: file.bytes)
        #expect(reader.format == .classic(bigEndian: bigEndian, nanosecond: nanosecond))
        #expect(reader.linkType == .ethernet)
        let first = try #require(try reader.next())
        #expect(first.data == Self.frameA)
        #expect(first.timestamp == 1_700_000_000 * 1_000_000_000 + (nanosecond ? 123 : 123_000))
        let second = try #require(try reader.next())
        #expect(second.data == Self.frameB)
        #expect(second.originalLength == 1500)
        #expect(try reader.next() == nil)
        #expect(reader.packetCount == 2)
    }

    /// `remainingRecords` (the capture index `mimic run --pcap` reads, a loop of its own for
    /// classic files) gives what `nextRecord` gives one record at a time, in both byte orders
    /// and resolutions, over more records than its batch of 256; a bad record at the end throws
    /// as `nextRecord` does.
    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func remainingRecordsMatchNextRecord(bigEndian: Bool, nanosecond: Bool) throws {
        var file = CaptureBuilder.classic(bigEndian: bigEndian, nanosecond: nanosecond)
        for index in 0..<600 {
            let data = [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: 14 + index % 90)
            file.record(
                seconds: 1_700_000_000 + UInt32(index), fraction: UInt32(index * 997 % 1_000_000),
                data: data, original: index % 3 == 0 ? UInt32(data.count + index) : nil)
        }
        func oneByOne(_ bytes: [UInt8]) throws -> [PcapRecord] {
            var reader = try PcapReader(bytes: bytes)
            var records: [PcapRecord] = []
            while let record = try reader.nextRecord() { records.append(record) }
            return records
        }
        var reader = try PcapReader(bytes: file.bytes)
        let all = try reader.remainingRecords()
        #expect(all.count == 600)
        #expect(all == (try oneByOne(file.bytes)))
        #expect(reader.packetCount == 600)
        #expect(try reader.nextRecord() == nil)

        let cut = Array(file.bytes.dropLast(3))
        var broken = try PcapReader(bytes: cut)
        var single = try PcapReader(bytes: cut)
        var expected: PcapError?
        do {
            while try single.nextRecord() != nil {}
        } catch {
            expected = error
        }
        do {
            _ = try broken.remainingRecords()
            Issue.record("a truncated last record must throw")
        } catch {
            #expect(expected.map { "\($0)" } == "\(error)")
        }
    }

    @Test(arguments: [false, true])
    func writerRoundTrip(nanosecond: Bool) throws {
        let packets = [
            PcapPacket(data: Self.frameA, timestamp: 1_700_000_000_123_456_000),
            PcapPacket(data: Self.frameB, timestamp: 5_000_000_789, originalLength: 2000),
            PcapPacket(data: []),
        ]
        let bytes = PcapWriter.file(packets, nanosecond: nanosecond)
        #expect(Array(bytes[0..<4]) == (nanosecond ? [0x4D, 0x3C, 0xB2, 0xA1] : [0xD4, 0xC3, 0xB2, 0xA1]))
        let read = try PcapReader.readAll(bytes)
        #expect(read.map(\.data) == packets.map(\.data))
        #expect(read.map(\.originalLength) == [60, 2000, 0])
        #expect(read[0].timestamp == 1_700_000_000_123_456_000)
        #expect(read[1].timestamp == (nanosecond ? 5_000_000_789 : 5_000_000_000))
    }

    /// `mimic run --pcap` reads the array of records once per packet (and again per packet for
    /// the flow hash of `--workers`): a record is 24 bytes, its two 4-byte lengths side by side.
    @Test func recordsHaveNoPadding() {
        #expect(MemoryLayout<PcapRecord>.stride == 24)
    }

    @Test func writerOriginalLengthNeverBelowCaptured() throws {
        let grown = PcapPacket(data: Self.frameA, timestamp: 0, originalLength: 10)
        let read = try PcapReader.readAll(PcapWriter.file([grown]))
        #expect(read[0].originalLength == 60)
    }

    @Test(arguments: [false, true])
    func pcapngEnhancedAndSimplePacketsSkippingOtherBlocks(bigEndian: Bool) throws {
        var file = CaptureBuilder.pcapng(bigEndian: bigEndian)
        file.block(4) {
            $0.u16(0)
            $0.u16(0)
        } // name resolution block: skipped
        file.interface(snapLength: 0, tsresol: 9)
        file.enhanced(timestamp: 1_700_000_000_000_000_042, data: Self.frameA)
        file.block(5) {
            $0.u32(0)
            $0.u32(0)
            $0.u32(0)
        } // interface statistics: skipped
        file.simple(data: Self.frameB)
        file.block(0xBAD) { $0.bytes += [1, 2, 3] } // unknown: skipped
        var reader = try PcapReader(bytes: file.bytes)
        #expect(reader.format == .pcapng)
        let first = try #require(try reader.next())
        #expect(first.data == Self.frameA)
        #expect(first.timestamp == 1_700_000_000_000_000_042)
        let second = try #require(try reader.next())
        #expect(second.data == Self.frameB)
        #expect(try reader.next() == nil)
    }

    @Test func pcapngDefaultMicrosecondAndBinaryResolutions() throws {
        var file = CaptureBuilder.pcapng()
        file.interface() // default: microseconds
        file.interface(tsresol: 0x80 | 10) // 2^-10 s
        file.enhanced(interface: 0, timestamp: 1_500_000, data: Self.frameA)
        file.enhanced(interface: 1, timestamp: 3 * 1024 + 512, data: Self.frameB)
        let packets = try PcapReader.readAll(file.bytes)
        #expect(packets[0].timestamp == 1_500_000_000)
        #expect(packets[1].timestamp == 3_500_000_000)
    }

    @Test func pcapngSimplePacketTruncatedToSnapLength() throws {
        var file = CaptureBuilder.pcapng()
        file.interface(snapLength: 20)
        file.simple(data: Self.frameA)
        let packets = try PcapReader.readAll(file.bytes)
        #expect(packets[0].data == Array(Self.frameA.prefix(20)))
        #expect(packets[0].originalLength == 60)
    }

    @Test func pcapngSecondSectionResetsInterfaces() throws {
        var file = CaptureBuilder.pcapng()
        file.interface()
        file.enhanced(timestamp: 0, data: Self.frameA)
        var second = CaptureBuilder.pcapng(bigEndian: true)
        second.interface()
        second.enhanced(timestamp: 0, data: Self.frameB)
        let packets = try PcapReader.readAll(file.bytes + second.bytes)
        #expect(packets.map(\.data) == [Self.frameA, Self.frameB])

        var noInterface = CaptureBuilder.pcapng()
        noInterface.enhanced(timestamp: 0, data: Self.frameB)
        let error = Self.error(file.bytes + noInterface.bytes)
        #expect(error?.packetNumber == 2)
        #expect(error?.message.contains("before any interface description") == true)
    }

    @Test func emptyCaptureHasNoPackets() throws {
        #expect(try PcapReader.readAll(CaptureBuilder.classic().bytes).isEmpty)
        #expect(try PcapReader.readAll(CaptureBuilder.pcapng().bytes).isEmpty)
    }

    // MARK: - Malformed files

    static func error(_ bytes: [UInt8]) -> PcapError? {
        do {
            _ = try PcapReader.readAll(bytes)
            return nil
        } catch {
            return error
        }
    }

    static var classicTwoPackets: [UInt8] {
        var file = CaptureBuilder.classic()
        file.record(seconds: 1, fraction: 0, data: frameA)
        file.record(seconds: 2, fraction: 0, data: frameB)
        return file.bytes
    }

    static var pcapngOnePacket: [UInt8] {
        var file = CaptureBuilder.pcapng()
        file.interface()
        file.enhanced(timestamp: 0, data: frameA)
        return file.bytes
    }

    /// A corpus of broken files: (name, bytes, expected packet number, expected offset, text in the message).
    static var corpus: [(String, [UInt8], Int?, Int, String)] {
        var cases: [(String, [UInt8], Int?, Int, String)] = []
        cases.append(("empty", [], nil, 0, "empty"))
        cases.append(("three bytes", [0xD4, 0xC3, 0xB2], nil, 0, "too short"))
        cases.append(("text file", Array("hello, world\n".utf8), nil, 0, "unknown magic number 0x6c6c6568"))
        cases.append(
            ("truncated header", Array(classicTwoPackets.prefix(20)), nil, 0, "truncated pcap file header: 20 of 24"))
        var version = CaptureBuilder.classic()
        version.bytes[4] = 9
        cases.append(("bad version", version.bytes, nil, 4, "unsupported pcap version 9.4"))
        cases.append(
            (
                "raw IP link type", CaptureBuilder.classic(linkType: 101).bytes, nil, 20,
                "link type 101 (raw IP) is not supported"
            ))
        cases.append(
            (
                "truncated record header", Array(classicTwoPackets.prefix(24 + 16 + 60 + 10)), 2, 100,
                "truncated packet record header: 10 of 16"
            ))
        cases.append(
            (
                "truncated packet data", Array(classicTwoPackets.dropLast(5)), 2, 100,
                "the record says 45 bytes but only 40 remain"
            ))
        var absurd = CaptureBuilder.classic()
        absurd.record(seconds: 0, fraction: 0, data: frameA)
        absurd.u32(0)
        absurd.u32(0)
        absurd.u32(0xFFFF_FFFF)
        absurd.u32(0xFFFF_FFFF)
        cases.append(
            (
                "absurd captured length", absurd.bytes, 2, 100,
                "captured length 4294967295 is larger than the 262144-byte maximum"
            ))
        var micro = CaptureBuilder.classic()
        micro.record(seconds: 0, fraction: 1_000_000, data: frameA)
        cases.append(("microseconds out of range", micro.bytes, 1, 28, "microseconds 1000000"))

        // pcapng
        cases.append(
            (
                "truncated section header", Array(pcapngOnePacket.prefix(20)), nil, 0,
                "truncated pcapng section header block: 20 of at least 28"
            ))
        var badOrder = pcapngOnePacket
        badOrder[8] = 0x77
        cases.append(("bad byte-order magic", badOrder, nil, 8, "bad pcapng byte-order magic"))
        var badVersion = pcapngOnePacket
        badVersion[12] = 2
        cases.append(("bad pcapng version", badVersion, nil, 12, "unsupported pcapng version 2.0"))
        var odd = pcapngOnePacket
        odd[4] = 29
        cases.append(("block length not a multiple of 4", odd, nil, 0, "not a multiple of 4"))
        var huge = pcapngOnePacket
        huge[4] = 0xFC
        huge[5] = 0xFF
        huge[6] = 0xFF
        huge[7] = 0x7F
        cases.append(("block length past the end", huge, nil, 0, "only 140 remain"))
        var trailer = pcapngOnePacket
        trailer[27] = 0x55
        cases.append(("trailing length mismatch", trailer, nil, 0, "does not match the length"))
        var tiny = pcapngOnePacket
        tiny[32] = 8
        tiny[36] = 8 // the IDB says 8 bytes long
        cases.append(("block shorter than its minimum", tiny, nil, 28, "smaller than the 20 bytes"))
        cases.append(("truncated packet block", Array(pcapngOnePacket.dropLast(8)), 1, 48, "truncated pcapng block"))
        var overlong = pcapngOnePacket
        overlong[48 + 20] = 200 // captured length 200 in a 92-byte block
        cases.append(
            (
                "captured length past its block", overlong, 1, 48,
                "captured length 200 does not fit in its 92-byte enhanced packet block"
            ))
        var wrongInterface = pcapngOnePacket
        wrongInterface[48 + 8] = 3
        cases.append(("unknown interface", wrongInterface, 1, 48, "interface 3, but the section describes only 1"))
        var beforeIDB = CaptureBuilder.pcapng()
        beforeIDB.enhanced(timestamp: 0, data: frameA)
        cases.append(("packet before any interface", beforeIDB.bytes, 1, 28, "before any interface description block"))
        var linux = CaptureBuilder.pcapng()
        linux.interface(linkType: 113)
        cases.append(
            ("cooked capture interface", linux.bytes, nil, 28, "link type 113 (Linux cooked capture); only Ethernet"))
        var option = CaptureBuilder.pcapng()
        option.block(1) {
            $0.u16(1)
            $0.u16(0)
            $0.u32(0)
            $0.u16(9)
            $0.u16(200)
            $0.u32(0)
        }
        cases.append(("option past its block", option.bytes, nil, 44, "option 9 of length 200 runs past the end"))
        cases.append(
            (
                "dangling bytes after a block", pcapngOnePacket + [6, 0, 0, 0, 1], nil, 140,
                "truncated pcapng block header"
            ))
        return cases
    }

    @Test func malformedCorpus() {
        for (name, bytes, packet, offset, text) in Self.corpus {
            guard let error = Self.error(bytes) else {
                Issue.record("\(name): no error")
                continue
            }
            #expect(error.packetNumber == packet, "\(name): \(error)")
            #expect(error.offset == offset, "\(name): \(error)")
            #expect(error.message.contains(text), "\(name): \(error)")
        }
    }

    @Test func descriptionNamesPacketAndOffset() {
        let error = PcapError(packetNumber: 3, offset: 1234, "captured length 9 is wrong")
        #expect(error.description == "packet 3 (byte offset 1234): captured length 9 is wrong")
        #expect(PcapError(offset: 0, "x").description == "byte offset 0: x")
    }

    /// Every truncation and many single-byte corruptions of valid files either read or fail
    /// with an error; none traps.
    @Test func truncationsAndCorruptionsNeverCrash() {
        var big = CaptureBuilder.pcapng(bigEndian: true)
        big.interface(tsresol: 0x85)
        big.enhanced(timestamp: 77, data: Self.frameB)
        big.simple(data: Self.frameA)
        var nano = CaptureBuilder.classic(bigEndian: true, nanosecond: true)
        nano.record(seconds: 1, fraction: 2, data: Self.frameB)
        for file in [Self.classicTwoPackets, Self.pcapngOnePacket, big.bytes, nano.bytes] {
            for length in 0...file.count { _ = Self.error(Array(file.prefix(length))) }
            var generator = SystemRandomNumberGenerator()
            for _ in 0..<2000 {
                var corrupted = file
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    corrupted[Int.random(in: 0..<file.count, using: &generator)] = UInt8.random(
                        in: 0...255, using: &generator)
                }
                _ = Self.error(corrupted)
            }
        }
    }
}
