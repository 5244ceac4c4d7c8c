import Foundation
import MimicLinux
import MimicPcap

/// Paths of the examples and small helpers for checking packets.
enum Examples {
    static func path(_ name: String) -> String {
        MimicCLI.packageRoot.appendingPathComponent("Examples/\(name)").path
    }

    static func fixture(_ name: String) -> String {
        MimicCLI.packageRoot.appendingPathComponent("Tests/MimicCLITests/Fixtures/\(name)").path
    }

    static var firewall: String { path("xdp_firewall.o") }
    static var traffic: String { path("traffic.pcap") }
    static var blocklist: String { "blocklist=" + path("blocklist.json") }

    /// The packets of the example capture.
    static func trafficPackets() throws -> [PcapPacket] {
        try PcapReader.readAll([UInt8](Data(contentsOf: URL(fileURLWithPath: traffic))))
    }

    /// The IPv4 source address of an Ethernet frame, or nil.
    static func ipv4Source(_ frame: [UInt8]) -> [UInt8]? {
        guard frame.count >= 34, frame[12] == 0x08, frame[13] == 0x00 else { return nil }
        return Array(frame[26..<30])
    }

    /// Whether the UDP or TCP checksum of an Ethernet + IPv4 frame is right (RFC 1071 over the
    /// pseudo-header and segment).
    static func transportChecksumIsValid(_ frame: [UInt8]) -> Bool {
        guard frame.count >= 34 else { return false }
        let ipHeaderLength = Int(frame[14] & 0x0F) * 4
        let total = Int(frame[16]) << 8 | Int(frame[17])
        let start = 14 + ipHeaderLength
        let end = 14 + total
        guard end <= frame.count, start < end else { return false }
        var data = Array(frame[26..<34]) + [0, frame[23], UInt8((end - start) >> 8), UInt8((end - start) & 0xFF)]
        data += frame[start..<end]
        if data.count % 2 == 1 { data.append(0) }
        var sum: UInt32 = 0
        for index in stride(from: 0, to: data.count, by: 2) {
            sum += UInt32(data[index]) << 8 | UInt32(data[index + 1])
        }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return sum == 0xFFFF
    }

    /// `bytes` parsed from the space-separated hex the CLI prints.
    static func bytes(hex: String) -> [UInt8] {
        hex.split(separator: " ").compactMap { UInt8($0, radix: 16) }
    }

    /// A pcapng file (section header, one Ethernet interface, enhanced packet blocks).
    static func pcapng(_ packets: [PcapPacket]) -> [UInt8] {
        var out: [UInt8] = []
        func u16(_ value: UInt16) { out += [UInt8(value & 0xFF), UInt8(value >> 8)] }
        func u32(_ value: UInt32) {
            for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8((value >> UInt32(shift)) & 0xFF)) }
        }
        u32(0x0A0D_0D0A)
        u32(28)
        u32(0x1A2B_3C4D)
        u16(1)
        u16(0)
        u32(0xFFFF_FFFF)
        u32(0xFFFF_FFFF)
        u32(28)
        u32(1)
        u32(20)
        u16(1)
        u16(0)
        u32(0)
        u32(20)
        for packet in packets {
            let padded = (packet.data.count + 3) / 4 * 4
            let length = UInt32(32 + padded)
            let micros = packet.timestamp / 1000
            u32(6)
            u32(length)
            u32(0)
            u32(UInt32(micros >> 32))
            u32(UInt32(micros & 0xFFFF_FFFF))
            u32(UInt32(packet.data.count))
            u32(packet.originalLength)
            out += packet.data + [UInt8](repeating: 0, count: padded - packet.data.count)
            u32(length)
        }
        return out
    }
}

extension String {
    /// The text with every run of spaces collapsed to one (for column-aligned output).
    var squeezed: String {
        var out = ""
        var lastWasSpace = false
        for character in self {
            if character == " " {
                if !lastWasSpace { out.append(character) }
                lastWasSpace = true
            } else {
                out.append(character)
                lastWasSpace = false
            }
        }
        return out
    }
}
