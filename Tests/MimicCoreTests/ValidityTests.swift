import Testing
import MimicCore

private func raw(_ operation: Operation, dst: UInt8 = 0, src: UInt8 = 0, off: Int16 = 0, imm: Int32 = 0)
    -> RawInstruction
{
    var instruction = RawInstruction(
        opcode: operation.form.opcode, destination: dst, source: src, offset: off, imm: imm)
    switch operation.form.discriminator {
    case .none: break
    case .offset(let value): instruction.offset = value
    case .imm(let value): instruction.imm = value
    case .source(let value): instruction.source = value
    }
    return instruction
}

private func loadError(_ code: [RawInstruction]) -> LoadError? {
    do {
        _ = try VM().load(code, name: "bad")
        return nil
    } catch {
        return error
    }
}

@Suite("ISA: one table, one validity rule")
struct InstructionSetTableTests {
    @Test func everyOperationHasExactlyOneForm() {
        #expect(InstructionSet.forms.map(\.operation) == Operation.allCases)
        for operation in Operation.allCases {
            #expect(InstructionSet.form(of: operation).operation == operation)
            let matching = InstructionSet.forms.filter { $0.matches(raw(operation)) }
            #expect(matching.map(\.operation) == [operation], "\(operation) is encoded by \(matching.map(\.operation))")
        }
    }

    @Test func everyCanonicalEncodingIsValid() {
        for operation in Operation.allCases {
            var instruction = raw(operation, dst: 1, src: 2)
            // Clear what the form does not use; what is left must validate as this form.
            while case .failure(.reservedField(_, let field, _)) = InstructionSet.validate(
                instruction, next: RawInstruction(opcode: 0))
            {
                switch field {
                case .destination: instruction.destination = 0
                case .source: instruction.source = 0
                case .offset: instruction.offset = 0
                case .imm: instruction.imm = 0
                }
            }
            let result = InstructionSet.validate(instruction, next: RawInstruction(opcode: 0))
            #expect((try? result.get())?.operation == operation, "\(operation): \(result)")
        }
    }

    /// Reserved fields as the kernel's verifier checks them ("... uses reserved fields"), plus
    /// `exit`'s offset, which RFC 9669 reserves too.
    static let reserved: [(RawInstruction, field: InstructionField, mnemonic: String)] = [
        (raw(.exit, dst: 1), .destination, "exit"),
        (raw(.exit, src: 1), .source, "exit"),
        (raw(.exit, imm: 1), .imm, "exit"),
        (raw(.exit, off: 1), .offset, "exit"),
        (raw(.jump, off: 0, imm: 1), .imm, "ja"),
        (raw(.jump, dst: 1), .destination, "ja"),
        (raw(.jump32, off: 1), .offset, "ja32"),
        (raw(.add64Imm, dst: 1, src: 2, imm: 1), .source, "add"),
        (raw(.add32Reg, dst: 1, src: 2, imm: 1), .imm, "add32"),
        (raw(.neg64, dst: 1, imm: 1), .imm, "neg"),
        (raw(.be16, dst: 1, src: 1), .source, "be16"),
        (raw(.load32, dst: 1, src: 2, imm: 1), .imm, "ldxw"),
        (raw(.store32Imm, dst: 1, src: 2, imm: 1), .source, "stw"),
        (raw(.store32Reg, dst: 1, src: 2, imm: 1), .imm, "stxw"),
        (raw(.callHelper, dst: 1, imm: 1), .destination, "call"),
        (raw(.callHelper, off: 1, imm: 1), .offset, "call"),
        (raw(.callLocal, off: 1, imm: 0), .offset, "call local"),
        (raw(.loadPacketAbsolute8, dst: 1), .destination, "ldabsb"),
        (raw(.loadPacketAbsolute8, src: 1), .source, "ldabsb"),
        (raw(.loadPacketIndirect8, src: 1, off: 1), .offset, "ldindb"),
        (raw(.jumpEqual64Imm, dst: 1, src: 2, off: 0), .source, "jeq"),
        (raw(.jumpEqual64Reg, dst: 1, src: 2, off: 0, imm: 5), .imm, "jeq"),
        (raw(.callRegister, dst: 1, imm: 3), .imm, "callx"),
    ]

    @Test func reservedFieldsAreRefusedByTheLoaderAndShownInvalidByTheDisassembler() {
        for (instruction, field, mnemonic) in Self.reserved {
            let error = loadError([instruction, raw(.exit)])
            guard let reason = error?.reason, reason.code == .reservedField, reason.mnemonic == mnemonic,
                reason.field == field.rawValue
            else {
                Issue.record(
                    "\(instruction): expected reserved field \(field.rawValue) of \(mnemonic), got \(String(describing: error))"
                )
                continue
            }
            #expect(error?.pc == 0)
            #expect(error?.description.contains("reserved field \(field.rawValue)") == true)
            let text = Disassembler.text(of: instruction)
            #expect(text.hasPrefix(".invalid") && text.contains("reserved field \(field.rawValue)"), "\(text)")
        }
    }

    @Test func lddwOffsetIsReservedButItsSourceIsThePseudoKind() {
        let error = loadError([RawInstruction(opcode: 0x18, offset: 1, imm: 1), RawInstruction(opcode: 0), raw(.exit)])
        #expect(error?.reason == .reservedField(mnemonic: "lddw", field: "off", value: 1))
        let function = [
            RawInstruction(opcode: 0x18, destination: 1, source: LoadImm64Kind.function.rawValue, imm: 2),
            RawInstruction(opcode: 0), raw(.exit), raw(.exit),
        ]
        #expect(throws: Never.self) { try VM().load(function) }
    }

    @Test func unknownAtomicOperationsAreRefused() {
        let knownCodes: Set<Int32> = [0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1]
        for opcode: UInt8 in [0xdb, 0xc3] {
            for code in Int32(0)...0xff where !knownCodes.contains(code) {
                let instruction = RawInstruction(opcode: opcode, destination: 1, source: 2, imm: code)
                guard loadError([instruction, raw(.exit)])?.reason.code == .invalidEncoding else {
                    Issue.record("atomic imm 0x\(String(code, radix: 16)) was not refused")
                    continue
                }
            }
            for code in knownCodes {
                let form = InstructionSet.form(of: RawInstruction(opcode: opcode, destination: 1, source: 2, imm: code))
                #expect(form?.shape == .atomic && form?.opcode == opcode, "imm 0x\(String(code, radix: 16))")
            }
        }
    }
}

@Suite("Loader: functions are closed")
struct FunctionStructureTests {
    /// uBPF's err-call-invalid-jump: a jump from the main function into a callee.
    @Test func aJumpMayNotLeaveItsFunction() {
        let code = Asm.program {
            Asm.callLocal(2) // 0 -> 3
            Asm.ja(1) // 1 -> 3: into the callee
            Asm.exit() // 2
            Asm.mov64(0, imm: 1) // 3: the callee
            Asm.exit()
        }
        let error = loadError(code)
        #expect(error?.reason == .jumpOutOfFunction(target: 3, function: 0))
        #expect(error?.pc == 1)

        let backwards = Asm.program {
            Asm.mov64(0, imm: 0)
            Asm.callLocal(1) // 1 -> 3
            Asm.exit() // 2
            Asm.jump(.jumpEqual64Imm, 0, imm: 0, -3) // 3 -> 1: back into the caller
            Asm.exit()
        }
        #expect(loadError(backwards)?.reason == .jumpOutOfFunction(target: 1, function: 3))
    }

    /// uBPF's err-call0 family: a function that does not end in exit runs into the next one.
    @Test func aFunctionMayNotFallIntoTheNext() {
        let code = Asm.program {
            Asm.callLocal(1) // 0 -> 2
            Asm.mov64(0, imm: 0) // 1: falls into 2
            Asm.mov64(0, imm: 1) // 2: the callee
            Asm.exit()
        }
        let error = loadError(code)
        #expect(error?.reason == .functionFallsThrough(function: 0, next: 2))
        #expect(error?.pc == 1)
        #expect(error?.description.contains("falls through") == true)
    }

    @Test func functionsReachedOnlyThroughFunctionAddressesAreChecked() {
        let code = [
            RawInstruction(opcode: 0x18, destination: 1, source: LoadImm64Kind.function.rawValue, imm: 2),
            RawInstruction(opcode: 0), Asm.mov64(0, imm: 0), Asm.mov64(0, imm: 1), Asm.exit(),
        ]
        // The function at 3 starts after 2, which does not end the entry function.
        #expect(loadError(code)?.reason == .functionFallsThrough(function: 0, next: 3))
    }

    @Test func wellFormedFunctionsLoad() throws {
        let code = Asm.program {
            Asm.callLocal(2) // 0 -> 3
            Asm.ja(0) // 1
            Asm.exit() // 2
            Asm.mov64(0, imm: 7) // 3
            Asm.ja(-2) // 4 -> 3
        }
        // The callee's last instruction is an unconditional jump: allowed (the kernel's rule).
        #expect(throws: Never.self) { try VM().load(code) }
    }
}
