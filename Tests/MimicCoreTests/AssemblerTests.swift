import Foundation
import Testing
@testable import MimicCore
import MimicTestSupport

// MARK: - Conformance vectors

@Suite("Assembler: bpf_conformance vectors")
struct AssemblerConformanceTests {
    // External data (../shared): skipped with a message when absent, a failure when required (CI).
    @Test(
        "the conformance directory holds the vectors",
        .enabled(if: ExternalTestData.runConformance, Comment(rawValue: ExternalTestData.conformanceSkipMessage)))
    func vectorsArePresent() throws {
        let vectors = try ConformanceVector.all()
        #expect(vectors.count > 300, "found \(vectors.count) vectors in \(TestPaths.conformanceDirectory.path)")
        #expect(vectors.allSatisfy { $0.assembly != nil && $0.expectedResult != nil })
        let memoryLength = vectors.first { $0.name == "mem-len" }
        #expect(memoryLength?.memory == [0, 0, 0, 1, 0, 0, 0, 2])
        #expect(memoryLength?.hasSection("no register offset") == true)
        #expect(vectors.first { $0.name == "subnet" }?.otherSections["c"]?.contains("uint64_t entry") == true)
    }

    @Test(
        "assembles, matches -- raw, and round-trips through the disassembler",
        .enabled(if: ExternalTestData.conformanceAvailable, Comment(rawValue: ExternalTestData.conformanceSkipMessage)),
        arguments: ExternalTestData.conformanceAvailable ? try ConformanceVector.all() : [])
    func vectorRoundTrip(_ vector: ConformanceVector) throws {
        let program = try Assembler.assemble(try #require(vector.assembly))
        #expect(!program.isEmpty)
        if let raw = vector.rawInstructions {
            #expect(program == raw)
        }
        let listing = Disassembler.listing(program)
        #expect(!listing.contains(".invalid"), "\(listing)")
        #expect(try Assembler.assemble(listing) == program, "\(listing)")
        // The per-instruction text (relative offsets) round-trips one instruction at a time.
        var slot = 0
        while slot < program.count {
            let next = slot + 1 < program.count ? program[slot + 1] : nil
            let text = Disassembler.text(of: program[slot], next: next)
            let reassembled = try Assembler.assemble(text)
            #expect(Array(program[slot..<(slot + reassembled.count)]) == reassembled, "\(text)")
            slot += max(reassembled.count, 1)
        }
    }
}

// MARK: - Every table form

@Suite("Assembler: every instruction form")
struct AssemblerFormTests {
    /// A sample encoding of `form` with distinctive field values in the fields it uses.
    static func sample(of form: InstructionForm) -> [RawInstruction] {
        var instruction = RawInstruction(opcode: form.opcode)
        var second: RawInstruction?
        for slot in form.shape.operandSlots {
            switch slot {
            case .destinationRegister: instruction.destination = 3
            case .sourceRegister: instruction.source = 7
            case .destinationMemory:
                instruction.destination = 10
                instruction.offset = -8
            case .sourceMemory:
                instruction.source = 1
                instruction.offset = 16
            case .immediate32: instruction.imm = -0x1234_5678
            case .immediate64:
                instruction.imm = 0x5566_7788
                second = RawInstruction(opcode: 0, imm: -0x1122_3344)
            case .offsetTarget: instruction.offset = 1
            case .immediateTarget: instruction.imm = 1
            }
        }
        switch form.discriminator {
        case .none: break
        case .offset(let value): instruction.offset = value
        case .imm(let value): instruction.imm = value
        case .source(let value): instruction.source = value
        }
        return second.map { [instruction, $0] } ?? [instruction]
    }

    @Test(
        "sample of each form disassembles to its mnemonic and reassembles identically",
        arguments: InstructionSet.forms.map(\.operation))
    func formRoundTrip(_ operation: MimicCore.Operation) throws {
        let form = InstructionSet.form(of: operation)
        // Two exits after the sample so jump targets (+1) land on a real instruction.
        let program = Self.sample(of: form) + [RawInstruction(opcode: 0x95), RawInstruction(opcode: 0x95)]
        let lines = Disassembler.disassemble(program)
        guard
            case .instruction(0, operation, let text) = lines.first(where: {
                if case .label = $0 { false } else { true }
            })
        else {
            Issue.record("first line is not \(operation): \(lines)")
            return
        }
        #expect(text.hasPrefix(form.mnemonic))
        #expect(try Assembler.assemble(Disassembler.listing(program)) == program)

        let sample = Self.sample(of: form)
        let single = Disassembler.text(of: sample[0], next: sample.count > 1 ? sample[1] : nil)
        #expect(try Assembler.assemble(single) == sample, "\(single)")
    }

    @Test("every alias assembles to the form it names")
    func aliases() throws {
        for alias in InstructionSet.mnemonicAliases {
            let form = InstructionSet.form(of: alias.operation)
            let sample = Self.sample(of: form)
            let canonical = Disassembler.text(of: sample[0])
            let aliased = alias.mnemonic + canonical.dropFirst(form.mnemonic.count)
            #expect(try Assembler.assemble(aliased) == sample, "\(aliased)")
        }
    }
}

// MARK: - Hand-checked encodings

@Suite("Assembler: encodings")
struct AssemblerEncodingTests {
    typealias Raw = RawInstruction
    static let exitInstruction = Raw(opcode: 0x95)

    static let cases: [(text: String, expected: [RawInstruction])] = [
        ("callx %r2", [Raw(opcode: 0x8d, destination: 2)]),
        ("call %r2", [Raw(opcode: 0x8d, destination: 2)]),
        ("call 5", [Raw(opcode: 0x85, imm: 5)]),
        ("call runtime 7", [Raw(opcode: 0x85, source: 2, imm: 7)]),
        ("call local f\nexit\nf:\nexit", [Raw(opcode: 0x85, source: 1, imm: 1), exitInstruction, exitInstruction]),
        ("f:\nexit\ncall local f", [exitInstruction, Raw(opcode: 0x85, source: 1, imm: -2)]),
        ("ja32 there\nexit\nthere:\nexit", [Raw(opcode: 0x06, imm: 1), exitInstruction, exitInstruction]),
        ("ja -1", [Raw(opcode: 0x05, offset: -1)]),
        ("lock fetch add32 [%r10-8], %r1", [Raw(opcode: 0xc3, destination: 10, source: 1, offset: -8, imm: 1)]),
        ("lock add [%r10-8], %r1", [Raw(opcode: 0xdb, destination: 10, source: 1, offset: -8, imm: 0)]),
        ("lock cmpxchg [%r2+4], %r3", [Raw(opcode: 0xdb, destination: 2, source: 3, offset: 4, imm: 0xf1)]),
        ("lock xchg32 [%r2], %r3", [Raw(opcode: 0xc3, destination: 2, source: 3, imm: 0xe1)]),
        ("movsx1632 %r4, %r3", [Raw(opcode: 0xbc, destination: 4, source: 3, offset: 16)]),
        ("movsx864 %r0, %r1", [Raw(opcode: 0xbf, destination: 0, source: 1, offset: 8)]),
        ("sdiv32 %r1, -3", [Raw(opcode: 0x34, destination: 1, offset: 1, imm: -3)]),
        ("smod %r1, %r2", [Raw(opcode: 0x9f, destination: 1, source: 2, offset: 1)]),
        ("le16 %r0", [Raw(opcode: 0xd4, imm: 16)]),
        ("be64 %r5", [Raw(opcode: 0xdc, destination: 5, imm: 64)]),
        ("bswap64 %r0", [Raw(opcode: 0xd7, imm: 64)]),
        ("swap16 %r1", [Raw(opcode: 0xd7, destination: 1, imm: 16)]),
        ("ldxsw %r1, [%r2+6]", [Raw(opcode: 0x81, destination: 1, source: 2, offset: 6)]),
        ("ldxb %r1, [%r2]", [Raw(opcode: 0x71, destination: 1, source: 2)]),
        ("stdw [%r10-16], 0xab", [Raw(opcode: 0x7a, destination: 10, offset: -16, imm: 0xab)]),
        ("stxb [ %r1 + 0x10 ], %r9", [Raw(opcode: 0x73, destination: 1, source: 9, offset: 16)]),
        ("lddw %r0, -2", [Raw(opcode: 0x18, imm: -2), Raw(opcode: 0, imm: -1)]),
        ("lddw %r1, 0xffffffffffffffff", [Raw(opcode: 0x18, destination: 1, imm: -1), Raw(opcode: 0, imm: -1)]),
        (
            "lddw %r1, -9223372036854775808",
            [Raw(opcode: 0x18, destination: 1, imm: 0), Raw(opcode: 0, imm: Int32.min)]
        ),
        ("ldindw %r1, 12", [Raw(opcode: 0x40, source: 1, imm: 12)]),
        ("ldabsh 12", [Raw(opcode: 0x28, imm: 12)]),
        ("mov32 %r0, 0xffffffff", [Raw(opcode: 0xb4, imm: -1)]),
        ("mov %r1, -2147483648", [Raw(opcode: 0xb7, destination: 1, imm: Int32.min)]),
        ("mov %r1, 4294967295", [Raw(opcode: 0xb7, destination: 1, imm: -1)]),
        ("neg %r3", [Raw(opcode: 0x87, destination: 3)]),
        ("neg32 %r3", [Raw(opcode: 0x84, destination: 3)]),
        ("jeq %r1, %r1, +1 # Taken", [Raw(opcode: 0x1d, destination: 1, source: 1, offset: 1)]),
        ("jslt32 %r1, 0xfffffffe, +3", [Raw(opcode: 0xc6, destination: 1, offset: 3, imm: -2)]),
        // The first `exit` is an implicit label...
        (
            "jne %r1, %r0, exit\nmov %r0, 1\nexit\nexit",
            [Raw(opcode: 0x5d, destination: 1, offset: 1), Raw(opcode: 0xb7, imm: 1), exitInstruction, exitInstruction]
        ),
        // ...unless the program defines `exit:` itself.
        (
            "jne %r1, %r0, exit\nexit\nexit:\nexit",
            [Raw(opcode: 0x5d, destination: 1, offset: 1), exitInstruction, exitInstruction]
        ),
        // Labels may share a line with an instruction; case and tabs do not matter for mnemonics.
        ("\tMOV\t%r0,\t1\r\nend: exit", [Raw(opcode: 0xb7, imm: 1), exitInstruction]),
        // A label may stand at the very end.
        ("ja end\nend:", [Raw(opcode: 0x05)]),
        ("   # only a comment\n\n", []),
    ]

    @Test("hand-checked encoding", arguments: cases)
    func encoding(_ text: String, _ expected: [RawInstruction]) throws {
        #expect(try Assembler.assemble(text) == expected)
    }

    @Test("lddw matches the bytes of the lddw conformance vector")
    func lddwBytes() throws {
        let program = try Assembler.assemble("lddw %r0, 0x1122334455667788\nexit")
        #expect(
            RawInstruction.encode(program) == [
                0x18, 0x00, 0x00, 0x00, 0x88, 0x77, 0x66, 0x55,
                0x00, 0x00, 0x00, 0x00, 0x44, 0x33, 0x22, 0x11,
                0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            ])
    }
}

// MARK: - Errors

@Suite("Assembler: errors")
struct AssemblerErrorTests {
    typealias Reason = AssemblerError.Reason

    static let cases: [(text: String, line: Int, reason: Reason)] = [
        ("mov %r0, 1\n# comment\nfoo %r0", 3, .unknownMnemonic("foo")),
        ("lock foo [%r1], %r2", 1, .unknownMnemonic("lock foo")),
        ("mov %r0", 1, .wrongOperandCount(mnemonic: "mov", expected: 2, found: 1)),
        ("exit %r0", 1, .wrongOperandCount(mnemonic: "exit", expected: 0, found: 1)),
        ("jeq %r0, 1", 1, .wrongOperandCount(mnemonic: "jeq", expected: 3, found: 2)),
        ("lock add [%r1]", 1, .wrongOperandCount(mnemonic: "lock add", expected: 2, found: 1)),
        ("mov %r11, 1", 1, .badRegister("%r11")),
        ("mov %rx, 1", 1, .badRegister("%rx")),
        ("mov %r0, %r01", 1, .badRegister("%r01")),
        ("callx %r15", 1, .badRegister("%r15")),
        ("ldxw %r0, [%r12+4]", 1, .badRegister("%r12")),
        ("mov32 %r0, 0x100000000", 1, .immediateOutOfRange("0x100000000")),
        ("mov %r0, -2147483649", 1, .immediateOutOfRange("-2147483649")),
        ("lddw %r0, 0x10000000000000000", 1, .immediateOutOfRange("0x10000000000000000")),
        ("lddw %r0, -9223372036854775809", 1, .immediateOutOfRange("-9223372036854775809")),
        ("stw [%r1], 99999999999", 1, .immediateOutOfRange("99999999999")),
        ("mov %r0, 12abc", 1, .malformedNumber("12abc")),
        ("mov %r0, 0x", 1, .malformedNumber("0x")),
        ("mov %r0, --1", 1, .malformedNumber("--1")),
        ("ldxw %r0, [%r1+32768]", 1, .offsetOutOfRange("+32768")),
        ("stxw [%r1-32769], %r2", 1, .offsetOutOfRange("-32769")),
        ("ldxw %r0, [%r1+]", 1, .malformedMemoryOperand("[%r1+]")),
        ("ldxw %r0, [%r1", 1, .malformedMemoryOperand("[%r1")),
        ("ldxw %r0, [r1+4]", 1, .malformedMemoryOperand("[r1+4]")),
        ("ldxw %r0, [%r1*4]", 1, .malformedMemoryOperand("[%r1*4]")),
        ("ldxw %r0, [%r1+-4]", 1, .malformedMemoryOperand("[%r1+-4]")),
        ("ldxw %r0, 4", 1, .unexpectedOperand(position: 2, found: "4", expected: "a memory operand like [%r1+8]")),
        ("mov 1, %r0", 1, .unexpectedOperand(position: 1, found: "1", expected: "a register %r0..%r10")),
        ("ja %r1", 1, .unexpectedOperand(position: 1, found: "%r1", expected: "a label or a relative offset like +3")),
        ("mov %r0,", 1, .unexpectedOperand(position: 2, found: "", expected: "an immediate")),
        (
            "jeq %r0, 1, ", 1,
            .unexpectedOperand(position: 3, found: "", expected: "a label or a relative offset like +3")
        ),
        ("mov , %r1", 1, .unexpectedOperand(position: 1, found: "", expected: "a register %r0..%r10")),
        ("exit\nja nowhere", 2, .undefinedLabel("nowhere")),
        ("a:\nexit\na:\nexit", 3, .duplicateLabel("a")),
        ("ja +32768", 1, .jumpOutOfRange(target: "+32768", distance: 32768)),
        ("jeq %r0, 0, -32769", 1, .jumpOutOfRange(target: "-32769", distance: -32769)),
        (
            "exit\n" + String(repeating: "mov %r0, 0\n", count: 3) + "ja far\n"
                + String(repeating: "exit\n", count: 40_000) + "far:\nexit",
            5, .jumpOutOfRange(target: "far", distance: 40_000)
        ),
        ("1abc:\nexit", 1, .invalidLabelName("1abc")),
        ("my label:", 1, .invalidLabelName("my label")),
        ("exit\nja foo-bar", 2, .invalidLabelName("foo-bar")),
        ("call local 1x", 1, .malformedNumber("1x")),
    ]

    @Test("error with line number", arguments: cases)
    func error(_ text: String, _ line: Int, _ reason: Reason) {
        do {
            let program = try Assembler.assemble(text)
            Issue.record("expected \(reason) on line \(line), assembled \(program.count) slots")
        } catch {
            #expect(error.line == line)
            #expect(error.reason == reason)
        }
    }

    @Test("description names the line, the reason and the text")
    func description() {
        do {
            _ = try Assembler.assemble("mov %r0, 1\n\nfoo %r0   # trailing comment")
            Issue.record("expected an error")
        } catch {
            #expect(error.description == #"line 3: unknown mnemonic 'foo' in "foo %r0   # trailing comment""#)
        }
        let simple = AssemblerError(line: 3, text: "foo %r0", reason: .unknownMnemonic("foo"))
        #expect(simple.description == #"line 3: unknown mnemonic 'foo' in "foo %r0""#)
    }
}

// MARK: - Disassembler

@Suite("Disassembler")
struct DisassemblerTests {
    @Test("jumps get generated labels; text(of:) uses relative offsets")
    func labels() throws {
        let program = try Assembler.assemble(
            """
            mov %r0, 0
            loop:
            add %r0, 1
            jlt %r0, 10, loop
            call local done
            exit
            done:
            exit
            """)
        #expect(
            Disassembler.listing(program) == """
                mov %r0, 0
                L1:
                add %r0, 1
                jlt %r0, 10, L1
                call local L5
                exit
                L5:
                exit

                """)
        #expect(Disassembler.text(of: program[2]) == "jlt %r0, 10, -2")
        #expect(Disassembler.text(of: program[3]) == "call local +1")
    }

    @Test("operand formatting")
    func formatting() throws {
        let cases: [(String, String)] = [
            ("lddw %r0, 0x1122334455667788", "lddw %r0, 0x1122334455667788"),
            ("lddw %r0, -1", "lddw %r0, -1"),
            ("lddw %r0, 0x8877665544332211", "lddw %r0, 0x8877665544332211"),
            ("mov32 %r0, 0xffffff80", "mov32 %r0, -128"),
            ("mov %r0, 0x80000000", "mov %r0, -0x80000000"),
            ("stxdw [%r10-8], %r1", "stxdw [%r10-8], %r1"),
            ("ldxh %r3, [%r1+12]", "ldxh %r3, [%r1+12]"),
            ("ldxh %r3, [%r1+0]", "ldxh %r3, [%r1]"),
            ("swap32 %r0", "bswap32 %r0"),
            ("call %r2", "callx %r2"),
            ("ja +0", "ja +0"),
        ]
        for (input, expected) in cases {
            let program = try Assembler.assemble(input)
            #expect(Disassembler.text(of: program[0], next: program.count > 1 ? program[1] : nil) == expected)
        }
    }

    @Test("invalid encodings print as .invalid and never crash")
    func invalid() {
        let program: [RawInstruction] = [
            RawInstruction(opcode: 0xff), // unknown opcode
            RawInstruction(opcode: 0x07, source: 3, imm: 1), // add imm with a source register
            RawInstruction(opcode: 0xb7, destination: 11, imm: 1), // r11
            RawInstruction(opcode: 0xdb, destination: 1, imm: 0x02), // unknown atomic operation
            RawInstruction(opcode: 0x00, imm: 5), // stray lddw second half
            RawInstruction(opcode: 0x95),
            RawInstruction(opcode: 0x18, imm: 1), // lddw at the end, no second half
        ]
        let lines = Disassembler.disassemble(program)
        #expect(lines.count == 7)
        for (index, line) in lines.enumerated() where index != 5 {
            guard case .invalid(index, let text) = line else {
                Issue.record("slot \(index) should be invalid: \(line)")
                continue
            }
            #expect(text.hasPrefix(".invalid 0x"))
        }
        #expect(lines[5] == .instruction(slot: 5, operation: .exit, text: "exit"))
        #expect(lines[0].text == ".invalid 0x00000000000000ff # unknown opcode 0xff")
        #expect(Disassembler.text(of: RawInstruction(opcode: 0x18)).hasPrefix(".invalid"))
        // A jump into the middle of an lddw cannot carry a label and stays relative.
        let intoLddw = [
            RawInstruction(opcode: 0x05, offset: 1), RawInstruction(opcode: 0x18), RawInstruction(opcode: 0),
        ]
        #expect(Disassembler.listing(intoLddw) == "ja +1\nlddw %r0, 0\n")
    }

    @Test("random slots: disassembly never crashes and valid programs round-trip")
    func randomSlots() throws {
        var random = SplitMix64(seed: 0x5eed)
        var validPrograms = 0
        for _ in 0..<3000 {
            var program: [RawInstruction] = []
            for _ in 0..<(Int(random.next() % 6) + 1) {
                program += Self.randomInstruction(using: &random)
            }
            let listing = Disassembler.listing(program)
            if !listing.contains(".invalid") {
                validPrograms += 1
                #expect(try Assembler.assemble(listing) == program, "\(listing)")
            }
        }
        // The generator must produce enough valid programs for the round trip to mean something.
        #expect(validPrograms > 1000)
    }

    /// A random instance of a random form; one time in eight a field is then scrambled, which
    /// usually makes the encoding invalid.
    static func randomInstruction(using random: inout SplitMix64) -> [RawInstruction] {
        let form = InstructionSet.forms[Int(random.next() % UInt64(InstructionSet.forms.count))]
        var slots = AssemblerFormTests.sample(of: form)
        let word = random.next()
        for slot in form.shape.operandSlots {
            switch slot {
            case .destinationRegister, .destinationMemory: slots[0].destination = UInt8(word % 11)
            case .sourceRegister, .sourceMemory: slots[0].source = UInt8(word >> 8 % 11)
            case .immediate32: slots[0].imm = Int32(truncatingIfNeeded: word >> 16)
            case .immediate64: slots[1].imm = Int32(truncatingIfNeeded: word >> 32)
            case .offsetTarget: slots[0].offset = Int16(truncatingIfNeeded: word >> 48) % 8
            case .immediateTarget: slots[0].imm = Int32(truncatingIfNeeded: word >> 48) % 8
            }
        }
        if random.next() % 8 == 0 {
            let scramble = random.next()
            switch scramble % 5 {
            case 0: slots[0].destination = UInt8(scramble >> 8 & 0xf)
            case 1: slots[0].source = UInt8(scramble >> 8 & 0xf)
            case 2: slots[0].offset = Int16(truncatingIfNeeded: scramble >> 16)
            case 3: slots[0].imm = Int32(truncatingIfNeeded: scramble >> 32)
            default: slots[0].opcode = UInt8(truncatingIfNeeded: scramble >> 8)
            }
        }
        return slots
    }

    @Test("random text never crashes the assembler")
    func randomText() {
        var random = SplitMix64(seed: 42)
        let pieces = [
            "mov", "lddw", "lock", "fetch", "add32", "call", "local", "ja", "exit", "%r", "%r1", "%r10",
            "[", "]", "+", "-", ",", " ", ":", "#", "\n", "0x", "9", "ffffffffffffffffff", "L1", "exit:",
            "jeq", "ldxw", "stdw", "-9223372036854775808", "99999999999999999999999", "\u{00e9}", "\t",
        ]
        for _ in 0..<3000 {
            let length = Int(random.next() % 12)
            let text = (0..<length).map { _ in pieces[Int(random.next() % UInt64(pieces.count))] }.joined()
            _ = try? Assembler.assemble(text)
        }
    }
}
