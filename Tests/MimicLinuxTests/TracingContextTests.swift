import Foundation
import MimicCore
import MimicJSON
import MimicLinux
import Testing

/// The layouts `TraceEvents` gives tracing contexts: `pt_regs` by register name on x86-64 and
/// arm64, a syscall wrapper's inner `pt_regs`, `bpf_perf_event_data`.
@Suite struct TracingContextTests {
    /// A program of the kprobe fixture, retargeted to `section` and `type`.
    static func program(_ section: String, type: ProgramType = .kprobe) throws -> ObjectProgram {
        let object = try ObjectFile(
            contentsOf: Fixture.directory.appendingPathComponent("tracing/kprobe.bpf.o").path)
        var program = try #require(object.programs.first)
        program.sectionName = section
        program.type = type
        return program
    }

    static func context(
        _ event: String, section: String, type: ProgramType = .kprobe, registers: RegisterLayout,
        wrapper: Bool = true
    ) throws -> TracingContext {
        var kernel = KernelConfig()
        kernel.hasSyscallWrapper = wrapper
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1, kernel: kernel))
        let builder = TraceEvents(emulator: emulator, vm: VM(emulator: emulator), objectBTF: nil, registers: registers)
        let parsed = try TraceEvent(json: JSONField(try JSONValue.parse(event), path: "event"))
        return try #require(try builder.contexts(parsed, program: program(section, type: type)).first)
    }

    static func word(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        bytes[offset..<offset + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    @Test func registersByNameOnBothLayouts() throws {
        let x86 = try Self.context(
            #"{"regs": {"rip": 9, "sp": 8}, "args": [1, 2, 3, 4, 5, -1], "ret": 6}"#, section: "kprobe/f",
            registers: .x86_64)
        #expect(x86.bytes.count == 168)
        // di si dx cx r8 r9 = 14 13 12 11 9 8; ax 10; ip 16; sp 19 (in 8-byte words).
        #expect([14, 13, 12, 11, 9, 8].map { Self.word(x86.bytes, $0 * 8) } == [1, 2, 3, 4, 5, UInt64.max])
        #expect(Self.word(x86.bytes, 80) == 6 && Self.word(x86.bytes, 128) == 9 && Self.word(x86.bytes, 152) == 8)

        let arm = try Self.context(
            #"{"regs": {"x3": 7, "pc": 9, "lr": 4}, "args": [1, 2]}"#, section: "kprobe/f", registers: .arm64)
        #expect(arm.bytes.count == 336)
        #expect(Self.word(arm.bytes, 0) == 1 && Self.word(arm.bytes, 8) == 2 && Self.word(arm.bytes, 24) == 7)
        #expect(Self.word(arm.bytes, 256) == 9 && Self.word(arm.bytes, 240) == 4)

        #expect(throws: JSONError.self) {
            try Self.context(#"{"regs": {"eax": 1}}"#, section: "kprobe/f", registers: .x86_64)
        }
        #expect(throws: JSONError.self) {
            try Self.context(#"{"fields": {"id": 1}}"#, section: "kprobe/f", registers: .x86_64)
        }
    }

    @Test func syscallArgumentsGoThroughTheWrapper() throws {
        let wrapped = try Self.context(
            #"{"syscall_args": [10, 20, 30, 40]}"#, section: "ksyscall/kill", registers: .x86_64)
        // PT_REGS_PARM1 (di) points at an inner pt_regs after the outer one; PARM4_SYSCALL is r10.
        #expect(wrapped.selfPointers.contains { $0.at == 112 && $0.target == 168 })
        #expect(Self.word(wrapped.bytes, 168 + 112) == 10 && Self.word(wrapped.bytes, 168 + 56) == 40)

        let direct = try Self.context(
            #"{"syscall_args": [10, 20, 30, 40]}"#, section: "ksyscall/kill", registers: .x86_64, wrapper: false)
        #expect(direct.bytes.count == 168 && direct.selfPointers.isEmpty)
        #expect(Self.word(direct.bytes, 112) == 10 && Self.word(direct.bytes, 56) == 40)

        let arm = try Self.context(#"{"syscall_args": [10]}"#, section: "ksyscall/kill", registers: .arm64)
        #expect(Self.word(arm.bytes, 336) == 10 && Self.word(arm.bytes, 336 + 272) == 10) // x0 and orig_x0
    }

    @Test func perfEventData() throws {
        let context = try Self.context(
            #"{"regs": {"ip": 5}, "sample_period": 100, "addr": "0x1000"}"#, section: "perf_event", type: .perfEvent,
            registers: .x86_64)
        #expect(context.bytes.count == 184)
        #expect(Self.word(context.bytes, 128) == 5 && Self.word(context.bytes, 168) == 100)
        #expect(Self.word(context.bytes, 176) == 0x1000)
    }
}

extension TracingContextTests {
    /// The layout comes from the object's BTF: the fixtures are built for x86-64.
    @Test func layoutIsInferredFromTheObject() throws {
        let object = try ObjectFile(
            contentsOf: Fixture.directory.appendingPathComponent("tracing/kprobe.bpf.o").path)
        #expect(RegisterLayout(inferredFrom: object.btf) == .x86_64)
        let withoutRegs = try ObjectFile(
            contentsOf: Fixture.directory.appendingPathComponent("tracing/task_iter.bpf.o").path)
        #expect(RegisterLayout(inferredFrom: withoutRegs.btf) == nil)
    }
}

extension TracingContextTests {
    /// Through a trampoline the argument count sits before the arguments (ctx[-1]) and fexit's
    /// return value after them (ctx[nr_args]), as `bpf_get_func_arg_cnt` / `_ret` read them.
    @Test func trampolineArgumentCount() throws {
        let fexit = try Self.context(
            #"{"args": [1, 2, -5]}"#, section: "fexit/f", type: .tracing, registers: .x86_64)
        #expect(fexit.registerOffset == 8)
        #expect(
            Self.word(fexit.bytes, 0) == 2 && Self.word(fexit.bytes, 8) == 1
                && Self.word(fexit.bytes, 24) == UInt64(bitPattern: -5))
        let fentry = try Self.context(#"{"args": [7]}"#, section: "fentry/f", type: .tracing, registers: .x86_64)
        #expect(Self.word(fentry.bytes, 0) == 1 && fentry.registerOffset == 8)
        let rawTP = try Self.context(#"{"args": [7]}"#, section: "raw_tp/f", type: .rawTracepoint, registers: .x86_64)
        #expect(rawTP.bytes == [7, 0, 0, 0, 0, 0, 0, 0] && rawTP.registerOffset == 0)
    }
}
