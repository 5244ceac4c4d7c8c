/// A bounds-checked reader over a byte buffer in either byte order.
///
/// Every read names the structure and field it reads, so an out-of-range read becomes an
/// `ObjectFileError.truncated` that tells the user exactly what is missing. Nothing here traps.
/// The field's name is an autoclosure, built only for the error: names such as
/// `symbol 12 st_name`, built eagerly, were an allocation per field read and most of the
/// time spent parsing an object.
struct ByteReader: Sendable {
    /// The bytes being read; offsets are relative to the start of this buffer.
    let bytes: [UInt8]
    let bigEndian: Bool
    /// What the buffer holds, for messages (`section .BTF`, `ELF header`).
    let structure: String

    init(_ bytes: [UInt8], bigEndian: Bool, structure: String) {
        self.bytes = bytes
        self.bigEndian = bigEndian
        self.structure = structure
    }

    var count: Int { bytes.count }

    /// Throws unless `size` bytes exist at `offset`.
    func require(_ offset: Int, _ size: Int, _ field: @autoclosure () -> String) throws(ObjectFileError) {
        guard offset >= 0, size >= 0, offset <= bytes.count, size <= bytes.count - offset else {
            throw .truncated(structure: structure, field: field(), offset: offset, size: size, available: bytes.count)
        }
    }

    /// Whether `size` bytes exist at `offset` (no throw).
    func contains(_ offset: Int, _ size: Int) -> Bool {
        offset >= 0 && size >= 0 && offset <= bytes.count && size <= bytes.count - offset
    }

    func unsigned(_ offset: Int, _ size: Int, _ field: @autoclosure () -> String) throws(ObjectFileError) -> UInt64 {
        try require(offset, size, field())
        var value: UInt64 = 0
        for i in 0..<size {
            let byte = UInt64(bytes[offset + i])
            value |= bigEndian ? byte << (8 * UInt64(size - 1 - i)) : byte << (8 * UInt64(i))
        }
        return value
    }

    func u8(_ offset: Int, _ field: @autoclosure () -> String) throws(ObjectFileError) -> UInt8 {
        try require(offset, 1, field())
        return bytes[offset]
    }

    func u16(_ offset: Int, _ field: @autoclosure () -> String) throws(ObjectFileError) -> UInt16 {
        UInt16(truncatingIfNeeded: try unsigned(offset, 2, field()))
    }

    func u32(_ offset: Int, _ field: @autoclosure () -> String) throws(ObjectFileError) -> UInt32 {
        UInt32(truncatingIfNeeded: try unsigned(offset, 4, field()))
    }

    func i32(_ offset: Int, _ field: @autoclosure () -> String) throws(ObjectFileError) -> Int32 {
        Int32(bitPattern: try u32(offset, field()))
    }

    func u64(_ offset: Int, _ field: @autoclosure () -> String) throws(ObjectFileError) -> UInt64 {
        try unsigned(offset, 8, field())
    }

    /// A copy of `size` bytes at `offset`.
    func slice(_ offset: Int, _ size: Int, _ field: @autoclosure () -> String) throws(ObjectFileError) -> [UInt8] {
        try require(offset, size, field())
        return Array(bytes[offset..<(offset + size)])
    }

    /// A sub-reader over `size` bytes at `offset`, describing a different structure.
    func subReader(_ offset: Int, _ size: Int, _ field: @autoclosure () -> String, structure: String) throws(ObjectFileError) -> ByteReader
    {
        ByteReader(try slice(offset, size, field()), bigEndian: bigEndian, structure: structure)
    }

    /// The NUL-terminated string at `offset`; nil if `offset` is outside the buffer or there is
    /// no terminator.
    func cString(at offset: Int) -> String? {
        guard offset >= 0, offset < bytes.count else { return nil }
        var end = offset
        while end < bytes.count, bytes[end] != 0 { end += 1 }
        guard end < bytes.count else { return nil }
        return String(decoding: bytes[offset..<end], as: UTF8.self)
    }
}

/// Converts a 64-bit file quantity to `Int`, or nil if it does not fit.
@inline(__always)
func intValue(_ value: UInt64) -> Int? {
    value <= UInt64(Int.max) ? Int(value) : nil
}
