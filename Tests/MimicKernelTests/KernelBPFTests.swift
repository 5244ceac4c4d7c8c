import Testing
import MimicCore
@testable import MimicLinux

/// Why the kernel tests did not run, printed once so a skipped run says so.
enum KernelGate {
    static let enabled: Bool = {
        if let reason = KernelBPF.unavailableReason {
            print("◇ MimicKernelTests skipped: \(reason)")
            return false
        }
        return true
    }()
}

@Suite("KernelBPF: maps, programs, test runs", .enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct KernelBPFTests {
    func assemble(_ text: String) throws -> [RawInstruction] { try Assembler.assemble(text) }

    @Test("load and test-run an XDP program")
    func xdpTestRun() throws {
        let program = try KernelBPF.loadProgram(try assemble("mov %r0, 2\nexit"), type: .xdp, name: "pass")
        let run = try program.testRun(data: [UInt8](repeating: 0xAB, count: 60))
        #expect(run.returnValue == 2)
        #expect(run.data == [UInt8](repeating: 0xAB, count: 60))
    }

    @Test("experiment")
    func experiment() throws {
        let cases = [
            "sdiv by zero reg": "mov %r0, 7\nmov %r1, 0\nsdiv %r0, %r1\nexit",
            "div by zero reg": "mov %r0, 7\nmov %r1, 0\ndiv %r0, %r1\nexit",
            "mod by zero reg": "mov %r0, 7\nmov %r1, 0\nmod %r0, %r1\nexit",
            "movsx": "mov %r1, 0x80\nmovsx8 %r0, %r1\nexit",
            "bswap": "mov %r0, 0x12345678\nbswap32 %r0\nexit",
        ]
        for (name, text) in cases {
            do {
                let program = try KernelBPF.loadProgram(try assemble(text), type: .xdp, name: "x")
                let run = try program.testRun(data: [UInt8](repeating: 0, count: 60))
                print("\(name): 0x\(String(run.returnValue, radix: 16))")
            } catch {
                print("\(name): \(error)")
            }
        }
    }
}
