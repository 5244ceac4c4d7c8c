import Foundation
import Testing
import MimicCore
@testable import MimicKernel
import MimicLinux

/// Syscall programs run by Mimic and by the kernel (`BPF_PROG_TEST_RUN`): `Fixtures/dynptr.c`'s
/// `local_dynptr` / `ring_dynptr`, `Fixtures/kfuncs.c`'s `cpumasks` (with as many CPUs as the
/// kernel's `nr_cpu_ids`) and its objects in lists and trees, `rbtree_shape.c`, and `timers.c`:
/// the `.bss` each leaves (every helper's and kfunc's return value, and the bytes read) must be
/// the same. Lists, trees and timers need the object's BTF in the kernel — a lock and graph roots
/// or a `bpf_timer` in a map value, and `bpf_obj_new`'s type of the program's own — so those are
/// loaded with it (`KernelObject(loadsObjectBTF:)`). `timers.c`'s callbacks run on each side's own
/// clock: `timerCallbacksAgreeWithTheKernel` compares what they leave, not when.
@Suite(.enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct TimerDynptrKernelTests {
    static let vmlinux = "/sys/kernel/btf/vmlinux"

    func compare(_ fixture: String, _ programs: [String], cpuCount: Int = 1, objectBTF: Bool = false) throws {
        let path = Fixtures.directories[1].appendingPathComponent("\(fixture).o").path
        let object = try ObjectFile(contentsOf: path)
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: cpuCount))
        let vm = VM(emulator: emulator)
        let loaded = try vm.load(object: object)
        for name in programs {
            let process = try vm.makeProcess(for: loaded.program(named: name), context: nil)
            #expect(try process.run() == 0, "\(name) in Mimic")
        }
        let mimicBSS = try #require(loaded.globals[".bss"]).storage.bytes

        let btf = try BTF(bytes: [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.vmlinux))))
        let kernelObject = try KernelObject(object: object, kernelBTF: btf, loadsObjectBTF: objectBTF)
        for name in programs {
            #expect(try kernelObject.program(named: name).testRunSyscall() == 0, "\(name) in the kernel")
        }
        let kernelBSS = try #require(try kernelObject.maps[".bss"]?.lookup(key: [0, 0, 0, 0]))
        #expect(kernelBSS == mimicBSS)
        #expect(mimicBSS.contains { $0 != 0 }, "the programs wrote their results")
    }

    @Test(.enabled(if: FileManager.default.isReadableFile(atPath: vmlinux), "/sys/kernel/btf/vmlinux is not readable"))
    func dynptrsAgreeWithTheKernel() throws {
        try compare("dynptr", ["local_dynptr", "ring_dynptr"])
    }

    @Test(.enabled(if: FileManager.default.isReadableFile(atPath: vmlinux), "/sys/kernel/btf/vmlinux is not readable"))
    func timerErrorsAgreeWithTheKernel() throws {
        try compare("timers", ["timer_errors"], objectBTF: true)
    }

    /// `timers.c`'s `timer_arm` in both: its callback runs three times (re-arming itself twice, 1 ms
    /// apart), the third cannot cancel its own timer (`-EDEADLK`). Mimic's on its virtual clock,
    /// the kernel's on its own: the counts, the key and the error must agree, not the times.
    @Test(.enabled(if: FileManager.default.isReadableFile(atPath: vmlinux), "/sys/kernel/btf/vmlinux is not readable"))
    func timerCallbacksAgreeWithTheKernel() throws {
        let path = Fixtures.directories[1].appendingPathComponent("timers.o").path
        let object = try ObjectFile(contentsOf: path)
        let emulator = LinuxEmulator()
        let vm = VM(emulator: emulator)
        let loaded = try vm.load(object: object)
        let process = try vm.makeProcess(for: loaded.program(named: "timer_arm"), context: nil)
        #expect(try process.run() == 0, "timer_arm in Mimic")
        #expect(emulator.advanceClock(by: 10_000_000).count == 3)
        let mimicValue = try #require(emulator.map(named: "timers")?.value(forKey: [7, 0, 0, 0]))
        let mimicBSS = try #require(loaded.globals[".bss"]).storage.bytes

        let btf = try BTF(bytes: [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.vmlinux))))
        let kernelObject = try KernelObject(object: object, kernelBTF: btf, loadsObjectBTF: true)
        #expect(try kernelObject.program(named: "timer_arm").testRunSyscall() == 0, "timer_arm in the kernel")
        // Three firings 1 ms apart: wait (up to 2 s; the maps are held, so the timer lives) until
        // the third has counted itself and stored its cancel's error, the callback's last store.
        var kernelValue: [UInt8] = []
        var kernelBSS: [UInt8] = []
        for _ in 0..<400 {
            usleep(5_000)
            kernelValue = try #require(try kernelObject.maps["timers"]?.lookup(key: [7, 0, 0, 0]))
            kernelBSS = try #require(try kernelObject.maps[".bss"]?.lookup(key: [0, 0, 0, 0]))
            if kernelValue[16] == 3, kernelBSS[96] != 0 { break }
        }
        // `fired` (bytes 16..<24 of the value); `fired_at` is each side's own clock.
        #expect(kernelValue[16..<24] == mimicValue[16..<24])
        #expect(mimicValue[16] == 3)
        // `self_cancel` and `callback_key`, after `results` (12 longs) in .bss.
        #expect(kernelBSS[96..<112] == mimicBSS[96..<112])
        #expect(mimicBSS[96] == 221) // -EDEADLK's low byte
    }

    @Test(.enabled(if: FileManager.default.isReadableFile(atPath: vmlinux), "/sys/kernel/btf/vmlinux is not readable"))
    func listsAndTreesAgreeWithTheKernel() throws {
        try compare("kfuncs", ["lists_and_trees"], objectBTF: true)
    }

    @Test(.enabled(if: FileManager.default.isReadableFile(atPath: vmlinux), "/sys/kernel/btf/vmlinux is not readable"))
    func treeShapesAgreeWithTheKernel() throws {
        try compare("rbtree_shape", ["shape"], objectBTF: true)
    }

    /// The kernel's `nr_cpu_ids`: the possible CPUs (`/sys/devices/system/cpu/possible`, "0-N").
    static var possibleCPUs: Int? {
        guard let text = try? String(contentsOfFile: "/sys/devices/system/cpu/possible", encoding: .utf8),
            let last = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "-").last.flatMap({
                Int($0)
            })
        else { return nil }
        return last + 1
    }

    @Test(.enabled(if: FileManager.default.isReadableFile(atPath: vmlinux), "/sys/kernel/btf/vmlinux is not readable"))
    func cpuMasksAgreeWithTheKernel() throws {
        let cpus = try #require(Self.possibleCPUs, "/sys/devices/system/cpu/possible is not readable")
        try compare("kfuncs", ["cpumasks"], cpuCount: cpus)
    }
}
