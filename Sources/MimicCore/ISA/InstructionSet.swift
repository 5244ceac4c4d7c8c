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

    init(
        _ operation: Operation, opcode: UInt8, _ discriminator: Discriminator, _ mnemonic: String, _ shape: OperandShape
    ) {
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
    /// Every instruction form, in `Operation` order (`forms[op.rawValue].operation == op`),
    /// derived from `Operation.form`: each operation has exactly one row.
    public static let forms: [InstructionForm] = Operation.allCases.map(\.form)

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

extension Operation {
    /// This operation's row of the instruction table. The `switch` is the table: the compiler
    /// makes sure every operation has exactly one row.
    public var form: InstructionForm {
        return switch self {
        case .add64Imm: InstructionForm(self, opcode: 0x07, .none, "add", .aluImm)
        case .add64Reg: InstructionForm(self, opcode: 0x0f, .none, "add", .aluReg)
        case .sub64Imm: InstructionForm(self, opcode: 0x17, .none, "sub", .aluImm)
        case .sub64Reg: InstructionForm(self, opcode: 0x1f, .none, "sub", .aluReg)
        case .mul64Imm: InstructionForm(self, opcode: 0x27, .none, "mul", .aluImm)
        case .mul64Reg: InstructionForm(self, opcode: 0x2f, .none, "mul", .aluReg)
        case .div64Imm: InstructionForm(self, opcode: 0x37, .offset(0), "div", .aluImm)
        case .div64Reg: InstructionForm(self, opcode: 0x3f, .offset(0), "div", .aluReg)
        case .sdiv64Imm: InstructionForm(self, opcode: 0x37, .offset(1), "sdiv", .aluImm)
        case .sdiv64Reg: InstructionForm(self, opcode: 0x3f, .offset(1), "sdiv", .aluReg)
        case .or64Imm: InstructionForm(self, opcode: 0x47, .none, "or", .aluImm)
        case .or64Reg: InstructionForm(self, opcode: 0x4f, .none, "or", .aluReg)
        case .and64Imm: InstructionForm(self, opcode: 0x57, .none, "and", .aluImm)
        case .and64Reg: InstructionForm(self, opcode: 0x5f, .none, "and", .aluReg)
        case .lsh64Imm: InstructionForm(self, opcode: 0x67, .none, "lsh", .aluImm)
        case .lsh64Reg: InstructionForm(self, opcode: 0x6f, .none, "lsh", .aluReg)
        case .rsh64Imm: InstructionForm(self, opcode: 0x77, .none, "rsh", .aluImm)
        case .rsh64Reg: InstructionForm(self, opcode: 0x7f, .none, "rsh", .aluReg)
        case .mod64Imm: InstructionForm(self, opcode: 0x97, .offset(0), "mod", .aluImm)
        case .mod64Reg: InstructionForm(self, opcode: 0x9f, .offset(0), "mod", .aluReg)
        case .smod64Imm: InstructionForm(self, opcode: 0x97, .offset(1), "smod", .aluImm)
        case .smod64Reg: InstructionForm(self, opcode: 0x9f, .offset(1), "smod", .aluReg)
        case .xor64Imm: InstructionForm(self, opcode: 0xa7, .none, "xor", .aluImm)
        case .xor64Reg: InstructionForm(self, opcode: 0xaf, .none, "xor", .aluReg)
        case .mov64Imm: InstructionForm(self, opcode: 0xb7, .offset(0), "mov", .aluImm)
        case .mov64Reg: InstructionForm(self, opcode: 0xbf, .offset(0), "mov", .aluReg)
        case .arsh64Imm: InstructionForm(self, opcode: 0xc7, .none, "arsh", .aluImm)
        case .arsh64Reg: InstructionForm(self, opcode: 0xcf, .none, "arsh", .aluReg)
        case .neg64: InstructionForm(self, opcode: 0x87, .none, "neg", .unary)
        case .add32Imm: InstructionForm(self, opcode: 0x04, .none, "add32", .aluImm)
        case .add32Reg: InstructionForm(self, opcode: 0x0c, .none, "add32", .aluReg)
        case .sub32Imm: InstructionForm(self, opcode: 0x14, .none, "sub32", .aluImm)
        case .sub32Reg: InstructionForm(self, opcode: 0x1c, .none, "sub32", .aluReg)
        case .mul32Imm: InstructionForm(self, opcode: 0x24, .none, "mul32", .aluImm)
        case .mul32Reg: InstructionForm(self, opcode: 0x2c, .none, "mul32", .aluReg)
        case .div32Imm: InstructionForm(self, opcode: 0x34, .offset(0), "div32", .aluImm)
        case .div32Reg: InstructionForm(self, opcode: 0x3c, .offset(0), "div32", .aluReg)
        case .sdiv32Imm: InstructionForm(self, opcode: 0x34, .offset(1), "sdiv32", .aluImm)
        case .sdiv32Reg: InstructionForm(self, opcode: 0x3c, .offset(1), "sdiv32", .aluReg)
        case .or32Imm: InstructionForm(self, opcode: 0x44, .none, "or32", .aluImm)
        case .or32Reg: InstructionForm(self, opcode: 0x4c, .none, "or32", .aluReg)
        case .and32Imm: InstructionForm(self, opcode: 0x54, .none, "and32", .aluImm)
        case .and32Reg: InstructionForm(self, opcode: 0x5c, .none, "and32", .aluReg)
        case .lsh32Imm: InstructionForm(self, opcode: 0x64, .none, "lsh32", .aluImm)
        case .lsh32Reg: InstructionForm(self, opcode: 0x6c, .none, "lsh32", .aluReg)
        case .rsh32Imm: InstructionForm(self, opcode: 0x74, .none, "rsh32", .aluImm)
        case .rsh32Reg: InstructionForm(self, opcode: 0x7c, .none, "rsh32", .aluReg)
        case .mod32Imm: InstructionForm(self, opcode: 0x94, .offset(0), "mod32", .aluImm)
        case .mod32Reg: InstructionForm(self, opcode: 0x9c, .offset(0), "mod32", .aluReg)
        case .smod32Imm: InstructionForm(self, opcode: 0x94, .offset(1), "smod32", .aluImm)
        case .smod32Reg: InstructionForm(self, opcode: 0x9c, .offset(1), "smod32", .aluReg)
        case .xor32Imm: InstructionForm(self, opcode: 0xa4, .none, "xor32", .aluImm)
        case .xor32Reg: InstructionForm(self, opcode: 0xac, .none, "xor32", .aluReg)
        case .mov32Imm: InstructionForm(self, opcode: 0xb4, .offset(0), "mov32", .aluImm)
        case .mov32Reg: InstructionForm(self, opcode: 0xbc, .offset(0), "mov32", .aluReg)
        case .arsh32Imm: InstructionForm(self, opcode: 0xc4, .none, "arsh32", .aluImm)
        case .arsh32Reg: InstructionForm(self, opcode: 0xcc, .none, "arsh32", .aluReg)
        case .neg32: InstructionForm(self, opcode: 0x84, .none, "neg32", .unary)
        case .movsx8to64: InstructionForm(self, opcode: 0xbf, .offset(8), "movsx864", .aluReg)
        case .movsx16to64: InstructionForm(self, opcode: 0xbf, .offset(16), "movsx1664", .aluReg)
        case .movsx32to64: InstructionForm(self, opcode: 0xbf, .offset(32), "movsx3264", .aluReg)
        case .movsx8to32: InstructionForm(self, opcode: 0xbc, .offset(8), "movsx832", .aluReg)
        case .movsx16to32: InstructionForm(self, opcode: 0xbc, .offset(16), "movsx1632", .aluReg)
        case .le16: InstructionForm(self, opcode: 0xd4, .imm(0x10), "le16", .unary)
        case .le32: InstructionForm(self, opcode: 0xd4, .imm(0x20), "le32", .unary)
        case .le64: InstructionForm(self, opcode: 0xd4, .imm(0x40), "le64", .unary)
        case .be16: InstructionForm(self, opcode: 0xdc, .imm(0x10), "be16", .unary)
        case .be32: InstructionForm(self, opcode: 0xdc, .imm(0x20), "be32", .unary)
        case .be64: InstructionForm(self, opcode: 0xdc, .imm(0x40), "be64", .unary)
        case .bswap16: InstructionForm(self, opcode: 0xd7, .imm(0x10), "bswap16", .unary)
        case .bswap32: InstructionForm(self, opcode: 0xd7, .imm(0x20), "bswap32", .unary)
        case .bswap64: InstructionForm(self, opcode: 0xd7, .imm(0x40), "bswap64", .unary)
        case .load64: InstructionForm(self, opcode: 0x79, .none, "ldxdw", .load)
        case .load32: InstructionForm(self, opcode: 0x61, .none, "ldxw", .load)
        case .load16: InstructionForm(self, opcode: 0x69, .none, "ldxh", .load)
        case .load8: InstructionForm(self, opcode: 0x71, .none, "ldxb", .load)
        case .loadSigned32: InstructionForm(self, opcode: 0x81, .none, "ldxsw", .load)
        case .loadSigned16: InstructionForm(self, opcode: 0x89, .none, "ldxsh", .load)
        case .loadSigned8: InstructionForm(self, opcode: 0x91, .none, "ldxsb", .load)
        case .store64Imm: InstructionForm(self, opcode: 0x7a, .none, "stdw", .storeImm)
        case .store32Imm: InstructionForm(self, opcode: 0x62, .none, "stw", .storeImm)
        case .store16Imm: InstructionForm(self, opcode: 0x6a, .none, "sth", .storeImm)
        case .store8Imm: InstructionForm(self, opcode: 0x72, .none, "stb", .storeImm)
        case .store64Reg: InstructionForm(self, opcode: 0x7b, .none, "stxdw", .storeReg)
        case .store32Reg: InstructionForm(self, opcode: 0x63, .none, "stxw", .storeReg)
        case .store16Reg: InstructionForm(self, opcode: 0x6b, .none, "stxh", .storeReg)
        case .store8Reg: InstructionForm(self, opcode: 0x73, .none, "stxb", .storeReg)
        case .atomicAdd64: InstructionForm(self, opcode: 0xdb, .imm(0x0), "lock add", .atomic)
        case .atomicOr64: InstructionForm(self, opcode: 0xdb, .imm(0x40), "lock or", .atomic)
        case .atomicAnd64: InstructionForm(self, opcode: 0xdb, .imm(0x50), "lock and", .atomic)
        case .atomicXor64: InstructionForm(self, opcode: 0xdb, .imm(0xa0), "lock xor", .atomic)
        case .atomicFetchAdd64: InstructionForm(self, opcode: 0xdb, .imm(0x1), "lock fetch add", .atomic)
        case .atomicFetchOr64: InstructionForm(self, opcode: 0xdb, .imm(0x41), "lock fetch or", .atomic)
        case .atomicFetchAnd64: InstructionForm(self, opcode: 0xdb, .imm(0x51), "lock fetch and", .atomic)
        case .atomicFetchXor64: InstructionForm(self, opcode: 0xdb, .imm(0xa1), "lock fetch xor", .atomic)
        case .atomicExchange64: InstructionForm(self, opcode: 0xdb, .imm(0xe1), "lock xchg", .atomic)
        case .atomicCompareExchange64: InstructionForm(self, opcode: 0xdb, .imm(0xf1), "lock cmpxchg", .atomic)
        case .atomicAdd32: InstructionForm(self, opcode: 0xc3, .imm(0x0), "lock add32", .atomic)
        case .atomicOr32: InstructionForm(self, opcode: 0xc3, .imm(0x40), "lock or32", .atomic)
        case .atomicAnd32: InstructionForm(self, opcode: 0xc3, .imm(0x50), "lock and32", .atomic)
        case .atomicXor32: InstructionForm(self, opcode: 0xc3, .imm(0xa0), "lock xor32", .atomic)
        case .atomicFetchAdd32: InstructionForm(self, opcode: 0xc3, .imm(0x1), "lock fetch add32", .atomic)
        case .atomicFetchOr32: InstructionForm(self, opcode: 0xc3, .imm(0x41), "lock fetch or32", .atomic)
        case .atomicFetchAnd32: InstructionForm(self, opcode: 0xc3, .imm(0x51), "lock fetch and32", .atomic)
        case .atomicFetchXor32: InstructionForm(self, opcode: 0xc3, .imm(0xa1), "lock fetch xor32", .atomic)
        case .atomicExchange32: InstructionForm(self, opcode: 0xc3, .imm(0xe1), "lock xchg32", .atomic)
        case .atomicCompareExchange32: InstructionForm(self, opcode: 0xc3, .imm(0xf1), "lock cmpxchg32", .atomic)
        case .loadImm64: InstructionForm(self, opcode: 0x18, .none, "lddw", .loadImm64)
        case .loadPacketAbsolute32: InstructionForm(self, opcode: 0x20, .none, "ldabsw", .packetAbsolute)
        case .loadPacketAbsolute16: InstructionForm(self, opcode: 0x28, .none, "ldabsh", .packetAbsolute)
        case .loadPacketAbsolute8: InstructionForm(self, opcode: 0x30, .none, "ldabsb", .packetAbsolute)
        case .loadPacketIndirect32: InstructionForm(self, opcode: 0x40, .none, "ldindw", .packetIndirect)
        case .loadPacketIndirect16: InstructionForm(self, opcode: 0x48, .none, "ldindh", .packetIndirect)
        case .loadPacketIndirect8: InstructionForm(self, opcode: 0x50, .none, "ldindb", .packetIndirect)
        case .jump: InstructionForm(self, opcode: 0x05, .none, "ja", .jump)
        case .jump32: InstructionForm(self, opcode: 0x06, .none, "ja32", .jump32)
        case .jumpEqual64Imm: InstructionForm(self, opcode: 0x15, .none, "jeq", .jumpImm)
        case .jumpEqual64Reg: InstructionForm(self, opcode: 0x1d, .none, "jeq", .jumpReg)
        case .jumpGreater64Imm: InstructionForm(self, opcode: 0x25, .none, "jgt", .jumpImm)
        case .jumpGreater64Reg: InstructionForm(self, opcode: 0x2d, .none, "jgt", .jumpReg)
        case .jumpGreaterEqual64Imm: InstructionForm(self, opcode: 0x35, .none, "jge", .jumpImm)
        case .jumpGreaterEqual64Reg: InstructionForm(self, opcode: 0x3d, .none, "jge", .jumpReg)
        case .jumpSet64Imm: InstructionForm(self, opcode: 0x45, .none, "jset", .jumpImm)
        case .jumpSet64Reg: InstructionForm(self, opcode: 0x4d, .none, "jset", .jumpReg)
        case .jumpNotEqual64Imm: InstructionForm(self, opcode: 0x55, .none, "jne", .jumpImm)
        case .jumpNotEqual64Reg: InstructionForm(self, opcode: 0x5d, .none, "jne", .jumpReg)
        case .jumpSignedGreater64Imm: InstructionForm(self, opcode: 0x65, .none, "jsgt", .jumpImm)
        case .jumpSignedGreater64Reg: InstructionForm(self, opcode: 0x6d, .none, "jsgt", .jumpReg)
        case .jumpSignedGreaterEqual64Imm: InstructionForm(self, opcode: 0x75, .none, "jsge", .jumpImm)
        case .jumpSignedGreaterEqual64Reg: InstructionForm(self, opcode: 0x7d, .none, "jsge", .jumpReg)
        case .jumpLess64Imm: InstructionForm(self, opcode: 0xa5, .none, "jlt", .jumpImm)
        case .jumpLess64Reg: InstructionForm(self, opcode: 0xad, .none, "jlt", .jumpReg)
        case .jumpLessEqual64Imm: InstructionForm(self, opcode: 0xb5, .none, "jle", .jumpImm)
        case .jumpLessEqual64Reg: InstructionForm(self, opcode: 0xbd, .none, "jle", .jumpReg)
        case .jumpSignedLess64Imm: InstructionForm(self, opcode: 0xc5, .none, "jslt", .jumpImm)
        case .jumpSignedLess64Reg: InstructionForm(self, opcode: 0xcd, .none, "jslt", .jumpReg)
        case .jumpSignedLessEqual64Imm: InstructionForm(self, opcode: 0xd5, .none, "jsle", .jumpImm)
        case .jumpSignedLessEqual64Reg: InstructionForm(self, opcode: 0xdd, .none, "jsle", .jumpReg)
        case .jumpEqual32Imm: InstructionForm(self, opcode: 0x16, .none, "jeq32", .jumpImm)
        case .jumpEqual32Reg: InstructionForm(self, opcode: 0x1e, .none, "jeq32", .jumpReg)
        case .jumpGreater32Imm: InstructionForm(self, opcode: 0x26, .none, "jgt32", .jumpImm)
        case .jumpGreater32Reg: InstructionForm(self, opcode: 0x2e, .none, "jgt32", .jumpReg)
        case .jumpGreaterEqual32Imm: InstructionForm(self, opcode: 0x36, .none, "jge32", .jumpImm)
        case .jumpGreaterEqual32Reg: InstructionForm(self, opcode: 0x3e, .none, "jge32", .jumpReg)
        case .jumpSet32Imm: InstructionForm(self, opcode: 0x46, .none, "jset32", .jumpImm)
        case .jumpSet32Reg: InstructionForm(self, opcode: 0x4e, .none, "jset32", .jumpReg)
        case .jumpNotEqual32Imm: InstructionForm(self, opcode: 0x56, .none, "jne32", .jumpImm)
        case .jumpNotEqual32Reg: InstructionForm(self, opcode: 0x5e, .none, "jne32", .jumpReg)
        case .jumpSignedGreater32Imm: InstructionForm(self, opcode: 0x66, .none, "jsgt32", .jumpImm)
        case .jumpSignedGreater32Reg: InstructionForm(self, opcode: 0x6e, .none, "jsgt32", .jumpReg)
        case .jumpSignedGreaterEqual32Imm: InstructionForm(self, opcode: 0x76, .none, "jsge32", .jumpImm)
        case .jumpSignedGreaterEqual32Reg: InstructionForm(self, opcode: 0x7e, .none, "jsge32", .jumpReg)
        case .jumpLess32Imm: InstructionForm(self, opcode: 0xa6, .none, "jlt32", .jumpImm)
        case .jumpLess32Reg: InstructionForm(self, opcode: 0xae, .none, "jlt32", .jumpReg)
        case .jumpLessEqual32Imm: InstructionForm(self, opcode: 0xb6, .none, "jle32", .jumpImm)
        case .jumpLessEqual32Reg: InstructionForm(self, opcode: 0xbe, .none, "jle32", .jumpReg)
        case .jumpSignedLess32Imm: InstructionForm(self, opcode: 0xc6, .none, "jslt32", .jumpImm)
        case .jumpSignedLess32Reg: InstructionForm(self, opcode: 0xce, .none, "jslt32", .jumpReg)
        case .jumpSignedLessEqual32Imm: InstructionForm(self, opcode: 0xd6, .none, "jsle32", .jumpImm)
        case .jumpSignedLessEqual32Reg: InstructionForm(self, opcode: 0xde, .none, "jsle32", .jumpReg)
        case .callHelper: InstructionForm(self, opcode: 0x85, .source(0x0), "call", .callHelper)
        case .callLocal: InstructionForm(self, opcode: 0x85, .source(0x1), "call local", .callLocal)
        case .callKernelFunction: InstructionForm(self, opcode: 0x85, .source(0x2), "call runtime", .callHelper)
        case .callRegister: InstructionForm(self, opcode: 0x8d, .none, "callx", .callRegister)
        case .exit: InstructionForm(self, opcode: 0x95, .none, "exit", .none)
        }
    }
}
