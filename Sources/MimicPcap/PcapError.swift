/// Why a packet capture could not be read.
///
/// Every error names the byte offset in the file where the problem is, and — once the packet
/// records have started — the number of the packet being read, counted from 1 as Wireshark and
/// tcpdump number frames. The description reads
/// `packet 3 (byte offset 1234): captured length 4294967295 is larger than the 262144-byte maximum`.
public struct PcapError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The number of the packet being read (1 for the first), or nil for the file header and
    /// blocks that are not packets.
    public var packetNumber: Int?
    /// The byte offset in the file of the header or block at fault.
    public var offset: Int
    /// What is wrong, for the user.
    public var message: String

    public init(packetNumber: Int? = nil, offset: Int, _ message: String) {
        self.packetNumber = packetNumber
        self.offset = offset
        self.message = message
    }

    public var description: String {
        if let packetNumber {
            return "packet \(packetNumber) (byte offset \(offset)): \(message)"
        }
        return "byte offset \(offset): \(message)"
    }
}
