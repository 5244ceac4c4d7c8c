// Test helpers shared by the test targets that build packets and compare map bytes
// (MimicLinuxTests, MimicPluginTests): one copy instead of one per target.

/// Builds Ethernet + IPv4 + UDP/TCP packets with correct checksums, and checks them.
public enum Packet {
    public static let udp: UInt8 = 17
    public static let tcp: UInt8 = 6

    /// A dotted-quad address as its four bytes (network order).
    public static func ip(_ text: String) -> [UInt8] { text.split(separator: ".").map { UInt8($0)! } }

    /// The 16-bit ones' complement sum of `bytes` (big-endian words, odd tail padded), not inverted.
    public static func onesComplementSum(_ bytes: [UInt8], initial: UInt32 = 0) -> UInt16 {
        var sum = initial
        var index = 0
        while index < bytes.count {
            let high = UInt32(bytes[index])
            let low = index + 1 < bytes.count ? UInt32(bytes[index + 1]) : 0
            sum += high << 8 | low
            index += 2
        }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        return UInt16(sum)
    }

    /// The Internet checksum of `bytes` (the value to store in the header).
    public static func checksum(_ bytes: [UInt8]) -> UInt16 { ~onesComplementSum(bytes) }

    /// The IPv4 pseudo-header sum input for a segment of `length` bytes.
    public static func pseudoHeader(source: [UInt8], destination: [UInt8], protocol proto: UInt8, length: Int)
        -> [UInt8]
    {
        source + destination + [0, proto, UInt8(length >> 8), UInt8(length & 0xFF)]
    }

    /// Ethernet + IPv4 (no options) + a UDP or TCP header + `payload`, checksums filled in.
    public static func make(
        source: String, destination: String, protocol proto: UInt8 = udp, sourcePort: UInt16 = 1234,
        destinationPort: UInt16 = 53, payload: [UInt8] = Array("hello".utf8)
    ) -> [UInt8] {
        let src = ip(source)
        let dst = ip(destination)
        var l4: [UInt8]
        let checksumOffset: Int
        if proto == tcp {
            l4 =
                be16(sourcePort) + be16(destinationPort) + [0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18] + be16(0xFFFF) + [
                    0, 0, 0, 0,
                ]
            checksumOffset = 16
        } else {
            l4 = be16(sourcePort) + be16(destinationPort) + be16(UInt16(8 + payload.count)) + [0, 0]
            checksumOffset = 6
        }
        l4 += payload
        let l4Sum = checksum(pseudoHeader(source: src, destination: dst, protocol: proto, length: l4.count) + l4)
        l4.replaceSubrange(checksumOffset..<checksumOffset + 2, with: be16(l4Sum))
        var ip: [UInt8] = [0x45, 0] + be16(UInt16(20 + l4.count)) + [0, 1, 0x40, 0, 64, proto, 0, 0] + src + dst
        ip.replaceSubrange(10..<12, with: be16(checksum(ip)))
        let ethernet: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]
        return ethernet + ip + l4
    }

    /// Whether the IPv4 header checksum of an Ethernet frame is valid.
    public static func ipChecksumIsValid(_ frame: [UInt8]) -> Bool {
        checksum(Array(frame[14..<34])) == 0
    }

    /// Whether the UDP or TCP checksum of an Ethernet + IPv4 frame is valid.
    public static func l4ChecksumIsValid(_ frame: [UInt8]) -> Bool {
        let proto = frame[23]
        let l4 = Array(frame[34...])
        let pseudo = pseudoHeader(
            source: Array(frame[26..<30]), destination: Array(frame[30..<34]), protocol: proto, length: l4.count)
        return checksum(pseudo + l4) == 0
    }

    public static func be16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
}

/// Little-endian bytes of `value`.
public func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
public func le64(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
/// The little-endian integer of up to 8 `bytes`.
public func uint64(_ bytes: [UInt8]) -> UInt64 {
    bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * $1.offset) }
}
