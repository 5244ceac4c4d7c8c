import Foundation
import MimicCore
import MimicKernel
import MimicTestSupport
@testable import MimicVerifier
import XCTest

/// BTF-typed contexts and reads through kernel pointers, against a stand-in kernel BTF
/// (`Fixtures/kernel_types.c`), so that they are checked without a kernel. The verdicts and
/// messages of `btf_access.bpf.o` are the ones Linux 6.18.44 gave (FixtureAgreementTests compares
/// them with the running kernel's where it can load the programs); the assembler programs cover
/// what this machine's kernel refuses to load (fentry, fexit) or what its BTF lacks.
final class KernelTypesTests: XCTestCase {
    static let fixtures = ExternalTestData.packageRoot.path + "/Tests"

    static func kernelBTF() throws -> BTF {
        let object = try ObjectFile(contentsOf: fixtures + "/MimicVerifierTests/Fixtures/kernel_types.o")
        return try XCTUnwrap(object.btf)
    }

    /// The last line of the kernel's log for each program of btf_access.bpf.o, nil when accepted.
    static let kernelVerdicts: [String: String?] = [
        "chase": nil,
        "write_field": "only read is supported",
        "beyond_struct": "access beyond struct task_struct at off 65536 size 8",
        "negative_offset": "R1 is ptr_task_struct invalid negative access: off=-8",
        "variable_offset": "R2 is ptr_task_struct invalid variable offset: off=0, var_off=(0x0; 0x8)",
        "integer_argument": "R1 invalid mem access 'scalar'",
        "past_arguments": "invalid bpf_context access off=24 size=8",
        "short_argument": nil,
        "short_pointer": "invalid bpf_context access off=0 size=4",
        "write_context": "invalid bpf_context access off=8 size=8",
        "array_member": nil,
        "number_as_pointer": "R1 invalid mem access 'scalar'",
        "task_unchecked": "R1 invalid mem access 'trusted_ptr_or_null_'",
        "task_checked": nil,
        "iter_past_context": "invalid bpf_context access off=16 size=8",
        "current_task": nil,
        "cookie_of_task": "R1 is of type task_struct but sock_common is expected",
        "cookie_of_sock": nil,
        "cookie_of_common": nil,
        "cast_checked": nil,
        "cast_unchecked": "R0 invalid mem access 'ptr_or_null_'",
    ]

    func testTheFixtureGetsTheKernelsVerdictsAndMessages() throws {
        let btf = try Self.kernelBTF()
        let object = try ObjectFile(
            contentsOf: Self.fixtures + "/MimicLinuxTests/Fixtures/tracing/btf_access.bpf.o", targetBTF: btf)
        XCTAssertEqual(Set(object.programs.map(\.name)), Set(Self.kernelVerdicts.keys))
        for program in object.programs {
            let report = Verifier().verify(object: object, program: program, kernelBTF: btf)
            XCTAssertEqual(report.error?.message, Self.kernelVerdicts[program.name] ?? nil, program.name)
        }
    }

    /// The kernel's first log line, in the advice: ctx[3] of a three-argument tracepoint is the
    /// (missing) return slot, counted after the tracepoint's `__data` (Linux 6.18.44's words).
    func testTheAdviceQuotesTheKernelsReason() throws {
        let btf = try Self.kernelBTF()
        let object = try ObjectFile(
            contentsOf: Self.fixtures + "/MimicLinuxTests/Fixtures/tracing/btf_access.bpf.o", targetBTF: btf)
        let program = try XCTUnwrap(object.program(named: "past_arguments"))
        let advice = Verifier().verify(object: object, program: program, kernelBTF: btf).error?.advice ?? ""
        XCTAssertTrue(advice.contains("func 'sched_process_exec' doesn't have 4-th argument"), advice)
    }

    func testWithoutKernelBTFKernelPointersAreNumbers() throws {
        let object = try ObjectFile(contentsOf: Self.fixtures + "/MimicLinuxTests/Fixtures/tracing/btf_access.bpf.o")
        let chase = try XCTUnwrap(object.program(named: "chase"))
        XCTAssertEqual(
            Verifier().verify(object: object, program: chase).error?.message, "R1 invalid mem access 'scalar'")
    }

    /// Verifies assembler `text` as a program of `kind` attached to `target` (a name of the
    /// stand-in BTF); the kernel's last log line, nil when accepted.
    func verdict(
        _ text: String, _ target: String, kind: BTF.Kind = .function, attach: AttachType = .traceFentry,
        type: ProgramType = .tracing, license: String = "GPL"
    ) throws -> String? {
        let program = VerifierProgram(
            instructions: try Assembler.assemble(text), type: type, attachType: attach, license: license,
            kernelBTF: try Self.kernelBTF(), attachTarget: KernelAttachTarget(name: target, kind: kind))
        return Verifier().verify(program).error?.message
    }

    func testFentryArguments() throws {
        // do_unlinkat(int dfd, struct filename *name): name->name is a char *, memory read
        // without bounds; the struct pointer is not trusted in fentry.
        let readName = """
            ldxdw %r1, [%r1+8]
            ldxdw %r2, [%r1+0]
            ldxb %r0, [%r2+5]
            exit
            """
        XCTAssertNil(try verdict(readName, "do_unlinkat"))
        let writeName = """
            ldxdw %r1, [%r1+8]
            ldxdw %r2, [%r1+0]
            stb [%r2+0], 1
            mov %r0, 0
            exit
            """
        XCTAssertEqual(try verdict(writeName, "do_unlinkat"), "R2 cannot write into rdonly_untrusted_mem")
        // The struct itself: a 4-byte read straddling two members.
        let straddle = """
            ldxdw %r1, [%r1+8]
            ldxw %r0, [%r1+6]
            exit
            """
        XCTAssertEqual(
            try verdict(straddle, "do_unlinkat"),
            "cannot access ptr member name with moff 0 in struct filename with off 6 size 4")
        // The return slot: fentry has none, fexit reads the int.
        let readReturn = """
            ldxdw %r0, [%r1+16]
            exit
            """
        XCTAssertEqual(try verdict(readReturn, "do_unlinkat"), "invalid bpf_context access off=16 size=8")
        XCTAssertNil(try verdict(readReturn, "do_unlinkat", attach: .traceFexit))
        // fexit of a function returning void *: a number.
        let readPointerReturn = """
            ldxdw %r1, [%r1+8]
            ldxb %r0, [%r1+0]
            exit
            """
        XCTAssertEqual(
            try verdict(readPointerReturn, "returns_pointer", attach: .traceFexit), "R1 invalid mem access 'scalar'")
        // A pointer to a pointer is refused by 6.18.
        let pointerToPointer = """
            ldxdw %r0, [%r1+0]
            exit
            """
        XCTAssertEqual(try verdict(pointerToPointer, "takes_enum_pointer"), "invalid bpf_context access off=0 size=8")
        // struct filename ends in a flexible array (iname): reads past its size are its elements.
        let pastEnd = """
            ldxdw %r1, [%r1+8]
            ldxb %r0, [%r1+400]
            exit
            """
        XCTAssertNil(try verdict(pastEnd, "do_unlinkat"))
        // A non-GPL program may not read kernel structs.
        let readStruct = """
            ldxdw %r1, [%r1+8]
            ldxw %r0, [%r1+8]
            exit
            """
        XCTAssertNil(try verdict(readStruct, "do_unlinkat"))
        XCTAssertEqual(
            try verdict(readStruct, "do_unlinkat", license: "Proprietary"),
            "Cannot access kernel 'struct filename' from non-GPL compatible program")
    }

    func testStructWalks() throws {
        let exec = "btf_trace_sched_process_exec"
        func read(_ body: String) throws -> String? {
            try verdict("ldxdw %r1, [%r1+0]\n" + body + "\nmov %r0, 0\nexit", exec, kind: .typedef, attach: .traceRawTp)
        }
        let task = try Self.kernelBTF()
        let id = try XCTUnwrap(task.typeID(named: "task_struct", kind: .structure))
        guard case .structure(_, _, let members)? = task.type(id) else { return XCTFail("no task_struct") }
        func offset(_ name: String) throws -> Int {
            Int(try XCTUnwrap(members.first { $0.name == name }).bitOffset / 8)
        }
        // A bit field read whole; a union of two members (untrusted pointers); a nested struct's
        // pointer.
        XCTAssertNil(try read("ldxb %r2, [%r1+\(try offset("comm") + 16)]"))
        XCTAssertNil(try read("ldxdw %r2, [%r1+\(try offset("either"))]\nldxw %r3, [%r2+12]"))
        XCTAssertNil(try read("ldxdw %r2, [%r1+\(try offset("nested") + 8)]\nldxw %r3, [%r2+8]"))

        // The union's pointer is untrusted, and what it leads to stays so; the real parent of a
        // trusted task is RCU-protected (BTF_TYPE_SAFE_RCU), of a plain one plain.
        let types = KernelTypes(btf: task)
        let either = types.walk(id, off: try offset("either"), size: 8, flags: .trusted, inRCU: true)
        XCTAssertEqual(either, .pointer(id: id, flags: .untrusted, maybeNull: false))
        let parent = try offset("real_parent")
        XCTAssertEqual(
            types.walk(id, off: parent, size: 8, flags: .untrusted, inRCU: true),
            .pointer(id: id, flags: .untrusted, maybeNull: false))
        XCTAssertEqual(
            types.walk(id, off: parent, size: 8, flags: .trusted, inRCU: true),
            .pointer(id: id, flags: .rcu, maybeNull: false))
        XCTAssertEqual(
            types.walk(id, off: parent, size: 8, flags: [], inRCU: true), .pointer(id: id, flags: [], maybeNull: false))
        // Outside an RCU section (a sleepable program), walked pointers are untrusted.
        XCTAssertEqual(
            types.walk(id, off: parent, size: 8, flags: .trusted, inRCU: false),
            .pointer(id: id, flags: .untrusted, maybeNull: false))
        // The pointer to the real parent is RCU-protected (BTF_TYPE_SAFE_RCU) and never NULL.
        XCTAssertNil(try read("ldxdw %r2, [%r1+\(try offset("real_parent"))]\nldxw %r3, [%r2+0]"))
    }

    func testTracepointArgumentsThatMayBeNull() throws {
        // kfree_skb's fourth argument may be NULL (raw_tp_null_args 0x1000).
        let unchecked = "ldxdw %r1, [%r1+24]\nldxw %r0, [%r1+0]\nexit"
        XCTAssertEqual(
            try verdict(unchecked, "btf_trace_kfree_skb", kind: .typedef, attach: .traceRawTp),
            "R1 invalid mem access 'trusted_ptr_or_null_'")
        let checked = "ldxdw %r1, [%r1+24]\nmov %r0, 0\njeq %r1, 0, +1\nldxw %r0, [%r1+0]\nexit"
        XCTAssertNil(try verdict(checked, "btf_trace_kfree_skb", kind: .typedef, attach: .traceRawTp))
    }

    func testMapElementIteratorBuffers() throws {
        // key (read-only) and value are buffers, NULL after the last element.
        let target = "bpf_iter_bpf_map_elem"
        let readKey = "ldxdw %r2, [%r1+16]\nmov %r0, 0\njeq %r2, 0, +1\nldxw %r0, [%r2+0]\nexit"
        XCTAssertNil(try verdict(readKey, target, attach: .traceIter))
        let writeKey = "ldxdw %r2, [%r1+16]\nmov %r0, 0\njeq %r2, 0, +1\nstw [%r2+0], 1\nexit"
        XCTAssertEqual(try verdict(writeKey, target, attach: .traceIter), "R2 cannot write into rdonly_buf")
        let writeValue = "ldxdw %r2, [%r1+24]\nmov %r0, 0\njeq %r2, 0, +1\nstw [%r2+4], 1\nexit"
        XCTAssertNil(try verdict(writeValue, target, attach: .traceIter))
        let unchecked = "ldxdw %r2, [%r1+24]\nldxw %r0, [%r2+0]\nexit"
        XCTAssertEqual(try verdict(unchecked, target, attach: .traceIter), "R2 invalid mem access 'buf_or_null'")
        // The map they visit is never NULL.
        XCTAssertNil(try verdict("ldxdw %r2, [%r1+8]\nldxw %r0, [%r2+0]\nexit", target, attach: .traceIter))
        let negative = "ldxdw %r2, [%r1+24]\nmov %r0, 0\njeq %r2, 0, +1\nldxw %r0, [%r2-4]\nexit"
        XCTAssertEqual(
            try verdict(negative, target, attach: .traceIter), "R2 invalid rdwr buffer access: off=-4, size=4")
    }

    /// A little-endian BTF of `types` (each `struct btf_type` with what follows it), no strings.
    static func blob(_ types: [[UInt32]]) -> [UInt8] {
        let words = types.flatMap { $0 }
        var bytes: [UInt8] = [0x9F, 0xEB, 1, 0]
        for word in [24, 0, UInt32(words.count * 4), UInt32(words.count * 4), 1] + words {
            bytes += withUnsafeBytes(of: word.littleEndian, Array.init)
        }
        return bytes + [0]
    }

    static func info(_ kind: BTF.Kind, vlen: UInt32 = 0) -> UInt32 { UInt32(kind.rawValue) << 24 | vlen }

    /// Every struct of the BTF read at every offset and size: an answer each time, never a trap,
    /// also for a BTF whose array counts claim more elements than bytes or overflow.
    func testWalksOfEveryStructEnd() throws {
        // [1] int; [2] int[2^31][2^31][2^31] (sizes overflow); [3] [4] its inner arrays;
        // [5] struct { [2] a; [6] b at bit 64 } of 16 bytes; [6] int[0x7fffffff] (more elements
        // than the struct's bytes).
        let corrupt = Self.blob([
            [0, Self.info(.int), 4, 32],
            [0, Self.info(.array), 0, 3, 4, 0x8000_0000],
            [0, Self.info(.array), 0, 4, 1, 0x8000_0000],
            [0, Self.info(.array), 0, 1, 1, 0x8000_0000],
            [0, Self.info(.structure, vlen: 2), 16, 0, 2, 0, 0, 6, 64],
            [0, Self.info(.array), 0, 1, 1, 0x7fff_ffff],
        ])
        var btfs = [try Self.kernelBTF()]
        XCTAssertNoThrow(try BTF(bytes: corrupt))
        if let parsed = try? BTF(bytes: corrupt) { btfs.append(parsed) }
        if let running = try? KernelObject.runningKernelBTF() { btfs.append(running) }
        for btf in btfs {
            let types = KernelTypes(btf: btf)
            var walked = 0
            for id in 1..<UInt32(btf.count) where walked < 3000 {
                guard case .structure(_, let size, _)? = btf.type(id) else { continue }
                walked += 1
                for off in stride(from: -8, through: Int(min(size, 256)) + 8, by: 4) {
                    for width in [1, 2, 4, 8] {
                        _ = types.walk(id, off: off, size: width, flags: .trusted, inRCU: true)
                    }
                }
            }
            XCTAssertGreaterThan(walked, 0)
        }
    }
}
