import Foundation
import MimicCore
import MimicKernel
import Testing

/// `Tests/MimicLinuxTests/Fixtures/netprog_hdr_opt.c` against the kernel: `BPF_PROG_TEST_RUN`
/// does not run sock_ops programs, so TCPHeaderOptionTests checks the header-option helpers'
/// semantics in Mimic; here the kernel's verifier takes the program, so the fixture is a valid
/// sock_ops program calling them as the kernel allows.
@Suite(
    "TCP header options: the kernel's verifier takes the fixture",
    .enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct TCPHeaderOptionKernelTests {
    @Test func verifierTakesTheProgram() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let object = try ObjectFile(
            contentsOf: root.appendingPathComponent("MimicLinuxTests/Fixtures/netprog_hdr_opt.o").path)
        let kernel = try KernelObject(object: object)
        #expect(throws: Never.self) { _ = try kernel.program(named: "hdr_opt") }
    }
}
