import Testing
@testable import mimic_cli

@Suite("Pcap: classic capture files")
struct PcapTests {
    @Test("reads what encode writes, in both byte orders")
    func roundTrip() throws {
        let packets: [[UInt8]] = [[1, 2, 3], [], Array(0..<200)]
        let file = try PcapFile(bytes: PcapFile.encode(packets), name: "t.pcap")
        #expect(file.packets.map(\.data) == packets)
        #expect(file.linkType == 1)
        // The same file big-endian: swap every 32-bit header field.
        var big = PcapFile.encode([[9, 8]])
        for offset in [0, 8, 12, 16, 20, 24, 28, 32, 36] { big[offset..<offset + 4].reverse() }
        big[4...5].reverse(); big[6...7].reverse()
        #expect(try PcapFile(bytes: big, name: "b.pcap").packets.map(\.data) == [[9, 8]])
    }

    @Test("malformed files are refused with the place", arguments: [
        ([UInt8](repeating: 0, count: 10), "too short for a pcap file header"),
        ([0x0A, 0x0D, 0x0D, 0x0A] + [UInt8](repeating: 0, count: 28), "pcapng"),
        ([UInt8](repeating: 0x42, count: 24), "magic number"),
        (PcapFile.encode([[1, 2, 3]]).dropLast(1).map { $0 }, "record 1 at offset 24"),
        (PcapFile.encode([[1, 2, 3]]) + [1, 2, 3], "record header is cut short"),
        (PcapFile.encode([[1]], linkType: 113), "not Ethernet"),
    ])
    func malformed(bytes: [UInt8], expected: String) {
        #expect {
            _ = try PcapFile(bytes: bytes, name: "bad.pcap")
        } throws: { error in
            "\(error)".contains(expected) && "\(error)".hasPrefix("bad.pcap: ")
        }
    }

    @Test("an absurd captured length is refused, not allocated")
    func absurdLength() {
        var bytes = PcapFile.encode([[1]])
        bytes[32] = 0xFF; bytes[33] = 0xFF; bytes[34] = 0xFF; bytes[35] = 0x7F
        #expect(throws: PcapError.self) { try PcapFile(bytes: bytes, name: "x") }
    }
}
