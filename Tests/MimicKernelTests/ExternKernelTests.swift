import Foundation
import Testing
import MimicCore
@testable import MimicKernel
import MimicLinux

/// `Fixtures/externs.c`'s `read_kconfig` (`__kconfig` externs of every type, `bpf_for` over the
/// `bpf_iter_num_*` kfuncs) run by Mimic and by the kernel (`BPF_PROG_TEST_RUN` of a syscall
/// program), with the same `.kconfig` values: the `.bss` each leaves must be the same.
@Suite(.enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct ExternKernelTests {
    static let vmlinux = "/sys/kernel/btf/vmlinux"

    @Test(.enabled(if: FileManager.default.isReadableFile(atPath: vmlinux), "/sys/kernel/btf/vmlinux is not readable"))
    func kconfigAndOpenCodedIteratorsAgreeWithTheKernel() throws {
        let path = Fixtures.directories[1].appendingPathComponent("externs.o").path
        let object = try ObjectFile(contentsOf: path)
        let kernel = KernelConfig(values: [
            "CONFIG_BPF_SYSCALL": "y", "CONFIG_NF_CONNTRACK": "m", "CONFIG_MIMIC_CHAR": "y",
            "CONFIG_MIMIC_S16": "-2", "CONFIG_HZ": "1000", "CONFIG_MIMIC_U64": "0xFFFFFFFFFF",
            "CONFIG_DEFAULT_HOSTNAME": "\"kernel\"",
        ])
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1, kernel: kernel))
        let vm = VM(emulator: emulator)
        let loaded = try vm.load(object: object)
        let process = try vm.makeProcess(for: loaded.program(named: "read_kconfig"), context: nil)
        #expect(try process.run() == 0)
        let mimicBSS = try #require(loaded.globals[".bss"]).storage.bytes
        let kconfig = try #require(loaded.globals[".kconfig"]).storage.bytes

        let btf = try BTF(bytes: [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.vmlinux))))
        let kernelObject = try KernelObject(object: object, kconfig: kconfig, kernelBTF: btf)
        let program = try kernelObject.program(named: "read_kconfig")
        #expect(try program.testRunSyscall() == 0)
        let kernelBSS = try #require(try kernelObject.maps[".bss"]?.lookup(key: [0, 0, 0, 0]))
        #expect(kernelBSS == mimicBSS)
        #expect(mimicBSS.contains { $0 != 0 }, "the program wrote its results")
    }

    @Test func objectsWithKconfigExternsNeedTheirValues() throws {
        let path = Fixtures.directories[1].appendingPathComponent("externs.o").path
        #expect(throws: KernelError.self) { try KernelObject(object: try ObjectFile(contentsOf: path)) }
    }
}
