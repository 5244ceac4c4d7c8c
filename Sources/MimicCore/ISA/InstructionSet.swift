/// The eBPF instruction set (RFC 9669), described once.
///
/// `InstructionSet.forms` has one row per instruction form: its dense `Operation`, the opcode
/// byte, the field that tells forms with the same opcode apart, the mnemonic of the
/// bpf_conformance assembler syntax, and the operand shape. The decoder, the assembler and the
/// disassembler are all driven by this table; the interpreter switches over `Operation`.

/// The class of an instruction: the low three bits of its opcode.
public enum InstructionClass: UInt8, Sendable, CaseIterable {
    case load = 0x00, loadRegister = 0x01, store = 0x02, storeRegister = 0x03
    case alu32 = 0x04, jump64 = 0x05, jump32 = 0x06, alu64 = 0x07

    /// The C spelling (`BPF_LD`, `BPF_LDX`, ...).
    public var cName: String {
        ["BPF_LD", "BPF_LDX", "BPF_ST", "BPF_STX", "BPF_ALU", "BPF_JMP", "BPF_JMP32", "BPF_ALU64"][Int(rawValue)]
    }
}

/// Every operation the VM executes, one case per instruction form, densely numbered.
///
/// Names say width and operand source: `add64Imm` is `BPF_ALU64 | BPF_ADD | BPF_K`,
/// `jumpSignedLess32Reg` is `BPF_JMP32 | BPF_JSLT | BPF_X`, `load16` is `BPF_LDX | BPF_MEM | BPF_H`.
public enum Operation: UInt8, Sendable, CaseIterable {
    case add64Imm
    case add64Reg
    case sub64Imm
    case sub64Reg
    case mul64Imm
    case mul64Reg
    case div64Imm
    case div64Reg
    case sdiv64Imm
    case sdiv64Reg
    case or64Imm
    case or64Reg
    case and64Imm
    case and64Reg
    case lsh64Imm
    case lsh64Reg
    case rsh64Imm
    case rsh64Reg
    case mod64Imm
    case mod64Reg
    case smod64Imm
    case smod64Reg
    case xor64Imm
    case xor64Reg
    case mov64Imm
    case mov64Reg
    case arsh64Imm
    case arsh64Reg
    case neg64
    case add32Imm
    case add32Reg
    case sub32Imm
    case sub32Reg
    case mul32Imm
    case mul32Reg
    case div32Imm
    case div32Reg
    case sdiv32Imm
    case sdiv32Reg
    case or32Imm
    case or32Reg
    case and32Imm
    case and32Reg
    case lsh32Imm
    case lsh32Reg
    case rsh32Imm
    case rsh32Reg
    case mod32Imm
    case mod32Reg
    case smod32Imm
    case smod32Reg
    case xor32Imm
    case xor32Reg
    case mov32Imm
    case mov32Reg
    case arsh32Imm
    case arsh32Reg
    case neg32
    case movsx8to64
    case movsx16to64
    case movsx32to64
    case movsx8to32
    case movsx16to32
    case le16
    case le32
    case le64
    case be16
    case be32
    case be64
    case bswap16
    case bswap32
    case bswap64
    case load64
    case load32
    case load16
    case load8
    case loadSigned32
    case loadSigned16
    case loadSigned8
    case store64Imm
    case store32Imm
    case store16Imm
    case store8Imm
    case store64Reg
    case store32Reg
    case store16Reg
    case store8Reg
    case atomicAdd64
    case atomicOr64
    case atomicAnd64
    case atomicXor64
    case atomicFetchAdd64
    case atomicFetchOr64
    case atomicFetchAnd64
    case atomicFetchXor64
    case atomicExchange64
    case atomicCompareExchange64
    case atomicAdd32
    case atomicOr32
    case atomicAnd32
    case atomicXor32
    case atomicFetchAdd32
    case atomicFetchOr32
    case atomicFetchAnd32
    case atomicFetchXor32
    case atomicExchange32
    case atomicCompareExchange32
    case loadImm64
    case loadPacketAbsolute32
    case loadPacketAbsolute16
    case loadPacketAbsolute8
    case loadPacketIndirect32
    case loadPacketIndirect16
    case loadPacketIndirect8
    case jump
    case jump32
    case jumpEqual64Imm
    case jumpEqual64Reg
    case jumpGreater64Imm
    case jumpGreater64Reg
    case jumpGreaterEqual64Imm
    case jumpGreaterEqual64Reg
    case jumpSet64Imm
    case jumpSet64Reg
    case jumpNotEqual64Imm
    case jumpNotEqual64Reg
    case jumpSignedGreater64Imm
    case jumpSignedGreater64Reg
    case jumpSignedGreaterEqual64Imm
    case jumpSignedGreaterEqual64Reg
    case jumpLess64Imm
    case jumpLess64Reg
    case jumpLessEqual64Imm
    case jumpLessEqual64Reg
    case jumpSignedLess64Imm
    case jumpSignedLess64Reg
    case jumpSignedLessEqual64Imm
    case jumpSignedLessEqual64Reg
    case jumpEqual32Imm
    case jumpEqual32Reg
    case jumpGreater32Imm
    case jumpGreater32Reg
    case jumpGreaterEqual32Imm
    case jumpGreaterEqual32Reg
    case jumpSet32Imm
    case jumpSet32Reg
    case jumpNotEqual32Imm
    case jumpNotEqual32Reg
    case jumpSignedGreater32Imm
    case jumpSignedGreater32Reg
    case jumpSignedGreaterEqual32Imm
    case jumpSignedGreaterEqual32Reg
    case jumpLess32Imm
    case jumpLess32Reg
    case jumpLessEqual32Imm
    case jumpLessEqual32Reg
    case jumpSignedLess32Imm
    case jumpSignedLess32Reg
    case jumpSignedLessEqual32Imm
    case jumpSignedLessEqual32Reg
    case callHelper
    case callLocal
    case callKernelFunction
    case callRegister
    case exit
}

/// How an instruction's operands are written in assembler text.
public enum OperandShape: Sendable, Equatable {
    /// `add %r0, 1`
    case aluImm
    /// `add %r0, %r1`
    case aluReg
    /// `neg %r0`, `be16 %r0`
    case unary
    /// `ldxw %r0, [%r1+4]`
    case load
    /// `stw [%r1+4], 7`
    case storeImm
    /// `stxw [%r1+4], %r2`
    case storeReg
    /// `lock fetch add [%r1+0], %r2`
    case atomic
    /// `lddw %r0, 0x1122334455667788`
    case loadImm64
    /// `ldabsw 12`
    case packetAbsolute
    /// `ldindw %r1, 12`
    case packetIndirect
    /// `ja +3` or `ja label` (offset field)
    case jump
    /// `ja32 label` (imm field: the long jump `gotol`)
    case jump32
    /// `jeq %r0, 1, label`
    case jumpImm
    /// `jeq %r0, %r1, label`
    case jumpReg
    /// `call 5` (helper id in imm)
    case callHelper
    /// `call local label` (imm: offset to a program-local function)
    case callLocal
    /// `callx %r2` (target in the dst register)
    case callRegister
    /// `exit`
    case none
}

/// The field that tells apart forms sharing an opcode byte.
public enum Discriminator: Sendable, Equatable {
    case none
    /// The offset field (`sdiv`/`smod` use 1, `movsx` the source width).
    case offset(Int16)
    /// The immediate (atomic operation codes, byte-swap widths).
    case imm(Int32)
    /// The source register field (call kinds).
    case source(UInt8)
}

/// One row of the instruction table.
public struct InstructionForm: Sendable {
    public let operation: Operation
    public let opcode: UInt8
    public let discriminator: Discriminator
    public let mnemonic: String
    public let shape: OperandShape

    init(_ operation: Operation, opcode: UInt8, _ discriminator: Discriminator, _ mnemonic: String, _ shape: OperandShape) {
        self.operation = operation
        self.opcode = opcode
        self.discriminator = discriminator
        self.mnemonic = mnemonic
        self.shape = shape
    }

    /// The class of this form's opcode.
    public var instructionClass: InstructionClass { InstructionClass(rawValue: opcode & 0x07)! }

    /// Whether `instruction` is encoded as this form.
    public func matches(_ instruction: RawInstruction) -> Bool {
        guard instruction.opcode == opcode else { return false }
        switch discriminator {
        case .none: return true
        case .offset(let value): return instruction.offset == value
        case .imm(let value): return instruction.imm == value
        case .source(let value): return instruction.source == value
        }
    }
}

/// The instruction table and lookups derived from it.
public enum InstructionSet {
    private typealias Form = InstructionForm

    /// Every instruction form, in `Operation` order (`forms[op.rawValue].operation == op`).
    public static let forms: [InstructionForm] = [
        Form(.add64Imm, opcode: 0x07, .none, "add", .aluImm),
        Form(.add64Reg, opcode: 0x0f, .none, "add", .aluReg),
        Form(.sub64Imm, opcode: 0x17, .none, "sub", .aluImm),
        Form(.sub64Reg, opcode: 0x1f, .none, "sub", .aluReg),
        Form(.mul64Imm, opcode: 0x27, .none, "mul", .aluImm),
        Form(.mul64Reg, opcode: 0x2f, .none, "mul", .aluReg),
        Form(.div64Imm, opcode: 0x37, .offset(0), "div", .aluImm),
        Form(.div64Reg, opcode: 0x3f, .offset(0), "div", .aluReg),
        Form(.sdiv64Imm, opcode: 0x37, .offset(1), "sdiv", .aluImm),
        Form(.sdiv64Reg, opcode: 0x3f, .offset(1), "sdiv", .aluReg),
        Form(.or64Imm, opcode: 0x47, .none, "or", .aluImm),
        Form(.or64Reg, opcode: 0x4f, .none, "or", .aluReg),
        Form(.and64Imm, opcode: 0x57, .none, "and", .aluImm),
        Form(.and64Reg, opcode: 0x5f, .none, "and", .aluReg),
        Form(.lsh64Imm, opcode: 0x67, .none, "lsh", .aluImm),
        Form(.lsh64Reg, opcode: 0x6f, .none, "lsh", .aluReg),
        Form(.rsh64Imm, opcode: 0x77, .none, "rsh", .aluImm),
        Form(.rsh64Reg, opcode: 0x7f, .none, "rsh", .aluReg),
        Form(.mod64Imm, opcode: 0x97, .offset(0), "mod", .aluImm),
        Form(.mod64Reg, opcode: 0x9f, .offset(0), "mod", .aluReg),
        Form(.smod64Imm, opcode: 0x97, .offset(1), "smod", .aluImm),
        Form(.smod64Reg, opcode: 0x9f, .offset(1), "smod", .aluReg),
        Form(.xor64Imm, opcode: 0xa7, .none, "xor", .aluImm),
        Form(.xor64Reg, opcode: 0xaf, .none, "xor", .aluReg),
        Form(.mov64Imm, opcode: 0xb7, .offset(0), "mov", .aluImm),
        Form(.mov64Reg, opcode: 0xbf, .offset(0), "mov", .aluReg),
        Form(.arsh64Imm, opcode: 0xc7, .none, "arsh", .aluImm),
        Form(.arsh64Reg, opcode: 0xcf, .none, "arsh", .aluReg),
        Form(.neg64, opcode: 0x87, .none, "neg", .unary),
        Form(.add32Imm, opcode: 0x04, .none, "add32", .aluImm),
        Form(.add32Reg, opcode: 0x0c, .none, "add32", .aluReg),
        Form(.sub32Imm, opcode: 0x14, .none, "sub32", .aluImm),
        Form(.sub32Reg, opcode: 0x1c, .none, "sub32", .aluReg),
        Form(.mul32Imm, opcode: 0x24, .none, "mul32", .aluImm),
        Form(.mul32Reg, opcode: 0x2c, .none, "mul32", .aluReg),
        Form(.div32Imm, opcode: 0x34, .offset(0), "div32", .aluImm),
        Form(.div32Reg, opcode: 0x3c, .offset(0), "div32", .aluReg),
        Form(.sdiv32Imm, opcode: 0x34, .offset(1), "sdiv32", .aluImm),
        Form(.sdiv32Reg, opcode: 0x3c, .offset(1), "sdiv32", .aluReg),
        Form(.or32Imm, opcode: 0x44, .none, "or32", .aluImm),
        Form(.or32Reg, opcode: 0x4c, .none, "or32", .aluReg),
        Form(.and32Imm, opcode: 0x54, .none, "and32", .aluImm),
        Form(.and32Reg, opcode: 0x5c, .none, "and32", .aluReg),
        Form(.lsh32Imm, opcode: 0x64, .none, "lsh32", .aluImm),
        Form(.lsh32Reg, opcode: 0x6c, .none, "lsh32", .aluReg),
        Form(.rsh32Imm, opcode: 0x74, .none, "rsh32", .aluImm),
        Form(.rsh32Reg, opcode: 0x7c, .none, "rsh32", .aluReg),
        Form(.mod32Imm, opcode: 0x94, .offset(0), "mod32", .aluImm),
        Form(.mod32Reg, opcode: 0x9c, .offset(0), "mod32", .aluReg),
        Form(.smod32Imm, opcode: 0x94, .offset(1), "smod32", .aluImm),
        Form(.smod32Reg, opcode: 0x9c, .offset(1), "smod32", .aluReg),
        Form(.xor32Imm, opcode: 0xa4, .none, "xor32", .aluImm),
        Form(.xor32Reg, opcode: 0xac, .none, "xor32", .aluReg),
        Form(.mov32Imm, opcode: 0xb4, .offset(0), "mov32", .aluImm),
        Form(.mov32Reg, opcode: 0xbc, .offset(0), "mov32", .aluReg),
        Form(.arsh32Imm, opcode: 0xc4, .none, "arsh32", .aluImm),
        Form(.arsh32Reg, opcode: 0xcc, .none, "arsh32", .aluReg),
        Form(.neg32, opcode: 0x84, .none, "neg32", .unary),
        Form(.movsx8to64, opcode: 0xbf, .offset(8), "movsx864", .aluReg),
        Form(.movsx16to64, opcode: 0xbf, .offset(16), "movsx1664", .aluReg),
        Form(.movsx32to64, opcode: 0xbf, .offset(32), "movsx3264", .aluReg),
        Form(.movsx8to32, opcode: 0xbc, .offset(8), "movsx832", .aluReg),
        Form(.movsx16to32, opcode: 0xbc, .offset(16), "movsx1632", .aluReg),
        Form(.le16, opcode: 0xd4, .imm(0x10), "le16", .unary),
        Form(.le32, opcode: 0xd4, .imm(0x20), "le32", .unary),
        Form(.le64, opcode: 0xd4, .imm(0x40), "le64", .unary),
        Form(.be16, opcode: 0xdc, .imm(0x10), "be16", .unary),
        Form(.be32, opcode: 0xdc, .imm(0x20), "be32", .unary),
        Form(.be64, opcode: 0xdc, .imm(0x40), "be64", .unary),
        Form(.bswap16, opcode: 0xd7, .imm(0x10), "bswap16", .unary),
        Form(.bswap32, opcode: 0xd7, .imm(0x20), "bswap32", .unary),
        Form(.bswap64, opcode: 0xd7, .imm(0x40), "bswap64", .unary),
        Form(.load64, opcode: 0x79, .none, "ldxdw", .load),
        Form(.load32, opcode: 0x61, .none, "ldxw", .load),
        Form(.load16, opcode: 0x69, .none, "ldxh", .load),
        Form(.load8, opcode: 0x71, .none, "ldxb", .load),
        Form(.loadSigned32, opcode: 0x81, .none, "ldxsw", .load),
        Form(.loadSigned16, opcode: 0x89, .none, "ldxsh", .load),
        Form(.loadSigned8, opcode: 0x91, .none, "ldxsb", .load),
        Form(.store64Imm, opcode: 0x7a, .none, "stdw", .storeImm),
        Form(.store32Imm, opcode: 0x62, .none, "stw", .storeImm),
        Form(.store16Imm, opcode: 0x6a, .none, "sth", .storeImm),
        Form(.store8Imm, opcode: 0x72, .none, "stb", .storeImm),
        Form(.store64Reg, opcode: 0x7b, .none, "stxdw", .storeReg),
        Form(.store32Reg, opcode: 0x63, .none, "stxw", .storeReg),
        Form(.store16Reg, opcode: 0x6b, .none, "stxh", .storeReg),
        Form(.store8Reg, opcode: 0x73, .none, "stxb", .storeReg),
        Form(.atomicAdd64, opcode: 0xdb, .imm(0x0), "lock add", .atomic),
        Form(.atomicOr64, opcode: 0xdb, .imm(0x40), "lock or", .atomic),
        Form(.atomicAnd64, opcode: 0xdb, .imm(0x50), "lock and", .atomic),
        Form(.atomicXor64, opcode: 0xdb, .imm(0xa0), "lock xor", .atomic),
        Form(.atomicFetchAdd64, opcode: 0xdb, .imm(0x1), "lock fetch add", .atomic),
        Form(.atomicFetchOr64, opcode: 0xdb, .imm(0x41), "lock fetch or", .atomic),
        Form(.atomicFetchAnd64, opcode: 0xdb, .imm(0x51), "lock fetch and", .atomic),
        Form(.atomicFetchXor64, opcode: 0xdb, .imm(0xa1), "lock fetch xor", .atomic),
        Form(.atomicExchange64, opcode: 0xdb, .imm(0xe1), "lock xchg", .atomic),
        Form(.atomicCompareExchange64, opcode: 0xdb, .imm(0xf1), "lock cmpxchg", .atomic),
        Form(.atomicAdd32, opcode: 0xc3, .imm(0x0), "lock add32", .atomic),
        Form(.atomicOr32, opcode: 0xc3, .imm(0x40), "lock or32", .atomic),
        Form(.atomicAnd32, opcode: 0xc3, .imm(0x50), "lock and32", .atomic),
        Form(.atomicXor32, opcode: 0xc3, .imm(0xa0), "lock xor32", .atomic),
        Form(.atomicFetchAdd32, opcode: 0xc3, .imm(0x1), "lock fetch add32", .atomic),
        Form(.atomicFetchOr32, opcode: 0xc3, .imm(0x41), "lock fetch or32", .atomic),
        Form(.atomicFetchAnd32, opcode: 0xc3, .imm(0x51), "lock fetch and32", .atomic),
        Form(.atomicFetchXor32, opcode: 0xc3, .imm(0xa1), "lock fetch xor32", .atomic),
        Form(.atomicExchange32, opcode: 0xc3, .imm(0xe1), "lock xchg32", .atomic),
        Form(.atomicCompareExchange32, opcode: 0xc3, .imm(0xf1), "lock cmpxchg32", .atomic),
        Form(.loadImm64, opcode: 0x18, .none, "lddw", .loadImm64),
        Form(.loadPacketAbsolute32, opcode: 0x20, .none, "ldabsw", .packetAbsolute),
        Form(.loadPacketAbsolute16, opcode: 0x28, .none, "ldabsh", .packetAbsolute),
        Form(.loadPacketAbsolute8, opcode: 0x30, .none, "ldabsb", .packetAbsolute),
        Form(.loadPacketIndirect32, opcode: 0x40, .none, "ldindw", .packetIndirect),
        Form(.loadPacketIndirect16, opcode: 0x48, .none, "ldindh", .packetIndirect),
        Form(.loadPacketIndirect8, opcode: 0x50, .none, "ldindb", .packetIndirect),
        Form(.jump, opcode: 0x05, .none, "ja", .jump),
        Form(.jump32, opcode: 0x06, .none, "ja32", .jump32),
        Form(.jumpEqual64Imm, opcode: 0x15, .none, "jeq", .jumpImm),
        Form(.jumpEqual64Reg, opcode: 0x1d, .none, "jeq", .jumpReg),
        Form(.jumpGreater64Imm, opcode: 0x25, .none, "jgt", .jumpImm),
        Form(.jumpGreater64Reg, opcode: 0x2d, .none, "jgt", .jumpReg),
        Form(.jumpGreaterEqual64Imm, opcode: 0x35, .none, "jge", .jumpImm),
        Form(.jumpGreaterEqual64Reg, opcode: 0x3d, .none, "jge", .jumpReg),
        Form(.jumpSet64Imm, opcode: 0x45, .none, "jset", .jumpImm),
        Form(.jumpSet64Reg, opcode: 0x4d, .none, "jset", .jumpReg),
        Form(.jumpNotEqual64Imm, opcode: 0x55, .none, "jne", .jumpImm),
        Form(.jumpNotEqual64Reg, opcode: 0x5d, .none, "jne", .jumpReg),
        Form(.jumpSignedGreater64Imm, opcode: 0x65, .none, "jsgt", .jumpImm),
        Form(.jumpSignedGreater64Reg, opcode: 0x6d, .none, "jsgt", .jumpReg),
        Form(.jumpSignedGreaterEqual64Imm, opcode: 0x75, .none, "jsge", .jumpImm),
        Form(.jumpSignedGreaterEqual64Reg, opcode: 0x7d, .none, "jsge", .jumpReg),
        Form(.jumpLess64Imm, opcode: 0xa5, .none, "jlt", .jumpImm),
        Form(.jumpLess64Reg, opcode: 0xad, .none, "jlt", .jumpReg),
        Form(.jumpLessEqual64Imm, opcode: 0xb5, .none, "jle", .jumpImm),
        Form(.jumpLessEqual64Reg, opcode: 0xbd, .none, "jle", .jumpReg),
        Form(.jumpSignedLess64Imm, opcode: 0xc5, .none, "jslt", .jumpImm),
        Form(.jumpSignedLess64Reg, opcode: 0xcd, .none, "jslt", .jumpReg),
        Form(.jumpSignedLessEqual64Imm, opcode: 0xd5, .none, "jsle", .jumpImm),
        Form(.jumpSignedLessEqual64Reg, opcode: 0xdd, .none, "jsle", .jumpReg),
        Form(.jumpEqual32Imm, opcode: 0x16, .none, "jeq32", .jumpImm),
        Form(.jumpEqual32Reg, opcode: 0x1e, .none, "jeq32", .jumpReg),
        Form(.jumpGreater32Imm, opcode: 0x26, .none, "jgt32", .jumpImm),
        Form(.jumpGreater32Reg, opcode: 0x2e, .none, "jgt32", .jumpReg),
        Form(.jumpGreaterEqual32Imm, opcode: 0x36, .none, "jge32", .jumpImm),
        Form(.jumpGreaterEqual32Reg, opcode: 0x3e, .none, "jge32", .jumpReg),
        Form(.jumpSet32Imm, opcode: 0x46, .none, "jset32", .jumpImm),
        Form(.jumpSet32Reg, opcode: 0x4e, .none, "jset32", .jumpReg),
        Form(.jumpNotEqual32Imm, opcode: 0x56, .none, "jne32", .jumpImm),
        Form(.jumpNotEqual32Reg, opcode: 0x5e, .none, "jne32", .jumpReg),
        Form(.jumpSignedGreater32Imm, opcode: 0x66, .none, "jsgt32", .jumpImm),
        Form(.jumpSignedGreater32Reg, opcode: 0x6e, .none, "jsgt32", .jumpReg),
        Form(.jumpSignedGreaterEqual32Imm, opcode: 0x76, .none, "jsge32", .jumpImm),
        Form(.jumpSignedGreaterEqual32Reg, opcode: 0x7e, .none, "jsge32", .jumpReg),
        Form(.jumpLess32Imm, opcode: 0xa6, .none, "jlt32", .jumpImm),
        Form(.jumpLess32Reg, opcode: 0xae, .none, "jlt32", .jumpReg),
        Form(.jumpLessEqual32Imm, opcode: 0xb6, .none, "jle32", .jumpImm),
        Form(.jumpLessEqual32Reg, opcode: 0xbe, .none, "jle32", .jumpReg),
        Form(.jumpSignedLess32Imm, opcode: 0xc6, .none, "jslt32", .jumpImm),
        Form(.jumpSignedLess32Reg, opcode: 0xce, .none, "jslt32", .jumpReg),
        Form(.jumpSignedLessEqual32Imm, opcode: 0xd6, .none, "jsle32", .jumpImm),
        Form(.jumpSignedLessEqual32Reg, opcode: 0xde, .none, "jsle32", .jumpReg),
        Form(.callHelper, opcode: 0x85, .source(0x0), "call", .callHelper),
        Form(.callLocal, opcode: 0x85, .source(0x1), "call local", .callLocal),
        Form(.callKernelFunction, opcode: 0x85, .source(0x2), "call runtime", .callHelper),
        Form(.callRegister, opcode: 0x8d, .none, "callx", .callRegister),
        Form(.exit, opcode: 0x95, .none, "exit", .none),
    ]

    /// The forms for each opcode byte.
    private static let formsByOpcode: [[InstructionForm]] = {
        var table = [[InstructionForm]](repeating: [], count: 256)
        for form in forms { table[Int(form.opcode)].append(form) }
        return table
    }()

    /// The table row of an operation.
    public static func form(of operation: Operation) -> InstructionForm { forms[Int(operation.rawValue)] }

    /// The form `instruction` is encoded as, or nil for an unknown encoding.
    public static func form(of instruction: RawInstruction) -> InstructionForm? {
        formsByOpcode[Int(instruction.opcode)].first { $0.matches(instruction) }
    }

    /// Whether any form uses this opcode byte (the encoding may still be unknown for some fields).
    public static func isKnownOpcode(_ opcode: UInt8) -> Bool { !formsByOpcode[Int(opcode)].isEmpty }

    /// Extra spellings the assembler accepts besides a form's own mnemonic, each naming the
    /// operation it stands for. The disassembler always prints the canonical mnemonic.
    public static let mnemonicAliases: [(mnemonic: String, operation: Operation)] = [
        ("swap16", .bswap16), ("swap32", .bswap32), ("swap64", .bswap64),
        // `call %r2` is the bpf_conformance spelling of `callx %r2`.
        ("call", .callRegister),
    ]

    /// Forms by mnemonic (canonical spellings first, then aliases), for the assembler.
    static let formsByMnemonic: [String: [InstructionForm]] = {
        var table = Dictionary(grouping: forms, by: \.mnemonic)
        for alias in mnemonicAliases { table[alias.mnemonic, default: []].append(form(of: alias.operation)) }
        return table
    }()
}
