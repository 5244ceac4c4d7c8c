import Testing
import MimicCore
import MimicMemory

/// The error structs: codes, structured fields, causes and the descriptions users read.
@Suite("Errors: codes, fields and causes")
struct ErrorCodeTests {
    @Test func factoriesSetTheCodeAndTheFields() {
        let reason = LoadError.Reason.invalidRegister(field: "source", register: 12)
        #expect(reason.code == .invalidRegister)
        #expect(reason.field == "source" && reason.register == 12)
        #expect(reason.description == "invalid source register r12 (valid: r0-r10)")
        #expect(reason != .invalidRegister(field: "source", register: 13))

        let kind = ExecutionError.Kind.unknownHelper(id: 7, name: "bpf_x")
        #expect(kind.code == .unknownHelper && kind.helperID == 7 && kind.helperName == "bpf_x")
        #expect(kind.description == "call to unknown or unsupported helper #7 (bpf_x)")
        #expect("\(ExecutionError.Code.budgetExhausted)" == "budgetExhausted")
    }

    @Test func codesAreHashable() {
        let codes: Set<HelperFailure.Code> = [.memory, .message, .unsupported, .callback, .memory]
        #expect(codes.count == 4)
        #expect(LoadError.Code.tooLarge != .emptyProgram)
    }

    @Test func helperFailureDescriptionsAndCauses() {
        let fault = MemoryFault(reason: .unmapped, access: .read, address: 16, size: 4, region: nil)
        let memory = HelperFailure.memory(fault)
        #expect(memory.code == .memory && memory.fault == fault)
        #expect(memory.description == fault.description)
        #expect(HelperFailure.message("no").description == "no")

        let inner = ExecutionError(.cancelled, pc: 3, instruction: nil, programName: "cb")
        let callback = HelperFailure.callback(inner)
        #expect(callback.callbackError == inner)
        #expect(callback.description == "callback program cb, instruction 3: cancelled")
        #expect(callback == .callback(inner))
        #expect(callback != .callback(ExecutionError(.cancelled, pc: 4, instruction: nil, programName: "cb")))
    }

    @Test func loadErrorCarriesACause() throws {
        let error = try #require(throws: LoadError.self) { try VM().load(bytecode: [0x95, 0, 0], name: "p") }
        let cause = BytecodeError.truncated(byteCount: 3)
        #expect(error.code == .invalidEncoding)
        #expect(error.cause as? BytecodeError == cause)
        #expect(error == LoadError(.invalidEncoding("\(cause)"), programName: "p", cause: cause))
        #expect(error != LoadError(.invalidEncoding("\(cause)"), programName: "p"))
        #expect(error.description == "program p: invalid encoding: \(cause)")
    }

    /// A context that refuses to attach.
    struct RefusingContext: Context {
        func attach(to process: MimicCore.Process) throws(SetupError) { throw .message("no room") }
    }

    @Test func setupAPIsThrowSetupError() throws {
        let vm = VM()
        let program = try vm.load([Asm.mov64(0, imm: 1), Asm.exit()])
        let error = try #require(throws: SetupError.self) {
            try vm.makeProcess(for: program, context: RefusingContext())
        }
        #expect(error.code == .message && error.description == "no room")
        let process = try vm.makeProcess(for: program)
        #expect(throws: SetupError.message("no room")) { try process.reset(context: RefusingContext()) }
    }
}
