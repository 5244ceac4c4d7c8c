import Testing
import MimicCore
import MimicMemory

private let int64Min: UInt64 = 0x8000_0000_0000_0000
private let int32Min: UInt64 = 0x8000_0000

/// The 64-bit pattern of a signed value.
private func n(_ value: Int64) -> UInt64 { UInt64(bitPattern: value) }

// MARK: - Test cases

/// One ALU computation: `dst = a; dst op= b` must give `expected`.
///
/// For an immediate form the case also runs as the register form with `b` in R1 (when `b`
/// fits the 32-bit imm field): the immediate is sign-extended, so both must agree.
struct AluCase: Sendable, CustomTestStringConvertible {
    let operation: Operation
    let a: UInt64
    let b: UInt64
    let expected: UInt64

    var testDescription: String {
        "\(operation) 0x\(String(a, radix: 16)), 0x\(String(b, radix: 16)) = 0x\(String(expected, radix: 16))"
    }

    /// The immediate, if `b` fits the sign-extended imm field.
    var imm: Int32? { Int32(exactly: Int64(bitPattern: b)) }
}

/// `dst = a; op dst`.
struct UnaryCase: Sendable, CustomTestStringConvertible {
    let operation: Operation
    let a: UInt64
    let expected: UInt64
    var testDescription: String { "\(operation) 0x\(String(a, radix: 16)) = 0x\(String(expected, radix: 16))" }
}

private func c(_ operation: Operation, _ a: UInt64, _ b: Int64, _ expected: UInt64) -> AluCase {
    AluCase(operation: operation, a: a, b: UInt64(bitPattern: b), expected: expected)
}

private func cu(_ operation: Operation, _ a: UInt64, _ b: UInt64, _ expected: UInt64) -> AluCase {
    AluCase(operation: operation, a: a, b: b, expected: expected)
}

private let alu64Cases: [AluCase] = [
    c(.add64Imm, 1, 2, 3),
    c(.add64Imm, .max, 1, 0),
    c(.add64Imm, 10, -1, 9),
    c(.add64Imm, 0x7FFF_FFFF_FFFF_FFFF, 1, int64Min),
    c(.sub64Imm, 0, 1, .max),
    c(.sub64Imm, 10, -5, 15),
    c(.mul64Imm, 0x1_0000_0001, 3, 0x3_0000_0003),
    c(.mul64Imm, int64Min, 2, 0),
    c(.mul64Imm, 7, -1, n(-7)),
    c(.div64Imm, 100, 7, 14),
    c(.div64Imm, .max, 2, 0x7FFF_FFFF_FFFF_FFFF),
    c(.div64Imm, 100, 0, 0), // division by zero gives 0
    c(.div64Imm, 10, -1, 0), // imm -1 is sign-extended, then unsigned: 10 / UInt64.max
    c(.div64Imm, .max, -1, 1),
    c(.sdiv64Imm, n(-7), 2, n(-3)),
    c(.sdiv64Imm, 7, -2, n(-3)),
    c(.sdiv64Imm, n(-7), -2, 3),
    c(.sdiv64Imm, int64Min, -1, int64Min), // INT64_MIN / -1 wraps
    c(.sdiv64Imm, n(-7), 0, 0),
    c(.sdiv64Imm, int64Min, 1, int64Min),
    c(.mod64Imm, 100, 7, 2),
    c(.mod64Imm, 0xDEAD_BEEF_1234_5678, 0, 0xDEAD_BEEF_1234_5678), // modulo by zero leaves dst
    c(.mod64Imm, 10, -1, 10),
    c(.smod64Imm, n(-7), 2, n(-1)),
    c(.smod64Imm, 7, -2, 1),
    c(.smod64Imm, n(-7), -2, n(-1)),
    c(.smod64Imm, int64Min, -1, 0), // INT64_MIN % -1 is 0
    c(.smod64Imm, n(-7), 0, n(-7)),
    c(.or64Imm, 0xF0, 0x0F, 0xFF),
    c(.or64Imm, 0, -1, .max),
    c(.and64Imm, .max, 0xF0, 0xF0),
    c(.and64Imm, 0x1234_5678_9ABC_DEF0, -1, 0x1234_5678_9ABC_DEF0),
    c(.and64Imm, .max, Int64(Int32.min), 0xFFFF_FFFF_8000_0000),
    c(.xor64Imm, 0xFF, -1, 0xFFFF_FFFF_FFFF_FF00),
    c(.lsh64Imm, 1, 63, int64Min),
    c(.lsh64Imm, 1, 64, 1), // shift counts are masked with 63
    c(.lsh64Imm, 1, 65, 2),
    c(.lsh64Imm, 3, 0, 3),
    c(.rsh64Imm, int64Min, 63, 1),
    c(.rsh64Imm, int64Min, 64, int64Min),
    c(.rsh64Imm, int64Min, 65, 0x4000_0000_0000_0000),
    c(.arsh64Imm, int64Min, 63, .max),
    c(.arsh64Imm, int64Min, 64, int64Min),
    c(.arsh64Imm, int64Min, 65, 0xC000_0000_0000_0000),
    c(.arsh64Imm, 0x4000_0000_0000_0000, 62, 1),
    c(.mov64Imm, 123, -1, .max), // mov sign-extends imm
    c(.mov64Imm, 0, Int64(Int32.min), 0xFFFF_FFFF_8000_0000),
    // Register operands wider than an imm.
    cu(.add64Reg, 0x1_0000_0000, 0xFFFF_FFFF_0000_0000, 0x0000_0000_0000_0000),
    cu(.mul64Reg, 0x1_0000_0000, 0x1_0000_0000, 0),
    cu(.div64Reg, .max, 0x1_0000_0000, 0xFFFF_FFFF),
    cu(.sdiv64Reg, int64Min, .max, int64Min), // INT64_MIN / -1 in a register
    cu(.smod64Reg, int64Min, .max, 0),
    cu(.mod64Reg, 0x1_0000_0005, 0x1_0000_0000, 5),
    cu(.lsh64Reg, 1, 0x1_0000_0001, 2), // only the low 6 bits count
    cu(.rsh64Reg, int64Min, 0xFFFF_FFFF_FFFF_FFFF, 1),
    cu(.arsh64Reg, int64Min, 0x7F, .max),
]

private let alu32Cases: [AluCase] = [
    c(.add32Imm, 0xFFFF_FFFF_0000_0001, 1, 2), // upper half is zeroed
    c(.add32Imm, 0xFFFF_FFFF, 1, 0),
    c(.add32Imm, 5, -1, 4),
    c(.sub32Imm, 0, 1, 0xFFFF_FFFF),
    c(.sub32Imm, 0xAAAA_AAAA_0000_0005, 3, 2),
    c(.mul32Imm, 0x1_0000_0003, 3, 9),
    c(.mul32Imm, int32Min, 2, 0),
    c(.mul32Imm, 7, -1, 0xFFFF_FFF9),
    c(.div32Imm, 0xFFFF_FFFF_0000_0064, 7, 14),
    c(.div32Imm, 100, 0, 0),
    c(.div32Imm, .max, 0, 0),
    c(.div32Imm, 0xFFFF_FFFE, -1, 0), // imm is unsigned 32-bit: / 0xFFFF_FFFF
    c(.div32Imm, 0xFFFF_FFFF, -1, 1),
    c(.sdiv32Imm, int32Min, -1, int32Min), // INT32_MIN / -1 wraps
    c(.sdiv32Imm, 0xFFFF_FFF9, 2, 0xFFFF_FFFD),
    c(.sdiv32Imm, 0x1234_5678_FFFF_FFF9, 2, 0xFFFF_FFFD),
    c(.sdiv32Imm, n(-7), 0, 0),
    c(.sdiv32Imm, int32Min, 1, int32Min),
    c(.sdiv32Imm, 7, -2, 0xFFFF_FFFD),
    c(.mod32Imm, 100, 7, 2),
    c(.mod32Imm, 0xFFFF_FFFF_0000_0064, 7, 2),
    c(.mod32Imm, 0xAAAA_AAAA_0000_0064, 0, 0x64), // by zero: dst truncated to 32 bits
    c(.smod32Imm, int32Min, -1, 0), // INT32_MIN % -1 is 0
    c(.smod32Imm, 0xFFFF_FFF9, 2, 0xFFFF_FFFF),
    c(.smod32Imm, 7, -2, 1),
    c(.smod32Imm, 0xAAAA_AAAA_FFFF_FFF9, 0, 0xFFFF_FFF9),
    c(.or32Imm, 0xFFFF_FFFF_0000_00F0, 0x0F, 0xFF),
    c(.or32Imm, 0, -1, 0xFFFF_FFFF),
    c(.and32Imm, .max, -1, 0xFFFF_FFFF),
    c(.xor32Imm, 0xFFFF_FFFF_0000_00FF, -1, 0xFFFF_FF00),
    c(.lsh32Imm, 1, 31, 0x8000_0000),
    c(.lsh32Imm, 1, 32, 1), // shift counts are masked with 31
    c(.lsh32Imm, 1, 33, 2),
    c(.lsh32Imm, 0xFFFF_FFFF_0000_0001, 1, 2),
    c(.rsh32Imm, 0xFFFF_FFFF_8000_0000, 31, 1),
    c(.rsh32Imm, int32Min, 32, int32Min),
    c(.rsh32Imm, int32Min, 33, 0x4000_0000),
    c(.arsh32Imm, int32Min, 31, 0xFFFF_FFFF), // sign of bit 31, upper half zero
    c(.arsh32Imm, int32Min, 33, 0xC000_0000),
    c(.arsh32Imm, int32Min, 32, int32Min),
    c(.arsh32Imm, 0xFFFF_FFFF_7000_0000, 4, 0x0700_0000),
    c(.arsh32Imm, 0xF000_0000, 4, 0xFF00_0000),
    c(.mov32Imm, .max, -1, 0xFFFF_FFFF),
    c(.mov32Imm, .max, 5, 5),
    cu(.mov32Reg, 0, 0xFFFF_FFFF_1234_5678, 0x1234_5678),
    cu(.add32Reg, 0x1_0000_0001, 0xFFFF_FFFF_0000_0001, 2),
    cu(.div32Reg, 100, 0x1_0000_0000, 0), // divisor's low 32 bits are zero
    cu(.div32Reg, 100, 0x1_0000_0007, 14),
    cu(.mod32Reg, 0xAAAA_AAAA_0000_0064, 0x1_0000_0000, 0x64),
    cu(.sdiv32Reg, int32Min, 0x1234_5678_FFFF_FFFF, int32Min),
    cu(.smod32Reg, int32Min, 0x1234_5678_FFFF_FFFF, 0),
    cu(.lsh32Reg, 1, 0x1_0000_0021, 2), // low 32 bits are 33, masked to 1
    cu(.arsh32Reg, int32Min, 0x3F, 0xFFFF_FFFF),
]

private let movsxCases: [AluCase] = [
    cu(.movsx8to64, 0xDEAD, 0x80, 0xFFFF_FFFF_FFFF_FF80),
    cu(.movsx8to64, 0xDEAD, 0x7F, 0x7F),
    cu(.movsx8to64, 0, 0x1234_5680, 0xFFFF_FFFF_FFFF_FF80),
    cu(.movsx16to64, 0, 0x8000, 0xFFFF_FFFF_FFFF_8000),
    cu(.movsx16to64, 0, 0xABCD_7FFF, 0x7FFF),
    cu(.movsx32to64, 0, 0x8000_0000, 0xFFFF_FFFF_8000_0000),
    cu(.movsx32to64, 0, 0xFFFF_FFFF_7FFF_FFFF, 0x7FFF_FFFF),
    cu(.movsx8to32, .max, 0x80, 0xFFFF_FF80), // sign-extends to 32 bits, zeroes the upper half
    cu(.movsx8to32, .max, 0xFFFF_FFFF_FFFF_FF7F, 0x7F),
    cu(.movsx16to32, 0, 0x8000, 0xFFFF_8000),
    cu(.movsx16to32, 0, 0x1_0000_7FFF, 0x7FFF),
]

private let unaryCases: [UnaryCase] = [
    UnaryCase(operation: .neg64, a: 5, expected: n(-5)),
    UnaryCase(operation: .neg64, a: int64Min, expected: int64Min),
    UnaryCase(operation: .neg64, a: 0, expected: 0),
    UnaryCase(operation: .neg32, a: int32Min, expected: int32Min),
    UnaryCase(operation: .neg32, a: 1, expected: 0xFFFF_FFFF),
    UnaryCase(operation: .neg32, a: 0x1_0000_0000, expected: 0),
    UnaryCase(operation: .neg32, a: 0xFFFF_FFFF_0000_0005, expected: 0xFFFF_FFFB),
    UnaryCase(operation: .le16, a: 0x1122_3344_5566_7788, expected: 0x7788),
    UnaryCase(operation: .le32, a: 0x1122_3344_5566_7788, expected: 0x5566_7788),
    UnaryCase(operation: .le64, a: 0x1122_3344_5566_7788, expected: 0x1122_3344_5566_7788),
    UnaryCase(operation: .be16, a: 0x1122_3344_5566_7788, expected: 0x8877),
    UnaryCase(operation: .be32, a: 0x1122_3344_5566_7788, expected: 0x8877_6655),
    UnaryCase(operation: .be64, a: 0x1122_3344_5566_7788, expected: 0x8877_6655_4433_2211),
    UnaryCase(operation: .bswap16, a: 0x1122_3344_5566_7788, expected: 0x8877),
    UnaryCase(operation: .bswap32, a: 0x1122_3344_5566_7788, expected: 0x8877_6655),
    UnaryCase(operation: .bswap64, a: 0x1122_3344_5566_7788, expected: 0x8877_6655_4433_2211),
]

// MARK: - ALU

@Suite("Instructions: ALU")
struct AluTests {
    /// Runs `lddw r0, a; lddw r1, b; <op>; exit`.
    static func run(_ instruction: RawInstruction, a: UInt64, b: UInt64) throws -> UInt64 {
        try Runner.run(
            Asm.program {
                Asm.lddw(0, a)
                Asm.lddw(1, b)
                instruction
                Asm.exit()
            })
    }

    static func check(_ testCase: AluCase) throws {
        let form = InstructionSet.form(of: testCase.operation)
        switch form.shape {
        case .aluImm:
            if let imm = testCase.imm {
                let result = try run(Asm.alu(testCase.operation, 0, imm: imm), a: testCase.a, b: 0xBAD)
                #expect(result == testCase.expected, "imm form")
            }
            let register = Asm.registerForm(of: testCase.operation)
            let result = try run(Asm.alu(register, 0, src: 1), a: testCase.a, b: testCase.b)
            #expect(result == testCase.expected, "register form \(register)")
        default:
            let result = try run(Asm.alu(testCase.operation, 0, src: 1), a: testCase.a, b: testCase.b)
            #expect(result == testCase.expected)
        }
    }

    @Test(arguments: alu64Cases)
    func alu64(_ testCase: AluCase) throws { try Self.check(testCase) }

    @Test(arguments: alu32Cases)
    func alu32(_ testCase: AluCase) throws { try Self.check(testCase) }

    @Test(arguments: movsxCases)
    func signExtendingMove(_ testCase: AluCase) throws { try Self.check(testCase) }

    @Test(arguments: unaryCases)
    func unary(_ testCase: UnaryCase) throws {
        let result = try Runner.run(
            Asm.program {
                Asm.lddw(0, testCase.a)
                Asm.unary(testCase.operation, 0)
                Asm.exit()
            })
        #expect(result == testCase.expected)
    }

    /// Every ALU operation leaves the other registers alone and works on any register pair.
    @Test func operandsInOtherRegisters() throws {
        let process = try Runner.process(
            Asm.program {
                Asm.mov64(7, imm: 40)
                Asm.mov64(9, imm: 2)
                Asm.add64(7, src: 9)
                Asm.mov64(0, src: 7)
                Asm.alu(.mul64Reg, 9, src: 9)
                Asm.exit()
            })
        #expect(try process.run() == 42)
        #expect(process.registers[9] == 4)
        #expect(process.registers[7] == 42)
        #expect(process.registers[3] == 0)
    }

    /// `dst op= dst` uses the old value for both operands.
    @Test func sameRegisterAsSourceAndDestination() throws {
        #expect(
            try Runner.run(
                Asm.program {
                    Asm.mov64(0, imm: 21)
                    Asm.add64(0, src: 0)
                    Asm.exit()
                }) == 42)
        #expect(
            try Runner.run(
                Asm.program {
                    Asm.lddw(0, 0xFFFF_FFFF_0000_0007)
                    Asm.alu(.sub32Reg, 0, src: 0)
                    Asm.exit()
                }) == 0)
    }
}

// MARK: - Memory

@Suite("Instructions: loads and stores")
struct MemoryInstructionTests {
    static let bytes: [UInt8] = [
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
        0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF, 0x80,
    ]

    struct LoadCase: Sendable, CustomTestStringConvertible {
        let operation: Operation
        let offset: Int16
        let expected: UInt64
        var testDescription: String { "\(operation) [+\(offset)] = 0x\(String(expected, radix: 16))" }
    }

    static let loads: [LoadCase] = [
        LoadCase(operation: .load64, offset: 0, expected: 0x8877_6655_4433_2211),
        LoadCase(operation: .load64, offset: 8, expected: 0x80FF_EEDD_CCBB_AA99),
        LoadCase(operation: .load64, offset: 3, expected: 0xBBAA_9988_7766_5544), // unaligned
        LoadCase(operation: .load32, offset: 4, expected: 0x8877_6655),
        LoadCase(operation: .load32, offset: 1, expected: 0x5544_3322),
        LoadCase(operation: .load16, offset: 2, expected: 0x4433),
        LoadCase(operation: .load16, offset: 14, expected: 0x80FF),
        LoadCase(operation: .load8, offset: 7, expected: 0x88),
        LoadCase(operation: .load8, offset: 15, expected: 0x80),
        LoadCase(operation: .loadSigned32, offset: 4, expected: 0xFFFF_FFFF_8877_6655),
        LoadCase(operation: .loadSigned32, offset: 0, expected: 0x4433_2211),
        LoadCase(operation: .loadSigned16, offset: 6, expected: 0xFFFF_FFFF_FFFF_8877),
        LoadCase(operation: .loadSigned16, offset: 0, expected: 0x2211),
        LoadCase(operation: .loadSigned8, offset: 15, expected: 0xFFFF_FFFF_FFFF_FF80),
        LoadCase(operation: .loadSigned8, offset: 0, expected: 0x11),
    ]

    @Test(arguments: loads)
    func load(_ testCase: LoadCase) throws {
        // [r1 + off]
        let direct = try Runner.run(
            Asm.program {
                Asm.lddw(0, 0xDEAD_BEEF_DEAD_BEEF)
                Asm.load(testCase.operation, 0, 1, off: testCase.offset)
                Asm.exit()
            }, memory: Self.bytes)
        #expect(direct == testCase.expected)
        // [r6 + off - 16] with r6 = r1 + 16: negative offsets.
        let negative = try Runner.run(
            Asm.program {
                Asm.mov64(6, src: 1)
                Asm.add64(6, imm: 16)
                Asm.load(testCase.operation, 0, 6, off: testCase.offset - 16)
                Asm.exit()
            }, memory: Self.bytes)
        #expect(negative == testCase.expected)
    }

    struct StoreCase: Sendable, CustomTestStringConvertible {
        let operation: Operation
        let imm: Int32?
        let written: [UInt8]
        var testDescription: String { "\(operation)" }
    }

    static let stores: [StoreCase] = [
        StoreCase(operation: .store64Imm, imm: -2, written: [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]), // sign-extended
        StoreCase(operation: .store64Imm, imm: 0x1122_3344, written: [0x44, 0x33, 0x22, 0x11, 0, 0, 0, 0]),
        StoreCase(operation: .store32Imm, imm: 0x1122_3344, written: [0x44, 0x33, 0x22, 0x11]),
        StoreCase(operation: .store16Imm, imm: 0x7FFF_1234, written: [0x34, 0x12]),
        StoreCase(operation: .store8Imm, imm: 0x1AB, written: [0xAB]),
        StoreCase(operation: .store64Reg, imm: nil, written: [0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01]),
        StoreCase(operation: .store32Reg, imm: nil, written: [0x08, 0x07, 0x06, 0x05]),
        StoreCase(operation: .store16Reg, imm: nil, written: [0x08, 0x07]),
        StoreCase(operation: .store8Reg, imm: nil, written: [0x08]),
    ]

    @Test(arguments: stores, [Int16(3), 8])
    func store(_ testCase: StoreCase, offset: Int16) throws {
        let process = try Runner.process(
            Asm.program {
                Asm.lddw(2, 0x0102_0304_0506_0708)
                if let imm = testCase.imm {
                    Asm.store(testCase.operation, 1, off: offset, imm: imm)
                } else {
                    Asm.store(testCase.operation, 1, off: offset, src: 2)
                }
                Asm.mov64(0, imm: 0)
                Asm.exit()
            }, memory: [UInt8](repeating: 0xEE, count: 16))
        try process.run()
        var expected = [UInt8](repeating: 0xEE, count: 16)
        expected.replaceSubrange(Int(offset)..<(Int(offset) + testCase.written.count), with: testCase.written)
        #expect(Runner.memoryBytes(of: process) == expected)
    }

    @Test func stackStoreAndLoad() throws {
        let process = try Runner.process(
            Asm.program {
                Asm.lddw(1, 0x1122_3344_5566_7788)
                Asm.store(.store64Reg, 10, off: -8, src: 1)
                Asm.store(.store32Imm, 10, off: -16, imm: -1)
                Asm.store(.store8Imm, 10, off: -512, imm: 0x5A)
                Asm.load(.load64, 0, 10, off: -8)
                Asm.load(.load64, 2, 10, off: -16)
                Asm.load(.load8, 3, 10, off: -512)
                Asm.load(.load16, 4, 10, off: -2)
                Asm.exit()
            })
        #expect(try process.run() == 0x1122_3344_5566_7788)
        #expect(process.registers[2] == 0xFFFF_FFFF, "stw writes 4 bytes; the upper 4 of the slot stay zero")
        #expect(process.registers[3] == 0x5A)
        #expect(process.registers[4] == 0x1122)
        #expect(process.registers[10] == process.stackBase + UInt64(process.stackSize))
    }
}

// MARK: - Atomics

@Suite("Instructions: atomics")
struct AtomicTests {
    enum Kind: Sendable { case add, or, and, xor, exchange, compareExchange }

    struct AtomicCase: Sendable, CustomTestStringConvertible {
        let operation: Operation
        let kind: Kind
        let fetch: Bool
        let wide: Bool
        var testDescription: String { "\(operation)" }
    }

    static let cases: [AtomicCase] = [
        AtomicCase(operation: .atomicAdd64, kind: .add, fetch: false, wide: true),
        AtomicCase(operation: .atomicOr64, kind: .or, fetch: false, wide: true),
        AtomicCase(operation: .atomicAnd64, kind: .and, fetch: false, wide: true),
        AtomicCase(operation: .atomicXor64, kind: .xor, fetch: false, wide: true),
        AtomicCase(operation: .atomicFetchAdd64, kind: .add, fetch: true, wide: true),
        AtomicCase(operation: .atomicFetchOr64, kind: .or, fetch: true, wide: true),
        AtomicCase(operation: .atomicFetchAnd64, kind: .and, fetch: true, wide: true),
        AtomicCase(operation: .atomicFetchXor64, kind: .xor, fetch: true, wide: true),
        AtomicCase(operation: .atomicExchange64, kind: .exchange, fetch: true, wide: true),
        AtomicCase(operation: .atomicCompareExchange64, kind: .compareExchange, fetch: false, wide: true),
        AtomicCase(operation: .atomicAdd32, kind: .add, fetch: false, wide: false),
        AtomicCase(operation: .atomicOr32, kind: .or, fetch: false, wide: false),
        AtomicCase(operation: .atomicAnd32, kind: .and, fetch: false, wide: false),
        AtomicCase(operation: .atomicXor32, kind: .xor, fetch: false, wide: false),
        AtomicCase(operation: .atomicFetchAdd32, kind: .add, fetch: true, wide: false),
        AtomicCase(operation: .atomicFetchOr32, kind: .or, fetch: true, wide: false),
        AtomicCase(operation: .atomicFetchAnd32, kind: .and, fetch: true, wide: false),
        AtomicCase(operation: .atomicFetchXor32, kind: .xor, fetch: true, wide: false),
        AtomicCase(operation: .atomicExchange32, kind: .exchange, fetch: true, wide: false),
        AtomicCase(operation: .atomicCompareExchange32, kind: .compareExchange, fetch: false, wide: false),
    ]

    @Test func everyAtomicFormIsCovered() {
        let atomics = InstructionSet.forms.filter { $0.shape == .atomic }.map(\.operation)
        #expect(Set(atomics) == Set(Self.cases.map(\.operation)))
        #expect(atomics.count == 20)
    }

    static let old: UInt64 = 0x1111_0000_FFFF_FFF0
    static let source: UInt64 = 0x0F0F_0000_0000_0F0F
    static let r0Sentinel: UInt64 = 0x5555_AAAA_5555_AAAA

    /// Runs the atomic on the 8 bytes at offset 8 of a 24-byte buffer; returns R0, R2, memory.
    static func execute(_ operation: Operation, r0: UInt64) throws -> (r0: UInt64, r2: UInt64, memory: [UInt8]) {
        var bytes = [UInt8](repeating: 0xCC, count: 24)
        bytes.replaceSubrange(8..<16, with: leBytes(old))
        let process = try Runner.process(
            Asm.program {
                Asm.lddw(2, source)
                Asm.lddw(0, r0)
                Asm.atomic(operation, 1, off: 8, src: 2)
                Asm.exit()
            }, memory: bytes)
        let result = try process.run()
        return (result, process.registers[2], Runner.memoryBytes(of: process))
    }

    static func apply(_ kind: Kind, _ a: UInt64, _ b: UInt64) -> UInt64 {
        switch kind {
        case .add: a &+ b
        case .or: a | b
        case .and: a & b
        case .xor: a ^ b
        case .exchange, .compareExchange: b
        }
    }

    @Test(arguments: cases.filter { $0.kind != .compareExchange })
    func readModifyWrite(_ testCase: AtomicCase) throws {
        let (r0, r2, memory) = try Self.execute(testCase.operation, r0: Self.r0Sentinel)
        let expectedValue: UInt64
        let expectedFetch: UInt64
        if testCase.wide {
            expectedValue = Self.apply(testCase.kind, Self.old, Self.source)
            expectedFetch = Self.old
        } else {
            // Only the low 4 bytes change; the fetched value is zero-extended.
            let low = UInt32(
                truncatingIfNeeded: Self.apply(
                    testCase.kind, UInt64(UInt32(truncatingIfNeeded: Self.old)),
                    UInt64(UInt32(truncatingIfNeeded: Self.source))))
            expectedValue = (Self.old & 0xFFFF_FFFF_0000_0000) | UInt64(low)
            expectedFetch = Self.old & 0xFFFF_FFFF
        }
        #expect(Array(memory[8..<16]) == leBytes(expectedValue))
        #expect(Array(memory[0..<8]) == [UInt8](repeating: 0xCC, count: 8))
        #expect(Array(memory[16..<24]) == [UInt8](repeating: 0xCC, count: 8))
        #expect(r2 == (testCase.fetch ? expectedFetch : Self.source), "source register")
        #expect(r0 == Self.r0Sentinel, "R0 is untouched")
    }

    @Test(arguments: [true, false], [true, false])
    func compareExchange(wide: Bool, succeeds: Bool) throws {
        let operation: Operation = wide ? .atomicCompareExchange64 : .atomicCompareExchange32
        // 32-bit cmpxchg compares only the low half of R0.
        let matching = wide ? Self.old : (0x1234_5678_0000_0000 | (Self.old & 0xFFFF_FFFF))
        let (r0, r2, memory) = try Self.execute(operation, r0: succeeds ? matching : matching ^ 1)
        let oldValue = wide ? Self.old : Self.old & 0xFFFF_FFFF
        #expect(r0 == oldValue, "R0 receives the old value, zero-extended")
        #expect(r2 == Self.source, "the source register is untouched")
        let expected: UInt64
        if succeeds {
            expected = wide ? Self.source : (Self.old & 0xFFFF_FFFF_0000_0000) | (Self.source & 0xFFFF_FFFF)
        } else {
            expected = Self.old
        }
        #expect(Array(memory[8..<16]) == leBytes(expected))
    }

    @Test func atomicsOnTheStack() throws {
        let result = try Runner.run(
            Asm.program {
                Asm.store(.store64Imm, 10, off: -8, imm: 40)
                Asm.mov64(1, imm: 2)
                Asm.atomic(.atomicAdd64, 10, off: -8, src: 1)
                Asm.mov64(2, imm: 100)
                Asm.atomic(.atomicFetchAdd32, 10, off: -8, src: 2) // r2 = 42
                Asm.load(.load64, 0, 10, off: -8) // 142
                Asm.add64(0, src: 2)
                Asm.exit()
            })
        #expect(result == 184)
    }
}

// MARK: - Jumps

struct JumpCase: Sendable, CustomTestStringConvertible {
    let operation: Operation
    let a: UInt64
    let b: UInt64
    let taken: Bool
    var testDescription: String { "\(operation) 0x\(String(a, radix: 16)), 0x\(String(b, radix: 16)): \(taken)" }
}

private func j(_ operation: Operation, _ a: UInt64, _ b: Int64, _ taken: Bool) -> JumpCase {
    JumpCase(operation: operation, a: a, b: UInt64(bitPattern: b), taken: taken)
}

private let jumpCases: [JumpCase] = [
    j(.jumpEqual64Imm, 5, 5, true),
    j(.jumpEqual64Imm, 5, 6, false),
    j(.jumpEqual64Imm, 0x1_0000_0005, 5, false),
    j(.jumpEqual64Imm, .max, -1, true), // imm is sign-extended
    j(.jumpEqual64Imm, 0xFFFF_FFFF, -1, false),
    j(.jumpEqual32Imm, 0x1_0000_0005, 5, true),
    j(.jumpEqual32Imm, 0xFFFF_FFFF, -1, true),
    j(.jumpEqual32Imm, 5, 6, false),
    j(.jumpNotEqual64Imm, 5, 6, true),
    j(.jumpNotEqual64Imm, 5, 5, false),
    j(.jumpNotEqual64Imm, 0x1_0000_0005, 5, true),
    j(.jumpNotEqual32Imm, 0x1_0000_0005, 5, false),
    j(.jumpNotEqual32Imm, 0x1_0000_0005, 6, true),
    j(.jumpGreater64Imm, .max, 1, true), // unsigned
    j(.jumpGreater64Imm, 1, -1, false),
    j(.jumpGreater64Imm, 5, 5, false),
    j(.jumpGreater64Imm, 0x1_0000_0000, 1, true),
    j(.jumpGreater32Imm, 0x1_0000_0000, 1, false),
    j(.jumpGreater32Imm, 0xFFFF_FFFF, 1, true),
    j(.jumpGreaterEqual64Imm, 5, 5, true),
    j(.jumpGreaterEqual64Imm, 4, 5, false),
    j(.jumpGreaterEqual32Imm, 0x1_0000_0005, 5, true),
    j(.jumpGreaterEqual32Imm, 0x2_0000_0004, 5, false),
    j(.jumpLess64Imm, 1, -1, true),
    j(.jumpLess64Imm, 5, 5, false),
    j(.jumpLess64Imm, 0x1_0000_0000, 1, false),
    j(.jumpLess32Imm, 0x1_0000_0000, 1, true),
    j(.jumpLess32Imm, 0xFFFF_FFFF, 1, false),
    j(.jumpLessEqual64Imm, 5, 5, true),
    j(.jumpLessEqual64Imm, 6, 5, false),
    j(.jumpLessEqual32Imm, 0x1_0000_0005, 5, true),
    j(.jumpLessEqual32Imm, 6, 5, false),
    j(.jumpSet64Imm, 6, 1, false),
    j(.jumpSet64Imm, 6, 2, true),
    j(.jumpSet64Imm, 0x8000_0000_0000_0000, -1, true),
    j(.jumpSet32Imm, 0x1_0000_0006, 2, true),
    j(.jumpSet32Imm, 0x1_0000_0006, 1, false),
    JumpCase(operation: .jumpSet64Reg, a: 0x1_0000_0000, b: 0x1_0000_0000, taken: true),
    JumpCase(operation: .jumpSet32Reg, a: 0x1_0000_0000, b: 0x1_0000_0000, taken: false),
    j(.jumpSignedGreater64Imm, .max, 1, false), // -1 > 1 is false
    j(.jumpSignedGreater64Imm, 1, -1, true),
    j(.jumpSignedGreater64Imm, 0x8000_0000_0000_0000, 0x7FFF_FFFF, false),
    j(.jumpSignedGreater64Imm, 0x8000_0000, 1, true), // positive as 64-bit
    j(.jumpSignedGreater32Imm, 0x8000_0000, 1, false), // INT32_MIN as 32-bit
    j(.jumpSignedGreater32Imm, 0xFFFF_FFFF_0000_0001, 0, true),
    j(.jumpSignedGreaterEqual64Imm, .max, -1, true),
    j(.jumpSignedGreaterEqual64Imm, n(-2), -1, false),
    j(.jumpSignedGreaterEqual32Imm, 0xFFFF_FFFF, -1, true),
    j(.jumpSignedGreaterEqual32Imm, 0xFFFF_FFFE, -1, false),
    j(.jumpSignedLess64Imm, .max, 0, true),
    j(.jumpSignedLess64Imm, 0, -1, false),
    j(.jumpSignedLess64Imm, 0xFFFF_FFFF, 0, false),
    j(.jumpSignedLess32Imm, 0xFFFF_FFFF, 0, true),
    j(.jumpSignedLess32Imm, 0x1_7FFF_FFFF, 0, false),
    j(.jumpSignedLessEqual64Imm, .max, -1, true),
    j(.jumpSignedLessEqual64Imm, 0, -1, false),
    j(.jumpSignedLessEqual32Imm, 0x8000_0000, Int64(Int32.min), true),
    j(.jumpSignedLessEqual32Imm, 0x1_0000_0000, -1, false),
    JumpCase(operation: .jumpGreater64Reg, a: 0x1_0000_0000, b: 0xFFFF_FFFF, taken: true),
    JumpCase(operation: .jumpGreater32Reg, a: 0x1_0000_0000, b: 0xFFFF_FFFF, taken: false),
    JumpCase(operation: .jumpSignedLess64Reg, a: 0x8000_0000_0000_0000, b: 0x7FFF_FFFF_FFFF_FFFF, taken: true),
    JumpCase(operation: .jumpEqual32Reg, a: 0xAAAA_0000_1234_5678, b: 0xBBBB_0000_1234_5678, taken: true),
]

@Suite("Instructions: jumps")
struct JumpTests {
    /// `r1 = a; r2 = b; r0 = 0; if (r1 op b) goto +1; exit; r0 = 1; exit`.
    static func taken(_ instruction: RawInstruction, a: UInt64, b: UInt64) throws -> Bool {
        let result = try Runner.run(
            Asm.program {
                Asm.lddw(1, a)
                Asm.lddw(2, b)
                Asm.mov64(0, imm: 0)
                instruction
                Asm.exit()
                Asm.mov64(0, imm: 1)
                Asm.exit()
            })
        return result == 1
    }

    @Test(arguments: jumpCases)
    func conditional(_ testCase: JumpCase) throws {
        let form = InstructionSet.form(of: testCase.operation)
        if form.shape == .jumpImm {
            if let imm = Int32(exactly: Int64(bitPattern: testCase.b)) {
                #expect(
                    try Self.taken(Asm.jump(testCase.operation, 1, imm: imm, 1), a: testCase.a, b: 0xBAD)
                        == testCase.taken,
                    "imm form")
            }
            let register = Asm.registerForm(of: testCase.operation)
            #expect(
                try Self.taken(Asm.jump(register, 1, src: 2, 1), a: testCase.a, b: testCase.b) == testCase.taken,
                "register form \(register)")
        } else {
            #expect(
                try Self.taken(Asm.jump(testCase.operation, 1, src: 2, 1), a: testCase.a, b: testCase.b)
                    == testCase.taken)
        }
    }

    @Test func everyConditionalJumpIsCovered() {
        let conditional = Set(
            InstructionSet.forms.filter { $0.shape == .jumpImm || $0.shape == .jumpReg }.map(\.operation))
        var covered: Set<Operation> = []
        for testCase in jumpCases {
            covered.insert(testCase.operation)
            if InstructionSet.form(of: testCase.operation).shape == .jumpImm {
                covered.insert(Asm.registerForm(of: testCase.operation))
            }
        }
        #expect(conditional.subtracting(covered).isEmpty, "untested: \(conditional.subtracting(covered))")
    }

    @Test func unconditionalJumps() throws {
        #expect(
            try Runner.run(
                Asm.program {
                    Asm.mov64(0, imm: 1)
                    Asm.ja(1)
                    Asm.mov64(0, imm: 2)
                    Asm.exit()
                }) == 1)
        #expect(
            try Runner.run(
                Asm.program {
                    Asm.mov64(0, imm: 1)
                    Asm.ja32(2)
                    Asm.mov64(0, imm: 2)
                    Asm.mov64(0, imm: 3)
                    Asm.exit()
                }) == 1)
        // Offset 0 falls through.
        #expect(
            try Runner.run(
                Asm.program {
                    Asm.mov64(0, imm: 1)
                    Asm.ja(0)
                    Asm.mov64(0, imm: 2)
                    Asm.exit()
                }) == 2)
    }

    @Test func backwardLoop() throws {
        let process = try Runner.process(
            Asm.program {
                Asm.mov64(0, imm: 0)
                Asm.mov64(1, imm: 10)
                Asm.add64(0, imm: 3) // loop:
                Asm.add64(1, imm: -1)
                Asm.jump(.jumpNotEqual64Imm, 1, imm: 0, -3)
                Asm.exit()
            })
        #expect(try process.run() == 30)
        #expect(process.instructionsExecuted == 2 + 10 * 3 + 1)
    }

    @Test func jumpOverLoadImm64() throws {
        #expect(
            try Runner.run(
                Asm.program {
                    Asm.mov64(0, imm: 1)
                    Asm.ja(2) // skips both slots
                    Asm.lddw(0, 99)
                    Asm.exit()
                }) == 1)
        // Backward over an lddw: offsets count slots.
        #expect(
            try Runner.run(
                Asm.program {
                    Asm.mov64(0, imm: 0)
                    Asm.add64(0, imm: 1) // 1
                    Asm.lddw(2, 5) // 2, 3
                    Asm.jump(.jumpLess64Imm, 0, imm: 3, -4) // 4: back to 1
                    Asm.exit()
                }) == 3)
    }
}

// MARK: - lddw, legacy packet loads, calls

@Suite("Instructions: lddw, packet loads, calls")
struct MiscInstructionTests {
    @Test(
        arguments: [0x1122_3344_5566_7788, 0x8000_0000, 0xFFFF_FFFF_0000_0000, 0, .max, 0x0000_0001_FFFF_FFFF]
            as [UInt64])
    func loadImm64(value: UInt64) throws {
        #expect(
            try Runner.run(
                Asm.program {
                    Asm.mov64(0, imm: -1)
                    Asm.lddw(0, value)
                    Asm.exit()
                }) == value)
    }

    static let packet: [UInt8] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]

    struct PacketCase: Sendable, CustomTestStringConvertible {
        let instruction: RawInstruction
        let index: UInt64 // R3 for ld_ind
        let expected: UInt64
        var testDescription: String {
            "\(instruction) r3=\(Int64(bitPattern: index)) = 0x\(String(expected, radix: 16))"
        }
    }

    static let packetCases: [PacketCase] = [
        PacketCase(instruction: Asm.loadAbsolute(.loadPacketAbsolute32, imm: 0), index: 0, expected: 0x1122_3344),
        PacketCase(instruction: Asm.loadAbsolute(.loadPacketAbsolute32, imm: 4), index: 0, expected: 0x5566_7788),
        PacketCase(instruction: Asm.loadAbsolute(.loadPacketAbsolute16, imm: 2), index: 0, expected: 0x3344),
        PacketCase(instruction: Asm.loadAbsolute(.loadPacketAbsolute16, imm: 6), index: 0, expected: 0x7788),
        PacketCase(instruction: Asm.loadAbsolute(.loadPacketAbsolute8, imm: 7), index: 0, expected: 0x88),
        PacketCase(instruction: Asm.loadIndirect(.loadPacketIndirect32, 3, imm: 2), index: 1, expected: 0x4455_6677),
        PacketCase(instruction: Asm.loadIndirect(.loadPacketIndirect16, 3, imm: 0), index: 6, expected: 0x7788),
        PacketCase(instruction: Asm.loadIndirect(.loadPacketIndirect8, 3, imm: 7), index: 0, expected: 0x88),
        PacketCase(instruction: Asm.loadIndirect(.loadPacketIndirect8, 3, imm: -1), index: 8, expected: 0x88),
        // Out of bounds: the program stops and returns 0.
        PacketCase(instruction: Asm.loadAbsolute(.loadPacketAbsolute32, imm: 5), index: 0, expected: 0),
        PacketCase(instruction: Asm.loadAbsolute(.loadPacketAbsolute16, imm: 7), index: 0, expected: 0),
        PacketCase(instruction: Asm.loadAbsolute(.loadPacketAbsolute8, imm: 8), index: 0, expected: 0),
        PacketCase(instruction: Asm.loadAbsolute(.loadPacketAbsolute8, imm: -1), index: 0, expected: 0),
        PacketCase(instruction: Asm.loadAbsolute(.loadPacketAbsolute32, imm: Int32.max), index: 0, expected: 0),
        PacketCase(instruction: Asm.loadIndirect(.loadPacketIndirect8, 3, imm: 0), index: 8, expected: 0),
        PacketCase(instruction: Asm.loadIndirect(.loadPacketIndirect8, 3, imm: 0), index: 0xFFFF_FFFF, expected: 0),
        PacketCase(instruction: Asm.loadIndirect(.loadPacketIndirect32, 3, imm: 4), index: 1, expected: 0),
        PacketCase(
            instruction: Asm.loadIndirect(.loadPacketIndirect32, 3, imm: Int32.max), index: 0x7FFF_FFFF, expected: 0),
    ]

    @Test(arguments: packetCases)
    func legacyPacketLoad(_ testCase: PacketCase) throws {
        let code = Asm.program {
            Asm.lddw(0, 0xDEAD_BEEF_DEAD_BEEF)
            Asm.lddw(3, testCase.index)
            testCase.instruction
            Asm.mov64(4, imm: 1) // only reached when the load succeeded
            Asm.exit()
        }
        let run = try Runner.process(code, memory: Self.packet)
        let result = try run.run()
        #expect(result == testCase.expected)
        if testCase.expected == 0 {
            #expect(run.registers[4] == 0, "an out-of-bounds load stops the program")
            #expect(run.state == .exited(0))
        } else {
            #expect(run.registers[4] == 1)
        }
    }

    @Test func localCallPreservesCalleeSavedRegistersAndGivesAFreshFrame() throws {
        let code = Asm.program {
            Asm.mov64(6, imm: 6) // 0
            Asm.mov64(7, imm: 7)
            Asm.mov64(8, imm: 8)
            Asm.mov64(9, imm: 9)
            Asm.store(.store64Imm, 10, off: -8, imm: 0x55) // 4
            Asm.callLocal(8) // 5 -> 14
            Asm.mov64(3, src: 10) // 6
            Asm.sub64(3, src: 0) // r3 = caller r10 - callee r10
            Asm.load(.load64, 4, 10, off: -8) // 8: the caller's slot is intact
            Asm.mov64(0, src: 6) // 9
            Asm.add64(0, src: 7)
            Asm.add64(0, src: 8)
            Asm.add64(0, src: 9)
            Asm.exit() // 13
            // function at 14
            Asm.mov64(6, imm: 100)
            Asm.mov64(7, imm: 100)
            Asm.mov64(8, imm: 100)
            Asm.mov64(9, imm: 100)
            Asm.store(.store64Imm, 10, off: -8, imm: 0x66)
            Asm.load(.load64, 5, 10, off: -8)
            Asm.mov64(0, src: 10)
            Asm.exit()
        }
        let process = try Runner.process(code)
        let top = process.stackBase + UInt64(process.stackSize)
        #expect(try process.run() == 30)
        #expect(process.registers[3] == 512)
        #expect(process.registers[4] == 0x55)
        #expect(process.registers[5] == 0x66, "the callee wrote its own frame")
        #expect(process.registers[10] == top)
        #expect(process.callStack.isEmpty)
        #expect(try process.memory.load(top - 512 - 8, size: 8) == 0x66)
        #expect(try process.memory.load(top - 8, size: 8) == 0x55)
    }

    @Test func nestedCallsAndArguments() throws {
        // f(x) = g(x) + 1; g(x) = x * 2; main: r0 = f(20)
        let result = try Runner.run(
            Asm.program {
                Asm.mov64(1, imm: 20) // 0
                Asm.callLocal(1) // 1 -> 3
                Asm.exit() // 2
                Asm.callLocal(2) // 3 f -> 6
                Asm.add64(0, imm: 1) // 4
                Asm.exit() // 5
                Asm.mov64(0, src: 1) // 6 g
                Asm.alu(.mul64Imm, 0, imm: 2)
                Asm.exit()
            })
        #expect(result == 41)
    }

    @Test(arguments: [6, 7])
    func callDepthLimit(nested: Int) throws {
        // f: if r1 == 0 return; r1 -= 1; f(); return. main calls f with r1 = nested.
        let code = Asm.program {
            Asm.mov64(1, imm: Int32(nested)) // 0
            Asm.callLocal(1) // 1 -> 3
            Asm.exit() // 2
            Asm.jump(.jumpEqual64Imm, 1, imm: 0, 2) // 3 f
            Asm.add64(1, imm: -1)
            Asm.callLocal(-3) // 5 -> 3
            Asm.exit() // 6
        }
        // Frames: main + (nested + 1) calls of f. The default limit is 8 frames.
        let process = try Runner.process(code)
        if nested + 2 <= 8 {
            #expect(try process.run() == 0)
            #expect(process.registers[1] == 0)
        } else {
            let error = #expect(throws: ExecutionError.self) { try process.run() }
            #expect(error?.kind == .callDepthExceeded(limit: 8))
            #expect(error?.pc == 5)
        }
    }

    @Test func callxToALocalFunction() throws {
        let result = try Runner.run(
            Asm.program {
                Asm.lddw(2, 5, pseudo: LoadImm64Kind.function.rawValue) // 0, 1: function at 0 + 1 + 5 = 6, as the kernel counts
                Asm.mov64(6, imm: 5) // 2
                Asm.callx(2) // 3
                Asm.add64(0, src: 6) // 4
                Asm.exit() // 5
                Asm.mov64(6, imm: 1000) // 6
                Asm.mov64(0, imm: 37)
                Asm.exit()
            })
        #expect(result == 42)
    }

    @Test func helperCalls() throws {
        let emulator = ConformanceEmulator()
        #expect(
            try Runner.run(
                Asm.program {
                    Asm.mov64(1, imm: 1)
                    Asm.mov64(2, imm: 2)
                    Asm.mov64(3, imm: 3)
                    Asm.mov64(4, imm: 4)
                    Asm.mov64(5, imm: 5)
                    Asm.call(0) // gather_bytes
                    Asm.exit()
                }, emulator: emulator) == 0x01_0203_0405)
        // callx with a helper id in a register.
        #expect(
            try Runner.run(
                Asm.program {
                    Asm.mov64(1, imm: 144)
                    Asm.mov64(8, imm: 3)
                    Asm.callx(8) // sqrti
                    Asm.exit()
                }, emulator: emulator) == 12)
        // unwind(0) stops the program at once with R0 = 0.
        let process = try Runner.process(
            Asm.program {
                Asm.mov64(1, imm: 0)
                Asm.call(5)
                Asm.mov64(0, imm: 99)
                Asm.exit()
            }, emulator: emulator)
        #expect(try process.run() == 0)
        #expect(process.instructionsExecuted == 2)
    }
}

@Suite("Instructions: encoding")
struct EncodingTests {
    /// The DSL encodes every form so that the table decodes it back to the same operation.
    @Test func everyFormRoundTrips() throws {
        for form in InstructionSet.forms {
            let instruction = Asm.op(form.operation, dst: 1, src: 2)
            let decoded = try #require(InstructionSet.form(of: instruction), "\(form.operation)")
            #expect(decoded.operation == form.operation)
            let bytes = RawInstruction.encode([instruction])
            #expect(try RawInstruction.decode(bytes) == [instruction])
        }
    }

    @Test func encodingIsLittleEndian() {
        let instruction = RawInstruction(opcode: 0xb7, destination: 3, source: 5, offset: -2, imm: 0x1122_3344)
        #expect(instruction.bytes == [0xb7, 0x53, 0xFE, 0xFF, 0x44, 0x33, 0x22, 0x11])
        #expect(RawInstruction(bytes: instruction.bytes) == instruction)
    }
}
