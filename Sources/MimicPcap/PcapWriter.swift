/// Writes packets as a classic pcap file (little-endian, Ethernet link type), the format every
/// capture tool reads.
///
/// ```swift
/// var writer = PcapWriter()
/// writer.append(packet)
/// try Data(writer.bytes).write(to: url)
/// ```
public struct PcapWriter: Sendable {
    /// The file so far: the header, then one record per appended packet.
    public private(set) var bytes: [UInt8] = []
    /// Whether timestamps are written with nanosecond resolution (magic `a1b23c4d`) rather
    /// than microseconds (`a1b2c3d4`).
    public let nanosecond: Bool
    /// The link-layer header type written in the file header.
    public let linkType: PcapLinkType
    /// The number of packets appended.
    public private(set) var packetCount = 0

    /// Starts a file with the given snapshot length and link type.
    public init(
        nanosecond: Bool = false, snapLength: UInt32 = UInt32(PcapReader.maximumPacketLength),
        linkType: PcapLinkType = .ethernet
    ) {
        self.nanosecond = nanosecond
        self.linkType = linkType
        append32(nanosecond ? 0xA1B2_3C4D : 0xA1B2_C3D4)
        append16(2)
        append16(4)
        append32(0) // thiszone
        append32(0) // sigfigs
        append32(snapLength)
        append32(linkType.rawValue)
    }

    /// Appends one packet record. Its original length is written as at least the number of
    /// bytes captured (a program may have grown the packet).
    public mutating func append(_ packet: PcapPacket) {
        let seconds = packet.timestamp / 1_000_000_000
        let nanos = packet.timestamp % 1_000_000_000
        append32(UInt32(truncatingIfNeeded: seconds))
        append32(UInt32(nanosecond ? nanos : nanos / 1000))
        let captured = UInt32(clamping: packet.data.count)
        append32(captured)
        append32(max(packet.originalLength, captured))
        bytes += packet.data
        packetCount += 1
    }

    /// Appends one packet record of `data` (copied), captured at `timestamp` (nanoseconds since
    /// the epoch), `originalLength` bytes long on the wire (written as at least `data.count`):
    /// ``append(_:)`` without a `PcapPacket` in between.
    public mutating func append(_ data: UnsafeRawBufferPointer, timestamp: UInt64, originalLength: UInt32) {
        let nanosecond = self.nanosecond
        // Header and data written straight into the array's new room: one capacity check, one
        // copy of the data.
        bytes.append(addingCapacity: Self.recordHeaderSize + data.count) { span in
            span.withUnsafeMutableBufferPointer { buffer, initialized in
                guard let record = UnsafeMutableRawPointer(buffer.baseAddress) else { return }
                Self.storeRecord(
                    data, timestamp: timestamp, originalLength: originalLength, nanosecond: nanosecond, at: record)
                initialized = Self.recordHeaderSize + data.count
            }
        }
        packetCount += 1
    }

    /// The bytes of a record's header, before its data.
    public static let recordHeaderSize = 16

    /// Stores one whole record (`recordHeaderSize + data.count` bytes) at `record`: the header
    /// ``append(_:timestamp:originalLength:)`` writes, then `data`. For records written into
    /// memory a writer does not own (the parts of a file built by several threads at once).
    public static func storeRecord(
        _ data: UnsafeRawBufferPointer, timestamp: UInt64, originalLength: UInt32, nanosecond: Bool,
        at record: UnsafeMutableRawPointer
    ) {
        let seconds = timestamp / 1_000_000_000
        let nanos = timestamp % 1_000_000_000
        let captured = UInt32(clamping: data.count)
        let fraction = UInt32(nanosecond ? nanos : nanos / 1000)
        record.storeBytes(of: UInt32(truncatingIfNeeded: seconds).littleEndian, as: UInt32.self)
        record.storeBytes(of: fraction.littleEndian, toByteOffset: 4, as: UInt32.self)
        record.storeBytes(of: captured.littleEndian, toByteOffset: 8, as: UInt32.self)
        record.storeBytes(of: max(originalLength, captured).littleEndian, toByteOffset: 12, as: UInt32.self)
        if let source = data.baseAddress, !data.isEmpty {
            (record + recordHeaderSize).copyMemory(from: source, byteCount: data.count)
        }
    }

    /// The size of the file so far (`bytes.count`), without a copy of `bytes`.
    public var byteCount: Int { bytes.count }

    /// The bytes of the file header, before the first record.
    public static let headerSize = 24

    /// A whole classic pcap file holding `packets`.
    public static func file(_ packets: [PcapPacket], nanosecond: Bool = false) -> [UInt8] {
        var writer = PcapWriter(nanosecond: nanosecond)
        for packet in packets { writer.append(packet) }
        return writer.bytes
    }

    private mutating func append16(_ value: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: value))
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
    }

    private mutating func append32(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }
}
