import Foundation // Thread: cancellers that do not depend on the cooperative pool or Dispatch's width
import Testing
import MimicCore
import MimicMemory
import MimicTestSupport

/// The `LoadError` loading `code` throws, or nil (recording an issue) when it loads.
private func loadError(
    _ code: [RawInstruction], emulator: (any Emulator)? = nil,
    configuration: VMConfiguration = VMConfiguration(),
    sourceLocation: SourceLocation = #_sourceLocation
) -> LoadError? {
    let vm = VM(emulator: emulator, configuration: configuration)
    do {
        _ = try vm.load(code, name: "bad")
        Issue.record("the program loaded", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

/// The `ExecutionError` running `code` throws, or nil (recording an issue) when it exits.
private func runError(
    _ code: [RawInstruction], memory: [UInt8]? = nil, emulator: (any Emulator)? = nil,
    configuration: VMConfiguration = VMConfiguration(),
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> ExecutionError? {
    let process = try Runner.process(code, memory: memory, emulator: emulator, configuration: configuration)
    do {
        let r0 = try process.run()
        Issue.record("the program exited with \(r0)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

/// An instruction with arbitrary fields.
private func raw(_ opcode: UInt8, dst: UInt8 = 0, src: UInt8 = 0, off: Int16 = 0, imm: Int32 = 0) -> RawInstruction {
    RawInstruction(opcode: opcode, destination: dst, source: src, offset: off, imm: imm)
}

// MARK: - Load errors

@Suite("VM errors: loading")
struct LoadErrorTests {
    @Test func emptyProgram() throws {
        let error = loadError([])
        #expect(error?.reason == .emptyProgram)
        #expect(error?.pc == nil)
        #expect(error?.programName == "bad")
        let vm = VM()
        #expect(throws: LoadError(.emptyProgram, programName: "program")) { try vm.load(bytecode: []) }
    }

    @Test(arguments: [7, 12, 1, 15])
    func truncatedBytecode(byteCount: Int) throws {
        let vm = VM()
        let bytes = Array(RawInstruction.encode([Asm.mov64(0, imm: 1), Asm.exit()]).prefix(byteCount))
        let error = #expect(throws: LoadError.self) { try vm.load(bytecode: bytes) }
        guard error?.code == .invalidEncoding, let detail = error?.reason.detail else {
            Issue.record("expected invalidEncoding, got \(String(describing: error))")
            return
        }
        #expect(detail.contains("\(byteCount) bytes"))
        #expect(error?.pc == nil)
    }

    @Test func wholeBytecodeLoads() throws {
        let vm = VM()
        let program = try vm.load(bytecode: RawInstruction.encode([Asm.mov64(0, imm: 7), Asm.exit()]))
        #expect(try vm.run(program) == 7)
    }

    @Test func loadImm64MissingItsSecondHalf() {
        let atEnd = loadError([Asm.mov64(0, imm: 0), Asm.lddw(0, 1)[0]])
        #expect(atEnd?.reason == .incompleteLoadImm64)
        #expect(atEnd?.pc == 1)
        #expect(atEnd?.instruction == Asm.lddw(0, 1)[0])

        let followedByExit = loadError([Asm.lddw(0, 1)[0], Asm.exit()])
        #expect(followedByExit?.reason == .incompleteLoadImm64)
        #expect(followedByExit?.pc == 0)

        for second in [raw(0, dst: 1), raw(0, src: 1), raw(0, off: 1), raw(0x18)] {
            let error = loadError([Asm.lddw(0, 1)[0], second, Asm.exit()])
            #expect(error?.reason == .incompleteLoadImm64, "second slot \(second)")
            #expect(error?.pc == 0)
        }
    }

    @Test func jumpOutOfRange() {
        let forward = loadError([Asm.ja(5), Asm.exit()])
        #expect(forward?.reason == .jumpOutOfRange(target: 6))
        #expect(forward?.pc == 0)

        let justPastEnd = loadError([Asm.jump(.jumpEqual64Imm, 0, imm: 0, 1), Asm.exit()])
        #expect(justPastEnd?.reason == .jumpOutOfRange(target: 2))

        let backward = loadError([Asm.mov64(0, imm: 0), Asm.ja(-3), Asm.exit()])
        #expect(backward?.reason == .jumpOutOfRange(target: -1))
        #expect(backward?.pc == 1)

        let far = loadError([Asm.jump(.jumpSignedLess32Reg, 1, src: 2, .min), Asm.exit()])
        #expect(far?.reason == .jumpOutOfRange(target: 1 + Int(Int16.min)))

        let long = loadError([Asm.ja32(.max), Asm.exit()])
        #expect(long?.reason == .jumpOutOfRange(target: 1 + Int(Int32.max)))

        let call = loadError([Asm.callLocal(10), Asm.exit()])
        #expect(call?.reason == .jumpOutOfRange(target: 11))

        let function = loadError(Asm.lddw(1, 100, pseudo: LoadImm64Kind.function.rawValue) + [Asm.exit()])
        #expect(function?.reason == .jumpOutOfRange(target: 101))
    }

    @Test func jumpIntoTheMiddleOfLoadImm64() {
        let code = Asm.program {
            Asm.ja(1) // 0 -> 2
            Asm.lddw(0, 1) // 1, 2
            Asm.exit()
        }
        let error = loadError(code)
        #expect(error?.reason == .jumpIntoLoadImm64(target: 2))
        #expect(error?.pc == 0)

        let backward = loadError(
            Asm.program {
                Asm.lddw(0, 1) // 0, 1
                Asm.jump(.jumpEqual64Imm, 0, imm: 1, -2) // 2 -> 1
                Asm.exit()
            })
        #expect(backward?.reason == .jumpIntoLoadImm64(target: 1))
        #expect(backward?.pc == 2)

        let call = loadError(
            Asm.program {
                Asm.callLocal(1) // 0 -> 2
                Asm.lddw(0, 1)
                Asm.exit()
            })
        #expect(call?.reason == .jumpIntoLoadImm64(target: 2))
    }

    @Test(arguments: [0xff, 0x8f, 0x00, 0x01, 0xe7, 0x9d] as [UInt8])
    func unknownOpcode(opcode: UInt8) {
        let error = loadError([Asm.mov64(0, imm: 0), raw(opcode), Asm.exit()])
        #expect(error?.reason == .unknownOpcode(opcode))
        #expect(error?.pc == 1)
        #expect(error?.instruction?.opcode == opcode)
        #expect(error?.description.contains("0x" + String(opcode, radix: 16)) == true)
    }

    @Test func invalidRegisters() {
        let destination = loadError([Asm.mov64(11, imm: 1), Asm.exit()])
        #expect(destination?.reason == .invalidRegister(field: "destination", register: 11))
        #expect(destination?.pc == 0)

        let source = loadError([Asm.mov64(0, imm: 0), Asm.add64(0, src: 15), Asm.exit()])
        #expect(source?.reason == .invalidRegister(field: "source", register: 15))
        #expect(source?.pc == 1)

        let cases: [RawInstruction] = [
            Asm.load(.load64, 0, 12), Asm.load(.load8, 12, 1), Asm.store(.store32Imm, 11, imm: 0),
            Asm.store(.store64Reg, 1, src: 13), Asm.jump(.jumpEqual64Imm, 14, imm: 0, 0),
            Asm.jump(.jumpEqual64Reg, 0, src: 11, 0), Asm.atomic(.atomicAdd64, 11, src: 1),
            Asm.atomic(.atomicAdd32, 1, src: 11), Asm.callx(11), Asm.unary(.neg64, 15),
            Asm.loadIndirect(.loadPacketIndirect8, 12, imm: 0), Asm.alu(.movsx8to64, 0, src: 11),
        ]
        for instruction in cases {
            let error = loadError([instruction, Asm.exit()])
            guard error?.code == .invalidRegister, let register = error?.reason.register else {
                Issue.record("\(instruction): \(String(describing: error))")
                continue
            }
            #expect(register > 10)
            #expect(error?.pc == 0)
        }
        // lddw with an invalid destination.
        #expect(
            loadError(Asm.lddw(11, 0) + [Asm.exit()])?.reason == .invalidRegister(field: "destination", register: 11))
    }

    @Test func writesToTheFramePointer() {
        let cases: [[RawInstruction]] = [
            [Asm.mov64(10, imm: 1)], [Asm.mov64(10, src: 1)], [Asm.mov32(10, imm: 0)], [Asm.alu(.add64Imm, 10, imm: 8)],
            [Asm.unary(.neg64, 10)], [Asm.unary(.be16, 10)], [Asm.load(.load64, 10, 1)], Asm.lddw(10, 0),
            [Asm.atomic(.atomicFetchAdd64, 1, src: 10)], [Asm.atomic(.atomicExchange32, 1, src: 10)],
            [Asm.alu(.movsx8to64, 10, src: 1)],
        ]
        for code in cases {
            let error = loadError(code + [Asm.exit()])
            #expect(error?.reason == .writesFramePointer, "\(code[0])")
            #expect(error?.pc == 0)
            #expect(error?.description.contains("r10") == true)
        }
        // Reading r10 is fine, and so are stores through it and non-fetching atomics with it as source.
        let vm = VM()
        #expect(throws: Never.self) {
            try vm.load([
                Asm.mov64(0, src: 10), Asm.store(.store64Reg, 10, off: -8, src: 10),
                Asm.atomic(.atomicAdd64, 10, off: -8, src: 10), Asm.exit(),
            ])
        }
    }

    @Test func lastInstructionMustNotFallThrough() {
        let plain = loadError([Asm.mov64(0, imm: 1)])
        #expect(plain?.reason == .lastInstructionNotExitOrJump)
        #expect(plain?.pc == 0)

        let conditional = loadError([Asm.mov64(0, imm: 1), Asm.exit(), Asm.jump(.jumpEqual64Imm, 0, imm: 0, -2)])
        #expect(conditional?.reason == .lastInstructionNotExitOrJump)
        #expect(conditional?.pc == 2)

        let call = loadError([Asm.mov64(0, imm: 1), Asm.call(1)])
        #expect(call?.reason == .lastInstructionNotExitOrJump)

        let lddw = loadError([Asm.exit()] + Asm.lddw(0, 1))
        #expect(lddw?.reason == .lastInstructionNotExitOrJump)
        #expect(lddw?.pc == 2)

        // An unconditional jump at the end is fine.
        let vm = VM()
        #expect(throws: Never.self) { try vm.load([Asm.mov64(0, imm: 1), Asm.exit(), Asm.ja(-2)]) }
    }

    @Test func invalidEncodings() {
        func invalidEncoding(
            _ instruction: RawInstruction, _ text: String, sourceLocation: SourceLocation = #_sourceLocation
        ) {
            let error = loadError([Asm.mov64(0, imm: 0), instruction, Asm.exit()], sourceLocation: sourceLocation)
            guard error?.code == .invalidEncoding, let detail = error?.reason.detail else {
                Issue.record(
                    "\(instruction): expected invalidEncoding, got \(String(describing: error))",
                    sourceLocation: sourceLocation)
                return
            }
            #expect(detail.contains(text), "\(detail)", sourceLocation: sourceLocation)
            #expect(error?.pc == 1, sourceLocation: sourceLocation)
            #expect(error?.instruction == instruction, sourceLocation: sourceLocation)
        }
        let sdiv = InstructionSet.form(of: .sdiv64Imm).opcode
        invalidEncoding(raw(sdiv, off: 2, imm: 3), "offset")
        invalidEncoding(raw(InstructionSet.form(of: .smod32Reg).opcode, src: 1, off: -1), "offset")
        invalidEncoding(raw(InstructionSet.form(of: .movsx8to64).opcode, src: 1, off: 7), "offset")
        invalidEncoding(raw(InstructionSet.form(of: .mov64Imm).opcode, off: 8, imm: 1), "offset")
        invalidEncoding(raw(InstructionSet.form(of: .be16).opcode, imm: 24), "24")
        let atomic64 = InstructionSet.form(of: .atomicAdd64).opcode
        invalidEncoding(raw(atomic64, dst: 1, src: 2, imm: 0x02), "0x2")
        invalidEncoding(raw(atomic64, dst: 1, src: 2, imm: 0xf0), "0xf0")
        invalidEncoding(raw(InstructionSet.form(of: .atomicAdd32).opcode, dst: 1, src: 2, imm: 0xe0), "0xe0")
        invalidEncoding(raw(InstructionSet.form(of: .callHelper).opcode, src: 3, imm: 1), "source")
        // The lddw case needs its second slot to get past the pairing check.
        let error = loadError([raw(0x18, src: 7), raw(0), Asm.exit()])
        guard error?.code == .invalidEncoding else {
            Issue.record("lddw src 7: \(String(describing: error))")
            return
        }
        #expect(error?.pc == 0)
    }

    @Test func kfuncCallsAreUnsupported() {
        let error = loadError([raw(0x85, src: 2, imm: 1234), Asm.exit()])
        guard error?.code == .unsupported, let detail = error?.reason.detail else {
            Issue.record("expected unsupported, got \(String(describing: error))")
            return
        }
        #expect(detail.contains("1234"))
        #expect(error?.pc == 0)
    }

    @Test(arguments: [LoadImm64Kind.mapFileDescriptor, .mapValue, .btfID, .mapIndex, .mapIndexValue])
    func mapReferencesNeedAnEmulator(kind: LoadImm64Kind) {
        for emulator in [nil, ConformanceEmulator()] as [(any Emulator)?] {
            let error = loadError(
                [Asm.exit()] + Asm.lddw(1, 3, pseudo: kind.rawValue) + [Asm.exit()], emulator: emulator)
            guard error?.code == .unresolvedReference, let detail = error?.reason.detail else {
                Issue.record("\(kind): expected unresolvedReference, got \(String(describing: error))")
                continue
            }
            #expect(detail.contains(kind.cName))
            #expect(error?.pc == 1)
        }
    }

    @Test func tooLarge() {
        let code = [Asm.mov64(0, imm: 0), Asm.mov64(0, imm: 0), Asm.mov64(0, imm: 0), Asm.exit()]
        let error = loadError(code, configuration: VMConfiguration(maxInstructions: 3))
        #expect(error?.reason == .tooLarge(count: 4, limit: 3))
    }

    @Test func descriptionNamesProgramAndInstruction() throws {
        let vm = VM()
        let error = #expect(throws: LoadError.self) {
            try vm.load([Asm.mov64(0, imm: 0), Asm.mov64(0, imm: 0), raw(0xff), Asm.exit()], name: "xdp_prog")
        }
        let text = try #require(error).description
        #expect(text.contains("xdp_prog"))
        #expect(text.contains("instruction 2"))
        #expect(text.contains("unknown opcode 0xff"))
    }
}

// MARK: - Runtime errors

@Suite("VM errors: running")
struct RuntimeErrorTests {
    @Test func stackBounds() throws {
        // r10-8: fine; r10-4096 is the first byte of the 8 * 512-byte stack.
        #expect(
            try Runner.run([Asm.store(.store64Imm, 10, off: -8, imm: 1), Asm.load(.load64, 0, 10, off: -8), Asm.exit()])
                == 1)
        #expect(
            try Runner.run([
                Asm.store(.store64Imm, 10, off: -4096, imm: 2), Asm.load(.load64, 0, 10, off: -4096), Asm.exit(),
            ]) == 2)

        let above = try runError([Asm.store(.store64Imm, 10, off: 0, imm: 1), Asm.exit()])
        guard above?.code == .memory, let fault = above?.kind.fault else {
            Issue.record("expected a memory fault, got \(String(describing: above))")
            return
        }
        #expect(fault.access == .write)
        #expect(fault.size == 8)
        #expect(fault.reason == .outOfBounds)
        #expect(fault.region?.name == "stack")
        #expect(above?.pc == 0)

        let straddling = try runError([Asm.load(.load64, 0, 10, off: -4), Asm.exit()])
        guard straddling?.code == .memory, let straddle = straddling?.kind.fault else {
            Issue.record("expected a memory fault, got \(String(describing: straddling))")
            return
        }
        #expect(straddle.access == .read)

        for offset: Int16 in [-4096 - 8, -4096 - 1, -8192, .min] {
            let below = try runError([
                Asm.mov64(0, imm: 0), Asm.store(.store64Imm, 10, off: offset, imm: 1), Asm.exit(),
            ])
            guard below?.code == .memory, let fault = below?.kind.fault else {
                Issue.record("offset \(offset): expected a memory fault, got \(String(describing: below))")
                continue
            }
            #expect(fault.access == .write)
            #expect(below?.pc == 1)
        }
    }

    @Test func recursionExceedsTheCallDepth() throws {
        let code = [Asm.mov64(0, imm: 0), Asm.callLocal(1), Asm.exit(), Asm.callLocal(-1), Asm.exit()] // 3: calls itself
        let error = try runError(code)
        #expect(error?.kind == .callDepthExceeded(limit: 8))
        #expect(error?.pc == 3)
        #expect(error?.description.contains("8") == true)

        let shallow = try runError(code, configuration: VMConfiguration(maxCallDepth: 2))
        #expect(shallow?.kind == .callDepthExceeded(limit: 2))

        // Recursion through callx too.
        let callx = try runError(
            Asm.program {
                Asm.lddw(1, 3, pseudo: LoadImm64Kind.function.rawValue) // 0: function at 4
                Asm.callx(1) // 2
                Asm.exit()
                Asm.lddw(1, UInt64(UInt32(bitPattern: -1)), pseudo: LoadImm64Kind.function.rawValue) // 4: itself
                Asm.callx(1) // 6
                Asm.exit()
            })
        #expect(callx?.kind == .callDepthExceeded(limit: 8))
        #expect(callx?.pc == 6)
    }

    @Test func budgetExhaustionIsResumable() throws {
        let loop = try Runner.process([Asm.mov64(0, imm: 0), Asm.add64(0, imm: 1), Asm.ja(-2)])
        // The limit is exact: 1000 instructions are the `mov`, 499 rounds and one more `add`.
        let first = #expect(throws: ExecutionError.self) { try loop.run(instructionLimit: 1000) }
        #expect(first?.kind == .budgetExhausted(executed: 1000))
        #expect(loop.state == .ready)
        #expect(loop.instructionsExecuted == 1000)
        #expect(loop.registers[0] == 500)
        #expect(loop.pc == 2)
        let second = #expect(throws: ExecutionError.self) { try loop.run(instructionLimit: 501) }
        #expect(second?.kind == .budgetExhausted(executed: 1501))
        #expect(loop.registers[0] == 750)

        // A finite program continues where the budget stopped it.
        let counter = try Runner.process(
            Asm.program {
                Asm.mov64(0, imm: 0)
                Asm.mov64(1, imm: 10_000)
                Asm.add64(0, imm: 2)
                Asm.add64(1, imm: -1)
                Asm.jump(.jumpNotEqual64Imm, 1, imm: 0, -3)
                Asm.exit()
            })
        #expect(throws: ExecutionError.self) { try counter.run(instructionLimit: 100) }
        #expect(try counter.run() == 20_000)
        #expect(counter.instructionsExecuted == 2 + 3 * 10_000 + 1)
        #expect(counter.state == .exited(20_000))

        // A budget of zero stops before the first instruction.
        let zero = try Runner.process([Asm.mov64(0, imm: 5), Asm.exit()])
        #expect(throws: ExecutionError.self) { try zero.run(instructionLimit: 0) }
        #expect(zero.pc == 0)
        #expect(try zero.run(instructionLimit: 2) == 5)
    }

    /// A safety net in case cancellation never arrives: minutes of the debug interpreter and
    /// about a minute of JIT code (at 0.3 ns an instruction, 10^8 instructions took only 30 ms,
    /// less than the other thread's sleep).
    static let safetyLimit: UInt64 = 200_000_000_000

    @Test func cancellationFromAnotherThread() throws {
        let process = try Runner.process([Asm.mov64(0, imm: 0), Asm.add64(0, imm: 1), Asm.ja(-2)])
        let flag = CancellationFlag()
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 0.05)
            flag.cancel()
        }
        let error = #expect(throws: ExecutionError.self) {
            try process.run(instructionLimit: Self.safetyLimit, cancellation: flag)
        }
        #expect(error?.kind == .cancelled)
        #expect(flag.isCancelled)
        #expect(process.instructionsExecuted > 0)
        if case .failed(let stored) = process.state {
            #expect(stored.kind == .cancelled)
        } else {
            Issue.record("state after cancellation: \(process.state)")
        }
        // The cancelled process does not run again.
        let again = #expect(throws: ExecutionError.self) { try process.run() }
        #expect(again?.kind == .notRunnable)
    }

    /// An async caller awaits a loop running on its own thread while another thread cancels it.
    /// (Both stay off the cooperative pool: with 2 cores, other tests' blocking work can keep a
    /// Task canceller from running until the loop's safety limit ends it.)
    @Test func cancellationWhileAwaited() async throws {
        let flag = CancellationFlag()
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 0.03)
            flag.cancel()
        }
        let outcome: ExecutionError.Kind? = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                do {
                    let process = try Runner.process([Asm.ja(-1)])
                    try process.run(instructionLimit: Self.safetyLimit, cancellation: flag)
                    continuation.resume(returning: nil)
                } catch let error as ExecutionError {
                    continuation.resume(returning: error.kind)
                } catch {
                    continuation.resume(returning: .unsupported("\(error)"))
                }
            }
        }
        #expect(outcome == .cancelled)
    }

    @Test func aCancelledFlagStopsLoopsButNotShortPrograms() throws {
        let flag = CancellationFlag()
        flag.cancel()
        let short = try Runner.process([Asm.mov64(0, imm: 3), Asm.exit()])
        #expect(try short.run(cancellation: flag) == 3)
        let loop = try Runner.process([Asm.ja(-1)])
        let error = #expect(throws: ExecutionError.self) {
            try loop.run(instructionLimit: 1_000_000, cancellation: flag)
        }
        #expect(error?.kind == .cancelled)
    }

    @Test func unknownHelper() throws {
        let error = try runError([Asm.mov64(0, imm: 0), Asm.call(1234), Asm.exit()])
        #expect(error?.kind == .unknownHelper(id: 1234, name: nil))
        #expect(error?.pc == 1)
        #expect(error?.description.contains("1234") == true)

        let withEmulator = try runError([Asm.call(99), Asm.exit()], emulator: ConformanceEmulator())
        #expect(withEmulator?.kind == .unknownHelper(id: 99, name: nil))

        // A call to an unknown helper on a path not taken does not matter.
        #expect(
            try Runner.run([Asm.mov64(0, imm: 1), Asm.jump(.jumpEqual64Imm, 0, imm: 1, 1), Asm.call(1234), Asm.exit()])
                == 1)
    }

    @Test func callxWithABadTarget() throws {
        for target: UInt64 in [
            0x1_2345_6789, 7, Program.functionAddressTag | 1, Program.functionAddressTag | 1000, .max,
        ] {
            let error = try runError(
                Asm.program {
                    Asm.lddw(1, target) // 0, 1
                    Asm.callx(1) // 2
                    Asm.exit()
                })
            #expect(error?.kind == .invalidCallTarget(target), "0x\(String(target, radix: 16))")
            #expect(error?.pc == 2)
        }
    }

    @Test func memoryFaultNamesPCAndRegion() throws {
        let null = try runError([Asm.mov64(1, imm: 0), Asm.load(.load32, 0, 1, off: 16), Asm.exit()])
        #expect(null?.pc == 1)
        #expect(null?.instruction == Asm.load(.load32, 0, 1, off: 16))
        guard null?.code == .memory, let fault = null?.kind.fault else {
            Issue.record("expected a memory fault, got \(String(describing: null))")
            return
        }
        #expect(fault.reason == .unmapped)
        #expect(fault.address == 16)
        #expect(fault.size == 4)
        #expect(fault.access == .read)
        let text = try #require(null).description
        #expect(text.contains("instruction 1"))
        #expect(text.contains("0x10"))
        #expect(text.contains("read"))
        #expect(text.contains("test"))

        let packet = try runError(
            [Asm.mov64(0, imm: 0), Asm.mov64(0, imm: 0), Asm.store(.store32Imm, 1, off: 6, imm: 1), Asm.exit()],
            memory: [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(packet?.pc == 2)
        let packetText = try #require(packet).description
        #expect(packetText.contains("memory"), "the region name")
        #expect(packetText.contains("write"))
        #expect(packetText.contains("instruction 2"))
    }

    @Test func faultAfterALoadImm64ReportsItsPC() throws {
        let error = try runError(
            Asm.program {
                Asm.lddw(1, 0x10) // 0, 1
                Asm.load(.load8, 0, 1) // 2
                Asm.exit()
            })
        #expect(error?.pc == 2)
    }

    @Test func readOnlySharedRegion() throws {
        let vm = VM()
        let storage = RegionStorage(bytes: [7, 0, 0, 0, 0, 0, 0, 0])
        let address = try vm.mapShared(storage, name: ".rodata", kind: .readOnly)
        let reader = try vm.load(Asm.lddw(1, address) + [Asm.load(.load64, 0, 1), Asm.exit()])
        #expect(try vm.run(reader) == 7)
        let writer = try vm.load(Asm.lddw(1, address) + [Asm.store(.store8Imm, 1, imm: 9), Asm.exit()])
        let error = #expect(throws: ExecutionError.self) { try vm.run(writer) }
        guard error?.code == .memory, let fault = error?.kind.fault else {
            Issue.record("expected a memory fault, got \(String(describing: error))")
            return
        }
        #expect(fault.reason == .readOnly)
        #expect(fault.region?.name == ".rodata")
        #expect(storage.bytes[0] == 7)
        // Atomics on read-only memory fault too.
        let atomic = try vm.load(
            Asm.lddw(1, address) + [Asm.mov64(2, imm: 1), Asm.atomic(.atomicAdd64, 1, src: 2), Asm.exit()])
        let atomicError = #expect(throws: ExecutionError.self) { try vm.run(atomic) }
        guard atomicError?.code == .memory, let atomicFault = atomicError?.kind.fault else {
            Issue.record("expected a memory fault, got \(String(describing: atomicError))")
            return
        }
        #expect(atomicFault.reason == .readOnly)
        #expect(storage.bytes[0] == 7)
    }

    @Test(arguments: [MimicCore.Operation.atomicAdd64, .atomicFetchOr32, .atomicCompareExchange64, .atomicExchange32])
    func misalignedAtomic(operation: MimicCore.Operation) throws {
        let error = try runError([Asm.mov64(2, imm: 1), Asm.atomic(operation, 10, off: -14, src: 2), Asm.exit()])
        guard error?.code == .memory, let fault = error?.kind.fault else {
            Issue.record("expected a memory fault, got \(String(describing: error))")
            return
        }
        #expect(fault.reason == .misaligned)
        #expect(error?.pc == 1)
    }

    @Test func atomicOutOfBounds() throws {
        let error = try runError([Asm.mov64(2, imm: 1), Asm.atomic(.atomicAdd64, 10, off: 0, src: 2), Asm.exit()])
        guard error?.code == .memory, let fault = error?.kind.fault else {
            Issue.record("expected a memory fault, got \(String(describing: error))")
            return
        }
        #expect(fault.reason == .outOfBounds)
        #expect(fault.region?.name == "stack")
    }

    @Test func packetLoadWithoutAPacket() throws {
        let error = try runError([Asm.loadAbsolute(.loadPacketAbsolute8, imm: 0), Asm.exit()])
        #expect(error?.kind == .noPacket)
        #expect(error?.pc == 0)
    }

    @Test func helperMemoryFault() throws {
        let error = try runError(
            [Asm.mov64(1, imm: 64), Asm.mov64(2, imm: 4), Asm.call(1), Asm.exit()],
            emulator: ConformanceEmulator())
        guard error?.code == .helperFailed, let id = error?.kind.helperID, let name = error?.kind.helperName,
            error?.kind.failure?.code == .memory, let fault = error?.kind.failure?.fault
        else {
            Issue.record("expected a helper memory failure, got \(String(describing: error))")
            return
        }
        #expect(id == 1)
        #expect(name == "memfrob")
        #expect(fault.address == 64)
        #expect(error?.pc == 2)
        #expect(error?.description.contains("memfrob") == true)
    }
}

// MARK: - Single-stepping

@Suite("VM: single-stepping")
struct SteppingTests {
    static let program = Asm.program {
        Asm.lddw(0, 0x1_0000_0000) // 0, 1
        Asm.mov64(1, imm: 5) // 2
        Asm.add64(0, src: 1) // 3 loop
        Asm.add64(1, imm: -1) // 4
        Asm.jump(.jumpNotEqual64Imm, 1, imm: 0, -3) // 5
        Asm.callLocal(1) // 6 -> 8
        Asm.exit() // 7
        Asm.alu(.mul64Imm, 0, imm: 3) // 8
        Asm.exit() // 9
    }

    @Test func steppingMatchesRunning() throws {
        let running = try Runner.process(Self.program)
        let expected = try running.run()

        let stepping = try Runner.process(Self.program)
        var steps: UInt64 = 0
        var result: UInt64?
        while result == nil, steps < 1000 {
            let before = stepping.instructionsExecuted
            let outcome = try stepping.step()
            steps += 1
            #expect(stepping.instructionsExecuted == before + 1)
            if case .exited(let value) = outcome { result = value }
        }
        #expect(result == expected)
        #expect(expected == (0x1_0000_0000 + 15) * 3)
        #expect(steps == running.instructionsExecuted)
        #expect(stepping.instructionsExecuted == running.instructionsExecuted)
        #expect(stepping.registers.all == running.registers.all)
        #expect(stepping.state == .exited(expected))
    }

    @Test func pcAdvancesAndLoadImm64IsOneStep() throws {
        let process = try Runner.process(Self.program)
        #expect(process.pc == 0)
        #expect(try process.step() == .running)
        #expect(process.pc == 2, "lddw takes two slots and one step")
        #expect(process.instructionsExecuted == 1)
        #expect(process.registers[0] == 0x1_0000_0000)
        try process.step()
        #expect(process.pc == 3)
        #expect(process.registers[1] == 5)
        try process.step()
        try process.step()
        try process.step() // jne taken
        #expect(process.pc == 3)
        // Into the call.
        for _ in 0..<12 { try process.step() }
        #expect(process.pc == 6)
        try process.step()
        #expect(process.pc == 8)
        #expect(process.callStack.count == 1)
        #expect(process.callStack.first?.returnPC == 7)
        #expect(process.registers[10] == process.stackBase + UInt64(process.stackSize) - 512)
    }

    @Test func stepsAfterExitAreRefused() throws {
        let process = try Runner.process([Asm.mov64(0, imm: 9), Asm.exit()])
        #expect(try process.step() == .running)
        #expect(try process.step() == .exited(9))
        for _ in 0..<2 {
            let error = #expect(throws: ExecutionError.self) { try process.step() }
            #expect(error?.kind == .notRunnable)
        }
        let error = #expect(throws: ExecutionError.self) { try process.run() }
        #expect(error?.kind == .notRunnable)
        #expect(process.state == .exited(9))
        #expect(process.instructionsExecuted == 2)
    }

    @Test func stepIntoAFault() throws {
        let process = try Runner.process([Asm.mov64(1, imm: 0), Asm.load(.load8, 0, 1), Asm.exit()])
        try process.step()
        let error = #expect(throws: ExecutionError.self) { try process.step() }
        #expect(error?.pc == 1)
        #expect(process.pc == 1)
        let again = #expect(throws: ExecutionError.self) { try process.step() }
        #expect(again?.kind == .notRunnable)
    }

    @Test func mixingStepAndRun() throws {
        let process = try Runner.process(Self.program)
        try process.step()
        try process.step()
        let result = try process.run()
        #expect(result == (0x1_0000_0000 + 15) * 3)
        let fresh = try Runner.process(Self.program)
        #expect(try fresh.run() == result)
        #expect(fresh.instructionsExecuted == process.instructionsExecuted)
    }
}

// MARK: - Robustness

@Suite("VM: robustness")
struct RobustnessTests {
    /// Random programs either fail to load with a `LoadError` or run to an exit or an
    /// `ExecutionError`: never a crash, never another error type.
    @Test func randomProgramsNeverCrash() throws {
        var rng = SplitMix64(seed: 0x5EED)
        let forms = InstructionSet.forms
        let interesting: [Int32] = [
            0, 1, -1, 2, 4, 7, 8, 16, 31, 32, 33, 63, 64, -8, -16, -512, .min, .max, 0x10, 1000,
        ]
        var loaded = 0
        var exited = 0
        var faulted = 0
        var rejected = 0
        let emulator = ConformanceEmulator()
        for _ in 0..<3000 {
            var code: [RawInstruction] = []
            let length = Int.random(in: 1...12, using: &rng)
            for _ in 0..<length {
                if Int.random(in: 0..<10, using: &rng) < 8 {
                    let form = forms.randomElement(using: &rng)!
                    var instruction = Asm.op(
                        form.operation,
                        dst: UInt8.random(in: 0...(Bool.random(using: &rng) ? 9 : 11), using: &rng),
                        src: UInt8.random(in: 0...10, using: &rng),
                        off: Int16.random(in: -4...4, using: &rng) * (Bool.random(using: &rng) ? 1 : 8),
                        imm: interesting.randomElement(using: &rng)!)
                    if form.operation == .callHelper { instruction.imm = Int32.random(in: 0...7, using: &rng) }
                    if form.operation == .callLocal || form.operation == .jump32 {
                        instruction.imm = Int32.random(in: -4...4, using: &rng)
                    }
                    // Fields the form does not use must be zero (the loader refuses them).
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
                    code.append(instruction)
                    if form.operation == .loadImm64 {
                        code.append(RawInstruction(opcode: 0, imm: interesting.randomElement(using: &rng)!))
                    }
                } else {
                    code.append(
                        RawInstruction(
                            opcode: .random(in: 0...255, using: &rng), destination: .random(in: 0...15, using: &rng),
                            source: .random(in: 0...15, using: &rng), offset: .random(in: -3...3, using: &rng),
                            imm: .random(in: -3...3, using: &rng)))
                }
            }
            code.append(Asm.exit())

            let vm = VM(emulator: Bool.random(using: &rng) ? emulator : nil)
            let program: Program
            do {
                program = try vm.load(code)
            } catch {
                rejected += 1
                continue
            }
            loaded += 1
            let memory = (0..<Int.random(in: 0...32, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let process = try vm.makeProcess(for: program, context: MemoryContext(memory))
            do {
                _ = try process.run(instructionLimit: 10_000)
                exited += 1
            } catch {
                faulted += 1
                #expect(!error.description.isEmpty)
            }
        }
        #expect(loaded > 100)
        #expect(rejected > 100)
        #expect(exited > 50)
        #expect(faulted > 50)
    }

    @Test func randomBytecodeNeverCrashes() {
        var rng = SplitMix64(seed: 42)
        var outcomes = (loaded: 0, rejected: 0)
        for _ in 0..<2000 {
            let bytes = (0..<Int.random(in: 0...48, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let vm = VM()
            do {
                let program = try vm.load(bytecode: bytes)
                outcomes.loaded += 1
                _ = try? vm.run(program, instructionLimit: 1000)
            } catch {
                outcomes.rejected += 1
                #expect(!error.description.isEmpty)
            }
        }
        #expect(outcomes.rejected > 1000)
    }
}
