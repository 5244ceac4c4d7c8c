import Foundation
import MimicCore
import MimicKernel
import MimicLinux
import Testing

/// `Tests/MimicLinuxTests/Fixtures/net_seg6.c` against the kernel's verifier: it takes every
/// lwt_seg6local program. Their helpers read End.BPF's per-CPU SRH state, which the kernel's
/// test run does not set up (and an SRv6 encapsulation in a test run would read a route the
/// packet does not have), so LWTHelperTests checks their semantics in Mimic; `net_lwt.c`'s
/// programs, which a test run can run safely, are compared by FixtureComparisonTests.
@Suite(
    "lwt_seg6local: the kernel's verifier takes the fixture",
    .enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct LWTKernelTests {
    @Test("the kernel's verifier takes every program of net_seg6")
    func verifierTakesThePrograms() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let object = try ObjectFile(contentsOf: root.appendingPathComponent("MimicLinuxTests/Fixtures/net_seg6.o").path)
        let kernel = try KernelObject(object: object)
        for name in ["seg6_tag", "seg6_grow", "seg6_break", "seg6_bind", "seg6_encap"] {
            let log: String
            do {
                _ = try kernel.program(named: name)
                continue
            } catch {
                log = error.verifierLog ?? "\(error)"
            }
            // A kernel built without CONFIG_IPV6_SEG6_BPF gives lwt_seg6local none of the seg6
            // helpers: that is the one refusal allowed.
            #expect(log.contains("program of this type cannot use helper bpf_lwt_seg6_"), "\(name): \(log)")
            print("◇ \(name): this kernel has no seg6 BPF helpers (CONFIG_IPV6_SEG6_BPF), so its verifier refuses them")
        }
    }
}
