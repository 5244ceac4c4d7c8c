import MimicCore
import MimicKernel
import MimicVerifier
import XCTest

/// One hand-written program per rejection class (and near-misses the kernel accepts), each
/// verified by Mimic and, when the kernel is reachable, loaded by it.
final class RejectionClassTests: XCTestCase {
    /// The maps the programs refer to: `lddw %rN, MAP+i` (0x4d415000_0000000i) is map i,
    /// `lddw %rN, VAL+i` (0x4d415600_0000000i) its value.
    static let maps: [VerifierMap] = [
        VerifierMap(name: "hash", type: .hash, keySize: 4, valueSize: 8, maxEntries: 16),
        VerifierMap(name: "ring", type: .ringBuffer, keySize: 0, valueSize: 0, maxEntries: 4096),
        VerifierMap(name: "array", type: .array, keySize: 4, valueSize: 8, maxEntries: 4),
    ]

    struct Case {
        var name: String
        var type: ProgramType
        var accepted: Bool
        var kind: VerificationErrorKind?
        var text: String
    }

    static func rejected(_ name: String, _ type: ProgramType = .xdp, _ kind: VerificationErrorKind, _ text: String)
        -> Case
    {
        Case(name: name, type: type, accepted: false, kind: kind, text: text)
    }

    static func accepted(_ name: String, _ type: ProgramType = .xdp, _ text: String) -> Case {
        Case(name: name, type: type, accepted: true, kind: nil, text: text)
    }

    static let packetHeader = """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        """

    static let lookup = """
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        lddw %r1, 0x4d41500000000000
        call 1
        """

    static let cases: [Case] = [
        rejected("uninitialised register", .xdp, .uninitializedRegister, "mov %r0, %r2\nexit"),
        rejected("no return value", .xdp, .uninitializedRegister, "exit"),
        rejected(
            "packet read without check", .xdp, .packetBounds, packetHeader + "\nldxh %r0, [%r2+12]\nmov %r0, 2\nexit"),
        accepted(
            "packet read after check", .xdp,
            packetHeader + "\nmov %r4, %r2\nadd %r4, 14\njgt %r4, %r3, out\nldxh %r0, [%r2+12]\nout:\nmov %r0, 2\nexit"),
        rejected(
            "packet check too short", .xdp, .packetBounds,
            packetHeader + "\nmov %r4, %r2\nadd %r4, 10\njgt %r4, %r3, out\nldxh %r0, [%r2+12]\nout:\nmov %r0, 2\nexit"),
        accepted(
            "packet check with data_end on the left", .schedCls,
            "ldxw %r2, [%r1+76]\nldxw %r3, [%r1+80]\nmov %r4, %r2\nadd %r4, 14\njlt %r3, %r4, out\nldxh %r0, [%r2+12]\nout:\nmov %r0, 0\nexit"
        ),
        rejected(
            "packet read past check after variable offset", .xdp, .packetBounds,
            packetHeader
                + "\nmov %r4, %r2\nadd %r4, 14\njgt %r4, %r3, out\nldxb %r5, [%r2+0]\nadd %r2, %r5\nldxb %r0, [%r2+0]\nout:\nmov %r0, 2\nexit"
        ),
        rejected("map value without null check", .xdp, .nullPointer, lookup + "\nldxdw %r1, [%r0+0]\nmov %r0, 0\nexit"),
        accepted(
            "map value after null check", .xdp, lookup + "\njeq %r0, 0, out\nldxdw %r1, [%r0+0]\nout:\nmov %r0, 0\nexit"
        ),
        rejected(
            "map value past its end", .xdp, .mapValueBounds,
            lookup + "\njeq %r0, 0, out\nldxdw %r1, [%r0+8]\nout:\nmov %r0, 0\nexit"),
        rejected(
            "map value with a large index", .xdp, .mapValueBounds,
            lookup
                + "\njeq %r0, 0, out\nldxw %r1, [%r0+0]\nand %r1, 0xff\nadd %r0, %r1\nldxb %r1, [%r0+0]\nout:\nmov %r0, 0\nexit"
        ),
        rejected(
            "map value with an unbounded index", .xdp, .pointerArithmetic,
            lookup + "\njeq %r0, 0, out\nldxdw %r1, [%r0+0]\nadd %r0, %r1\nldxb %r1, [%r0+0]\nout:\nmov %r0, 0\nexit"),
        accepted(
            "map value with a masked index", .xdp,
            lookup
                + "\njeq %r0, 0, out\nldxw %r1, [%r0+0]\nand %r1, 7\nadd %r0, %r1\nldxb %r1, [%r0+0]\nout:\nmov %r0, 0\nexit"
        ),
        rejected(
            "map value with a negative index", .xdp, .mapValueBounds,
            lookup
                + "\njeq %r0, 0, out\nldxw %r1, [%r0+0]\nand %r1, 15\nsub %r1, 8\nadd %r0, %r1\nldxb %r1, [%r0+0]\nout:\nmov %r0, 0\nexit"
        ),
        accepted(
            "array value with a checked index", .xdp,
            "ldxw %r6, [%r1+16]\nstw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\nlddw %r1, 0x4d41500000000002\ncall 1\njeq %r0, 0, out\njgt %r6, 7, out\nadd %r0, %r6\nldxb %r1, [%r0+0]\nout:\nmov %r0, 0\nexit"
        ),
        rejected("stack write below the frame", .xdp, .stackAccess, "stdw [%r10-520], 0\nmov %r0, 0\nexit"),
        rejected("stack read above the frame", .xdp, .stackAccess, "ldxdw %r0, [%r10+0]\nexit"),
        accepted("uninitialised stack read as root", .xdp, "ldxdw %r0, [%r10-8]\nmov %r0, 0\nexit"),
        accepted(
            "stack with a bounded variable offset", .xdp,
            "ldxw %r1, [%r1+16]\nstdw [%r10-8], 0\njgt %r1, 7, out\nmov %r2, %r10\nadd %r2, -8\nadd %r2, %r1\nldxb %r0, [%r2+0]\nout:\nmov %r0, 0\nexit"
        ),
        rejected("context read out of range", .xdp, .contextAccess, "ldxw %r0, [%r1+64]\nexit"),
        rejected("context read of the wrong size", .xdp, .contextAccess, "ldxdw %r0, [%r1+0]\nmov %r0, 0\nexit"),
        rejected("context write in XDP", .xdp, .contextAccess, "mov %r2, 0\nstxw [%r1+12], %r2\nmov %r0, 0\nexit"),
        accepted("context write of mark in tc", .schedCls, "mov %r2, 1\nstxw [%r1+8], %r2\nmov %r0, 0\nexit"),
        rejected("socket filter reading data", .socketFilter, .contextAccess, "ldxw %r2, [%r1+76]\nmov %r0, 0\nexit"),
        rejected("modified context pointer", .xdp, .contextAccess, "add %r1, 4\nldxw %r0, [%r1+0]\nexit"),
        accepted("kprobe register read", .kprobe, "ldxdw %r0, [%r1+112]\nmov %r0, 0\nexit"),
        rejected("kprobe context write", .kprobe, .contextAccess, "mov %r2, 0\nstxdw [%r1+112], %r2\nmov %r0, 0\nexit"),
        rejected("tracepoint common fields", .tracepoint, .contextAccess, "ldxdw %r0, [%r1+0]\nmov %r0, 0\nexit"),
        rejected("unknown helper", .xdp, .unknownHelper, "call 999\nmov %r0, 0\nexit"),
        rejected(
            "helper of another program type", .xdp, .unknownHelper,
            "mov %r2, 0\nmov %r3, %r10\nadd %r3, -8\nstdw [%r10-8], 0\nmov %r4, 8\nmov %r5, 0\ncall 9\nmov %r0, 0\nexit"
        ),
        rejected(
            "map argument that is not a map", .xdp, .helperArgument,
            "mov %r1, 0\nmov %r2, %r10\nadd %r2, -8\ncall 1\nmov %r0, 0\nexit"),
        rejected(
            "key argument that is not a pointer", .xdp, .helperArgument,
            "lddw %r1, 0x4d41500000000000\nmov %r2, 0\ncall 1\nmov %r0, 0\nexit"),
        rejected(
            "helper buffer past the stack", .kprobe, .stackAccess,
            "mov %r1, %r10\nadd %r1, -8\nmov %r2, 16\ncall 16\nmov %r0, 0\nexit"),
        rejected(
            "helper size that may be zero", .kprobe, .helperArgument,
            "ldxdw %r2, [%r1+112]\nand %r2, 15\nmov %r1, %r10\nadd %r1, -16\ncall 16\nmov %r0, 0\nexit"),
        accepted(
            "helper size that is bounded", .kprobe,
            "ldxdw %r2, [%r1+112]\nand %r2, 15\nadd %r2, 1\nmov %r1, %r10\nadd %r1, -16\ncall 16\nmov %r0, 0\nexit"),
        rejected(
            "helper arguments clobbered by a call", .xdp, .uninitializedRegister,
            "call 7\nmov %r0, %r1\nexit"),
        rejected(
            "ring-buffer record leaked", .xdp, .unreleasedReference,
            "lddw %r1, 0x4d41500000000001\nmov %r2, 8\nmov %r3, 0\ncall 131\nmov %r0, 0\nexit"),
        accepted(
            "ring-buffer record submitted", .xdp,
            "lddw %r1, 0x4d41500000000001\nmov %r2, 8\nmov %r3, 0\ncall 131\njeq %r0, 0, out\nstdw [%r0+0], 1\nmov %r1, %r0\nmov %r2, 0\ncall 132\nout:\nmov %r0, 0\nexit"
        ),
        rejected(
            "ring-buffer record used after submit", .xdp, .invalidPointer,
            "lddw %r1, 0x4d41500000000001\nmov %r2, 8\nmov %r3, 0\ncall 131\njeq %r0, 0, out\nmov %r6, %r0\nmov %r1, %r0\nmov %r2, 0\ncall 132\nstdw [%r6+0], 1\nout:\nmov %r0, 0\nexit"
        ),
        rejected(
            "ring-buffer record written past its size", .xdp, .memoryBounds,
            "lddw %r1, 0x4d41500000000001\nmov %r2, 8\nmov %r3, 0\ncall 131\njeq %r0, 0, out\nstdw [%r0+8], 1\nmov %r1, %r0\nmov %r2, 0\ncall 132\nout:\nmov %r0, 0\nexit"
        ),
        rejected(
            "ring-buffer size not constant", .kprobe, .helperArgument,
            "ldxdw %r2, [%r1+112]\nlddw %r1, 0x4d41500000000001\nmov %r3, 0\ncall 131\nmov %r0, 0\nexit"),
        rejected(
            "socket reference leaked", .schedCls, .unreleasedReference,
            "stdw [%r10-8], 0\nstdw [%r10-16], 0\nmov %r2, %r10\nadd %r2, -16\nmov %r3, 12\nmov %r4, -1\nmov %r5, 0\ncall 84\njeq %r0, 0, out\nmov %r0, 0\nexit\nout:\nmov %r0, 0\nexit"
        ),
        accepted(
            "socket reference released", .schedCls,
            "stdw [%r10-8], 0\nstdw [%r10-16], 0\nmov %r2, %r10\nadd %r2, -16\nmov %r3, 12\nmov %r4, -1\nmov %r5, 0\ncall 84\njeq %r0, 0, out\nmov %r1, %r0\ncall 86\nout:\nmov %r0, 0\nexit"
        ),
        rejected(
            "socket released without null check", .schedCls, .nullPointer,
            "stdw [%r10-8], 0\nstdw [%r10-16], 0\nmov %r2, %r10\nadd %r2, -16\nmov %r3, 12\nmov %r4, -1\nmov %r5, 0\ncall 84\nmov %r1, %r0\ncall 86\nmov %r0, 0\nexit"
        ),
        rejected("infinite loop", .xdp, .loop, "mov %r0, 0\nloop:\nja loop"),
        accepted("bounded loop", .xdp, "mov %r1, 0\nloop:\nadd %r1, 1\njlt %r1, 100, loop\nmov %r0, 0\nexit"),
        accepted(
            "loop bounded by a checked value", .xdp,
            "ldxw %r2, [%r1+16]\nand %r2, 63\nmov %r1, 0\nloop:\nadd %r1, 1\njlt %r1, %r2, loop\nmov %r0, 0\nexit"),
        accepted(
            "may_goto loop", .xdp,
            "mov %r0, 0\nja +0x7e5\nmov %r9, 3\nadd %r0, 1\nja -4\nand %r0, 1\nexit"),
        rejected("unreachable instruction", .xdp, .controlFlow, "mov %r0, 0\nexit\nmov %r0, 1\nexit"),
        rejected("jump out of the program", .xdp, .controlFlow, "ja +5\nmov %r0, 0\nexit"),
        rejected("falls off the end", .xdp, .controlFlow, "mov %r0, 0"),
        rejected("sub-program falls off its end", .xdp, .controlFlow, "call local f\nexit\nf:\nmov %r0, 1"),
        accepted("sub-program call", .xdp, "mov %r1, 3\ncall local f\nexit\nf:\nmov %r0, %r1\nexit"),
        rejected("sub-program without a return value", .xdp, .uninitializedRegister, "call local f\nexit\nf:\nexit"),
        rejected(
            "combined stack too large", .xdp, .stackDepth,
            "stdw [%r10-400], 0\ncall local f\nmov %r0, 0\nexit\nf:\nstdw [%r10-200], 0\nmov %r0, 0\nexit"),
        accepted(
            "combined stack within 512", .xdp,
            "stdw [%r10-200], 0\ncall local f\nmov %r0, 0\nexit\nf:\nstdw [%r10-200], 0\nmov %r0, 0\nexit"),
        rejected(
            "arithmetic on packet end", .xdp, .pointerArithmetic, "ldxw %r2, [%r1+4]\nadd %r2, 1\nmov %r0, 0\nexit"),
        rejected(
            "bitwise operation on a pointer", .xdp, .pointerArithmetic, "mov %r2, %r10\nand %r2, 0xff\nmov %r0, 0\nexit"
        ),
        rejected(
            "32-bit pointer arithmetic", .xdp, .pointerArithmetic, "mov %r2, %r10\nadd32 %r2, 1\nmov %r0, 0\nexit"),
        rejected("frame pointer write", .xdp, .invalidInstruction, "mov %r10, 0\nmov %r0, 0\nexit"),
        rejected("division by zero constant", .xdp, .invalidInstruction, "mov %r0, 1\ndiv %r0, 0\nexit"),
        accepted("division by a register", .xdp, "mov %r0, 1\nmov %r1, 0\ndiv %r0, %r1\nexit"),
        rejected("pointer stored as 4 bytes", .xdp, .stackAccess, "stxw [%r10-8], %r1\nmov %r0, 0\nexit"),
        accepted(
            "pointer spilled and filled", .xdp,
            "stxdw [%r10-8], %r1\nldxdw %r1, [%r10-8]\nldxw %r0, [%r1+12]\nmov %r0, 0\nexit"),
        rejected(
            "pointer partly filled", .xdp, .stackAccess, "stxdw [%r10-8], %r1\nldxw %r1, [%r10-8]\nmov %r0, 0\nexit"),
        rejected("scalar dereferenced", .xdp, .invalidPointer, "mov %r1, 4096\nldxw %r0, [%r1+0]\nexit"),
        rejected(
            "legacy packet load outside socket filters", .xdp, .invalidInstruction, "mov %r6, %r1\nldabsb 12\nexit"),
        accepted("legacy packet load in a socket filter", .socketFilter, "mov %r6, %r1\nldabsb 12\nexit"),
        rejected(
            "GPL-only helper without a GPL license", .kprobe, .unknownHelper,
            "mov %r1, %r10\nadd %r1, -8\nmov %r2, 8\nmov %r3, 0\ncall 113\nmov %r0, 0\nexit"),
    ]

    /// Assembles a case and rewrites the map markers for Mimic (map indexes) or the kernel (fds).
    static func program(_ text: String, fds: [Int32]?) throws -> [RawInstruction] {
        var code = try Assembler.assemble(text)
        // `ja +0x7e5` marks a `may_goto` (the assembler does not know it): offset in the imm.
        for slot in code.indices where code[slot].opcode == 0x05 && code[slot].offset == 0x7e5 {
            code[slot] = RawInstruction(opcode: 0xe5, offset: Int16(truncatingIfNeeded: code[slot + 1].imm))
            code[slot + 1] = RawInstruction(opcode: 0xb7, destination: 9, imm: 0)
        }
        var slot = 0
        while slot < code.count {
            if code[slot].opcode == 0x18, slot + 1 < code.count {
                let high = UInt32(bitPattern: code[slot + 1].imm)
                if high == 0x4d41_5000 || high == 0x4d41_5600 {
                    let index = Int(code[slot].imm)
                    code[slot].source = high == 0x4d41_5000 ? 1 : 2
                    code[slot].imm = fds.map { $0[index] } ?? Int32(index)
                    code[slot + 1].imm = 0
                }
                slot += 2
            } else {
                slot += 1
            }
        }
        return code
    }

    func testEveryClassAgainstMimicAndTheKernel() throws {
        var kernelMaps: [KernelMap] = []
        if KernelBPF.isAvailable {
            for m in Self.maps {
                kernelMaps.append(
                    try KernelBPF.createMap(
                        MapAttributes(
                            name: m.name, type: m.type, keySize: m.keySize, valueSize: m.valueSize,
                            maxEntries: m.maxEntries)))
            }
        }
        var verdictAgreement = 0
        var messageAgreement = 0
        var compared = 0
        for c in Self.cases {
            let license = c.name.hasPrefix("GPL-only") ? "Proprietary" : "GPL"
            let code = try Self.program(c.text, fds: nil)
            let report = Verifier().verify(
                VerifierProgram(name: c.name, instructions: code, type: c.type, maps: Self.maps, license: license))
            XCTAssertEqual(report.accepted, c.accepted, "\(c.name): \(report.error?.message ?? "accepted")")
            if let kind = c.kind {
                XCTAssertEqual(report.error?.kind, kind, "\(c.name): \(report.error?.message ?? "")")
            }
            if let error = report.error {
                XCTAssertFalse(error.advice.isEmpty, "\(c.name) has no advice")
            }
            guard KernelBPF.isAvailable else { continue }
            let kernelCode = try Self.program(c.text, fds: kernelMaps.map(\.fd))
            var kernelLine = "accepted"
            var kernelAccepted = true
            do {
                _ = try KernelBPF.loadProgram(kernelCode, type: c.type, license: license, maps: kernelMaps)
            } catch {
                kernelAccepted = false
                let lines = (error.verifierLog ?? "\(error)").split(separator: "\n").filter {
                    !$0.hasPrefix("processed ") && !$0.isEmpty && !$0.hasPrefix("verification time")
                        && !$0.hasPrefix("stack depth")
                }
                kernelLine = String(lines.last ?? "")
            }
            compared += 1
            XCTAssertEqual(report.accepted, kernelAccepted, "\(c.name): kernel says \(kernelLine)")
            if report.accepted == kernelAccepted { verdictAgreement += 1 }
            let mimicLine = report.error.map { String($0.message.split(separator: "\n").last ?? "") } ?? "accepted"
            if mimicLine == kernelLine {
                messageAgreement += 1
            } else {
                print("message differs for \(c.name):\n  kernel: \(kernelLine)\n  mimic:  \(mimicLine)")
            }
        }
        print(
            "rejection classes: verdicts \(verdictAgreement)/\(compared), last message line \(messageAgreement)/\(compared)"
        )
    }
}
