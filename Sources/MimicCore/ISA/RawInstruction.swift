/// One 64-bit eBPF instruction slot as encoded in bytecode (`struct bpf_insn`).
///
/// `lddw` takes two slots: the second carries the upper 32 bits of the immediate in `imm`.
public struct RawInstruction: Hashable, Sendable, CustomStringConvertible {
    public var opcode: UInt8
    /// Destination register number (4 bits in the encoding).
    public var destination: UInt8
    /// Source register number (4 bits in the encoding).
    public var source: UInt8
    public var offset: Int16
    public var imm: Int32

    public init(opcode: UInt8, destination: UInt8 = 0, source: UInt8 = 0, offset: Int16 = 0, imm: Int32 = 0) {
        self.opcode = opcode
        self.destination = destination
        self.source = source
        self.offset = offset
        self.imm = imm
    }

    /// The size of one instruction slot in bytes.
    public static let size = 8

    /// Decodes one slot from 8 bytes. Big-endian objects swap the register nibbles and the
    /// multi-byte fields, as `-target bpfeb` encodes them.
    public init<Bytes: RandomAccessCollection<UInt8>>(bytes: Bytes, bigEndian: Bool = false) where Bytes.Index == Int {
        let b = bytes.startIndex
        func field(_ start: Int, _ count: Int) -> UInt64 {
            var value: UInt64 = 0
            for i in 0..<count {
                let byte = UInt64(bytes[b + start + i])
                value |= bigEndian ? byte << (8 * (count - 1 - i)) : byte << (8 * i)
            }
            return value
        }
        opcode = bytes[b]
        let registers = bytes[b + 1]
        destination = bigEndian ? registers >> 4 : registers & 0x0F
        source = bigEndian ? registers & 0x0F : registers >> 4
        offset = Int16(truncatingIfNeeded: field(2, 2))
        imm = Int32(truncatingIfNeeded: field(4, 4))
    }

    /// The 8 bytes of this slot, little-endian (the encoding of `bpfel` and of the kernel on x86).
    public var bytes: [UInt8] {
        let off = UInt16(bitPattern: offset)
        let im = UInt32(bitPattern: imm)
        return [
            opcode, (source << 4) | (destination & 0x0F),
            UInt8(truncatingIfNeeded: off), UInt8(truncatingIfNeeded: off >> 8),
            UInt8(truncatingIfNeeded: im), UInt8(truncatingIfNeeded: im >> 8),
            UInt8(truncatingIfNeeded: im >> 16), UInt8(truncatingIfNeeded: im >> 24),
        ]
    }

    /// The class of this instruction.
    public var instructionClass: InstructionClass { InstructionClass(rawValue: opcode & 0x07)! }

    public var description: String {
        "{op 0x\(String(opcode, radix: 16)), dst r\(destination), src r\(source), off \(offset), imm \(imm)}"
    }

    /// Decodes bytecode into slots. The byte count must be a multiple of 8.
    public static func decode(_ bytes: [UInt8], bigEndian: Bool = false) throws(BytecodeError) -> [RawInstruction] {
        guard bytes.count % size == 0 else { throw .truncated(byteCount: bytes.count) }
        return stride(from: 0, to: bytes.count, by: size).map {
            RawInstruction(bytes: bytes[$0..<($0 + size)], bigEndian: bigEndian)
        }
    }

    /// Encodes slots as little-endian bytecode.
    public static func encode(_ instructions: [RawInstruction]) -> [UInt8] {
        instructions.flatMap(\.bytes)
    }
}

/// Bytecode that cannot be split into instructions.
public enum BytecodeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The length is not a multiple of 8.
    case truncated(byteCount: Int)

    public var description: String {
        switch self {
        case .truncated(let count):
            "bytecode of \(count) bytes is not a whole number of 8-byte instructions (\(count % 8) bytes left over)"
        }
    }
}
