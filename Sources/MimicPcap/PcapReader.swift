/// Reads the packets of a capture file held in memory: classic pcap (either byte order,
/// microsecond or nanosecond timestamps) and pcapng (section header, interface description,
/// enhanced and simple packet blocks; other blocks are skipped).
///
/// Only Ethernet captures are accepted (`LINKTYPE_ETHERNET`), since the packet contexts expect
/// an Ethernet frame. Malformed input — truncated headers, absurd lengths, inconsistent blocks —
/// never traps: it yields a ``PcapError`` naming the packet number and byte offset.
///
/// ```swift
/// var reader = try PcapReader(bytes: fileBytes)
/// while let packet = try reader.next() {
///     handle(packet.data)
/// }
/// ```
///
/// `nextRecord()` reads without copying: it gives where a packet's bytes lie in the file, so a
/// capture held in a memory map (`PcapBytes`) is indexed in one pass and its packets read in
/// place.
public struct PcapReader: @unchecked Sendable { // `bytes` points into `storage`, which is immutable
    /// The largest captured length accepted for one packet (libpcap's `MAXIMUM_SNAPLEN`);
    /// anything larger is treated as a corrupt length rather than allocated.
    public static let maximumPacketLength = 262_144

    /// The container format, from the file's magic number.
    public let format: PcapFormat
    /// The link type of the capture (always ``PcapLinkType/ethernet`` once reading succeeded;
    /// for pcapng, that of the first interface).
    public private(set) var linkType: PcapLinkType
    /// The number of packets returned so far.
    public private(set) var packetCount = 0
    /// The byte offset of the next header or block to read.
    public private(set) var offset: Int

    /// The file's bytes, and what keeps them.
    public let storage: PcapBytes
    private let bytes: UnsafeRawBufferPointer
    /// pcapng: whether the current section is big-endian.
    private var bigEndian: Bool
    /// classic: whether timestamps are in nanoseconds.
    private var nanosecond = false
    /// pcapng: the interfaces of the current section.
    private var interfaces: [Interface] = []

    /// A pcapng interface: what its packets need to be decoded.
    private struct Interface: Sendable {
        var linkType: PcapLinkType
        var snapLength: UInt32
        /// Timestamp units: `unitsPerSecond` of them make a second.
        var resolution: Resolution
        /// Seconds added to every timestamp (`if_tsoffset`).
        var offsetSeconds: Int64
    }

    private enum Resolution: Sendable {
        case decimal(Int) // 10^-n s
        case binary(Int) // 2^-n s
    }

    /// Reads the file header (classic) or first section header block (pcapng).
    ///
    /// - Throws: `PcapError` for an empty or truncated file, an unknown magic number, an
    ///   unsupported version or a link type other than Ethernet.
    public init(bytes: [UInt8]) throws(PcapError) {
        try self.init(PcapBytes(copying: bytes))
    }

    /// Reads the file header of a capture whose bytes `storage` holds (a memory-mapped file),
    /// which it keeps alive; packets are read from it in place.
    ///
    /// - Throws: as ``init(bytes:)``.
    public init(_ storage: PcapBytes) throws(PcapError) {
        self.storage = storage
        let bytes = storage.buffer
        self.bytes = bytes
        guard bytes.count >= 4 else {
            throw PcapError(
                offset: 0,
                bytes.isEmpty
                    ? "the file is empty; expected a pcap or pcapng capture"
                    : "the file is \(bytes.count) bytes long, too short for a pcap or pcapng header")
        }
        let magicLE = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
        switch magicLE {
        case 0xA1B2_C3D4, 0xA1B2_3C4D, 0xD4C3_B2A1, 0x4D3C_B2A1:
            let big = magicLE == 0xD4C3_B2A1 || magicLE == 0x4D3C_B2A1
            let nano = magicLE == 0xA1B2_3C4D || magicLE == 0x4D3C_B2A1
            format = .classic(bigEndian: big, nanosecond: nano)
            bigEndian = big
            nanosecond = nano
            offset = 0
            linkType = .ethernet
            try readClassicHeader()
        case 0x0A0D_0D0A:
            format = .pcapng
            bigEndian = false
            offset = 0
            linkType = .ethernet
            try readSectionHeader()
            // Read up to the first interface description so the link type is known at once.
            try readPcapngHeaderBlocks()
        default:
            throw PcapError(
                offset: 0, "not a pcap or pcapng capture: unknown magic number 0x\(pcapHex(magicLE, width: 8))")
        }
    }

    /// Reads every packet of `bytes`.
    ///
    /// - Throws: `PcapError` as ``init(bytes:)`` and ``next()`` do.
    public static func readAll(_ bytes: [UInt8]) throws(PcapError) -> [PcapPacket] {
        var reader = try PcapReader(bytes: bytes)
        var packets: [PcapPacket] = []
        while let packet = try reader.next() { packets.append(packet) }
        return packets
    }

    /// The next packet, or nil at the end of the file.
    ///
    /// - Throws: `PcapError` for a truncated record or block, an impossible length, a packet
    ///   on an undeclared or non-Ethernet interface.
    public mutating func next() throws(PcapError) -> PcapPacket? {
        guard let record = try nextRecord() else { return nil }
        return PcapPacket(
            data: Array(data(of: record)), timestamp: record.timestamp, originalLength: record.originalLength)
    }

    /// The next packet's record (where its bytes lie in the file, its timestamp and original
    /// length), or nil at the end of the file; nothing is copied. Checked as ``next()`` is.
    public mutating func nextRecord() throws(PcapError) -> PcapRecord? {
        switch format {
        case .classic: return try nextClassic()
        case .pcapng: return try nextPcapng()
        }
    }

    /// The records of every packet left, in file order: ``nextRecord()`` until the end, in one
    /// call (a capture indexed before its packets run, without a call per packet).
    public mutating func remainingRecords() throws(PcapError) -> [PcapRecord] {
        var records: [PcapRecord] = []
        // Room for packets of about 64 bytes with their record headers; more grows as usual.
        records.reserveCapacity(max(0, bytes.count - offset) / 80)
        if case .classic = format { appendClassicRecords(to: &records) }
        // The rest: pcapng, or a classic record the loop above stopped at (which throws).
        while let record = try nextRecord() { records.append(record) }
        return records
    }

    /// Appends the classic records from `offset` on, read as `nextClassic` reads them but with
    /// the position in locals and 256 records at a time. Stops at the end of the file or before
    /// the first record `nextClassic` would refuse, leaving it to say what is wrong.
    private mutating func appendClassicRecords(to records: inout [PcapRecord]) {
        // One loop per byte order, each with the order a constant (no choice per field).
        let (end, read) =
            bigEndian
            ? classicRecords(from: offset, bigEndian: true, into: &records)
            : classicRecords(from: offset, bigEndian: false, into: &records)
        offset = end
        packetCount += read
    }

    /// `appendClassicRecords`' loop from offset `start`: where it stopped and how many records
    /// it appended. (Wrapping arithmetic: every offset stays within the file's bytes.)
    @inline(__always)
    private func classicRecords(from start: Int, bigEndian big: Bool, into records: inout [PcapRecord]) -> (
        end: Int, read: Int
    ) {
        guard let base = bytes.baseAddress else { return (start, 0) }
        let end = bytes.count
        let fractionLimit: UInt64 = nanosecond ? 1_000_000_000 : 1_000_000
        let fractionScale: UInt64 = nanosecond ? 1 : 1000
        func word(_ at: Int) -> UInt32 {
            let value = base.loadUnaligned(fromByteOffset: at, as: UInt32.self)
            return big ? UInt32(bigEndian: value) : UInt32(littleEndian: value)
        }
        var at = start
        var read = 0
        withUnsafeTemporaryAllocation(of: PcapRecord.self, capacity: 256) { batch in
            var filled = 0
            while end &- at >= 16 {
                let fraction = UInt64(word(at &+ 4))
                let captured = Int(word(at &+ 8))
                guard captured <= Self.maximumPacketLength, captured <= end &- at &- 16, fraction < fractionLimit else {
                    break
                }
                let original = word(at &+ 12)
                let timestamp = UInt64(word(at)) &* 1_000_000_000 &+ fraction &* fractionScale
                batch.initializeElement(
                    at: filled,
                    to: PcapRecord(
                        dataOffset: at &+ 16, length: UInt32(truncatingIfNeeded: captured), timestamp: timestamp,
                        originalLength: max(original, UInt32(truncatingIfNeeded: captured))))
                filled &+= 1
                at = at &+ 16 &+ captured
                if filled == batch.count {
                    records.append(contentsOf: UnsafeBufferPointer(batch))
                    read &+= filled
                    filled = 0
                }
            }
            records.append(contentsOf: UnsafeBufferPointer(rebasing: batch[..<filled]))
            read &+= filled
        }
        return (at, read)
    }

    /// The captured bytes of `record`, a record this reader returned, in place in the file.
    public func data(of record: PcapRecord) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[record.dataOffset..<record.dataOffset + Int(record.length)])
    }

    // MARK: - Classic pcap

    private mutating func readClassicHeader() throws(PcapError) {
        guard bytes.count >= 24 else {
            throw PcapError(offset: 0, "truncated pcap file header: \(bytes.count) of 24 bytes")
        }
        let major = u16(4)
        guard major == 2 else {
            throw PcapError(offset: 4, "unsupported pcap version \(major).\(u16(6)) (expected 2.4)")
        }
        let type = PcapLinkType(rawValue: u32(20) & 0xFFFF)
        guard type == .ethernet else {
            throw PcapError(
                offset: 20, "link type \(type) is not supported; only Ethernet captures (link type 1) can be run")
        }
        linkType = type
        offset = 24
    }

    private mutating func nextClassic() throws(PcapError) -> PcapRecord? {
        guard offset < bytes.count else { return nil }
        let number = packetCount + 1
        let start = offset
        guard bytes.count - start >= 16 else {
            throw PcapError(
                packetNumber: number, offset: start,
                "truncated packet record header: \(bytes.count - start) of 16 bytes")
        }
        let seconds = UInt64(u32(start))
        let fraction = UInt64(u32(start + 4))
        let captured = Int(u32(start + 8))
        let original = u32(start + 12)
        guard captured <= Self.maximumPacketLength else {
            throw PcapError(
                packetNumber: number, offset: start,
                "captured length \(captured) is larger than the \(Self.maximumPacketLength)-byte maximum; the file is corrupt"
            )
        }
        let available = bytes.count - start - 16
        guard captured <= available else {
            throw PcapError(
                packetNumber: number, offset: start,
                "truncated packet: the record says \(captured) bytes but only \(available) remain in the file")
        }
        if nanosecond, fraction >= 1_000_000_000 {
            throw PcapError(
                packetNumber: number, offset: start + 4, "timestamp nanoseconds \(fraction) is not below 1000000000")
        }
        if !nanosecond, fraction >= 1_000_000 {
            throw PcapError(
                packetNumber: number, offset: start + 4, "timestamp microseconds \(fraction) is not below 1000000")
        }
        offset = start + 16 + captured
        packetCount += 1
        let timestamp = seconds &* 1_000_000_000 &+ (nanosecond ? fraction : fraction &* 1000)
        return PcapRecord(
            dataOffset: start + 16, length: UInt32(captured), timestamp: timestamp,
            originalLength: max(original, UInt32(captured)))
    }

    // MARK: - pcapng

    private static let sectionHeaderType: UInt32 = 0x0A0D_0D0A
    private static let interfaceDescriptionType: UInt32 = 1
    private static let simplePacketType: UInt32 = 3
    private static let enhancedPacketType: UInt32 = 6

    /// Reads the section header block at `offset`, setting the byte order.
    private mutating func readSectionHeader() throws(PcapError) {
        let start = offset
        guard bytes.count - start >= 28 else {
            throw PcapError(
                offset: start, "truncated pcapng section header block: \(bytes.count - start) of at least 28 bytes")
        }
        let magic = Array(bytes[(start + 8)..<(start + 12)])
        if magic == [0x4D, 0x3C, 0x2B, 0x1A] {
            bigEndian = false
        } else if magic == [0x1A, 0x2B, 0x3C, 0x4D] {
            bigEndian = true
        } else {
            throw PcapError(
                offset: start + 8,
                "bad pcapng byte-order magic \(magic.map { pcapHex(UInt32($0), width: 2) }.joined(separator: " ")) (expected 1a2b3c4d)"
            )
        }
        let major = u16(start + 12)
        guard major == 1 else {
            throw PcapError(offset: start + 12, "unsupported pcapng version \(major).\(u16(start + 14)) (expected 1.0)")
        }
        let length = try blockLength(at: start, minimum: 28)
        interfaces = []
        offset = start + length
    }

    /// The total length of the block at `start`, checked: at least `minimum`, a multiple of 4,
    /// inside the file, and repeated at the block's end.
    private func blockLength(at start: Int, minimum: Int, packet: Int? = nil) throws(PcapError) -> Int {
        guard bytes.count - start >= 12 else {
            throw PcapError(
                packetNumber: packet, offset: start,
                "truncated pcapng block header: \(bytes.count - start) of at least 12 bytes")
        }
        let length = Int(u32(start + 4))
        guard length >= minimum else {
            throw PcapError(
                packetNumber: packet, offset: start,
                "pcapng block length \(length) is smaller than the \(minimum) bytes this block type needs")
        }
        guard length % 4 == 0 else {
            throw PcapError(packetNumber: packet, offset: start, "pcapng block length \(length) is not a multiple of 4")
        }
        guard length <= bytes.count - start else {
            throw PcapError(
                packetNumber: packet, offset: start,
                "truncated pcapng block: its length is \(length) bytes but only \(bytes.count - start) remain in the file"
            )
        }
        let trailer = Int(u32(start + length - 4))
        guard trailer == length else {
            throw PcapError(
                packetNumber: packet, offset: start,
                "pcapng block length \(length) does not match the length \(trailer) at the block's end")
        }
        return length
    }

    /// Reads non-packet blocks up to the first packet block (or the end of the file).
    private mutating func readPcapngHeaderBlocks() throws(PcapError) {
        while offset < bytes.count, bytes.count - offset >= 4 {
            let type = u32(offset)
            if type == Self.enhancedPacketType || type == Self.simplePacketType { return }
            try readNonPacketBlock(type: type)
            if let first = interfaces.first {
                linkType = first.linkType
                return
            }
        }
    }

    /// Reads (or skips) the section header, interface description or other block at `offset`.
    private mutating func readNonPacketBlock(type: UInt32) throws(PcapError) {
        if type == Self.sectionHeaderType {
            try readSectionHeader()
            return
        }
        let start = offset
        if type == Self.interfaceDescriptionType {
            let length = try blockLength(at: start, minimum: 20)
            let link = PcapLinkType(rawValue: UInt32(u16(start + 8)))
            guard link == .ethernet else {
                throw PcapError(
                    offset: start,
                    "interface \(interfaces.count) has link type \(link); only Ethernet captures (link type 1) can be run"
                )
            }
            var interface = Interface(
                linkType: link, snapLength: u32(start + 12), resolution: .decimal(6), offsetSeconds: 0)
            // Options: code u16, length u16, value padded to 4 bytes; end at opt_endofopt (0).
            var position = start + 16
            let end = start + length - 4
            while end - position >= 4 {
                let code = u16(position)
                let optionLength = Int(u16(position + 2))
                if code == 0 { break }
                guard optionLength <= end - position - 4 else {
                    throw PcapError(
                        offset: position,
                        "interface description option \(code) of length \(optionLength) runs past the end of its block")
                }
                if code == 9, optionLength >= 1 {
                    let value = bytes[position + 4]
                    interface.resolution = value & 0x80 == 0 ? .decimal(Int(value)) : .binary(Int(value & 0x7F))
                } else if code == 14, optionLength >= 8 {
                    interface.offsetSeconds = Int64(bitPattern: u64(position + 4))
                }
                position += 4 + (optionLength + 3) / 4 * 4
            }
            interfaces.append(interface)
            offset = start + length
            return
        }
        // Any other block (name resolution, statistics, custom, ...): skipped.
        let length = try blockLength(at: start, minimum: 12)
        offset = start + length
    }

    private mutating func nextPcapng() throws(PcapError) -> PcapRecord? {
        while offset < bytes.count {
            let start = offset
            let number = packetCount + 1
            guard bytes.count - start >= 8 else {
                throw PcapError(
                    offset: start, "truncated pcapng block header: \(bytes.count - start) of at least 12 bytes")
            }
            let type = u32(start)
            switch type {
            case Self.enhancedPacketType:
                let length = try blockLength(at: start, minimum: 32, packet: number)
                let interfaceID = Int(u32(start + 8))
                let interface = try self.interface(interfaceID, packet: number, offset: start)
                let raw = UInt64(u32(start + 12)) << 32 | UInt64(u32(start + 16))
                let captured = Int(u32(start + 20))
                let original = u32(start + 24)
                guard captured <= Self.maximumPacketLength else {
                    throw PcapError(
                        packetNumber: number, offset: start,
                        "captured length \(captured) is larger than the \(Self.maximumPacketLength)-byte maximum; the file is corrupt"
                    )
                }
                guard captured <= length - 32 else {
                    throw PcapError(
                        packetNumber: number, offset: start,
                        "captured length \(captured) does not fit in its \(length)-byte enhanced packet block")
                }
                offset = start + length
                packetCount += 1
                return PcapRecord(
                    dataOffset: start + 28, length: UInt32(captured), timestamp: Self.nanoseconds(raw, interface),
                    originalLength: max(original, UInt32(captured)))
            case Self.simplePacketType:
                let length = try blockLength(at: start, minimum: 16, packet: number)
                let interface = try self.interface(0, packet: number, offset: start)
                let original = u32(start + 8)
                var captured = min(Int(original), length - 16)
                if interface.snapLength != 0 { captured = min(captured, Int(interface.snapLength)) }
                guard captured <= Self.maximumPacketLength else {
                    throw PcapError(
                        packetNumber: number, offset: start,
                        "packet length \(captured) is larger than the \(Self.maximumPacketLength)-byte maximum; the file is corrupt"
                    )
                }
                offset = start + length
                packetCount += 1
                return PcapRecord(
                    dataOffset: start + 12, length: UInt32(captured), timestamp: 0,
                    originalLength: max(original, UInt32(captured)))
            default:
                try readNonPacketBlock(type: type)
            }
        }
        return nil
    }

    private func interface(_ id: Int, packet: Int, offset: Int) throws(PcapError) -> Interface {
        guard id < interfaces.count else {
            throw PcapError(
                packetNumber: packet, offset: offset,
                interfaces.isEmpty
                    ? "packet block before any interface description block"
                    : "packet on interface \(id), but the section describes only \(interfaces.count) interface(s)")
        }
        return interfaces[id]
    }

    /// A pcapng timestamp in `interface`'s units, as nanoseconds since the epoch (saturating).
    private static func nanoseconds(_ raw: UInt64, _ interface: Interface) -> UInt64 {
        var value: UInt64
        switch interface.resolution {
        case .decimal(let digits):
            if digits <= 9 {
                var scale: UInt64 = 1
                for _ in digits..<9 { scale *= 10 }
                let (product, overflow) = raw.multipliedReportingOverflow(by: scale)
                value = overflow ? .max : product
            } else {
                value = raw
                for _ in 9..<digits where value > 0 { value /= 10 }
            }
        case .binary(let bits):
            if bits >= 64 {
                value = 0 // units far below a nanosecond for any real clock
            } else {
                let whole = raw >> UInt64(bits)
                let fraction = raw & ((1 << UInt64(bits)) &- 1)
                let (high, low) = fraction.multipliedFullWidth(by: 1_000_000_000)
                let part = bits == 0 ? 0 : (high << (64 - UInt64(bits))) | (low >> UInt64(bits))
                let (seconds, overflow) = whole.multipliedReportingOverflow(by: 1_000_000_000)
                value = overflow ? .max : seconds &+ part
            }
        }
        let shift = interface.offsetSeconds.multipliedReportingOverflow(by: 1_000_000_000)
        if interface.offsetSeconds != 0, !shift.overflow {
            value = UInt64(clamping: Int64(clamping: value).addingReportingOverflow(shift.partialValue).partialValue)
        }
        return value
    }

    // MARK: - Byte access (callers check bounds first)

    private func u16(_ at: Int) -> UInt16 {
        let a = UInt16(bytes[at])
        let b = UInt16(bytes[at + 1])
        return bigEndian ? a << 8 | b : b << 8 | a
    }

    private func u32(_ at: Int) -> UInt32 {
        let value = bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)
        return bigEndian ? UInt32(bigEndian: value) : UInt32(littleEndian: value)
    }

    private func u64(_ at: Int) -> UInt64 {
        let first = UInt64(u32(at))
        let second = UInt64(u32(at + 4))
        return bigEndian ? first << 32 | second : second << 32 | first
    }
}

private func pcapHex(_ value: UInt32, width: Int) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}
