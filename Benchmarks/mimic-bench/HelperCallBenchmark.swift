import Foundation
import MimicCore
import MimicLinux

/// `mimic-bench --helpers`: the cost of one helper call, statically linked vs through the plugin
/// ABI (a C plugin built with clang at start-up, and MimicLinux as a plugin if its library sits
/// beside this executable, as `swift build -c release` leaves it).
///
/// Each program runs a loop of `iterations` calls (`r0 = helper(r6)`, accumulate, count down);
/// the same loop without the call is the baseline, so ns per call = (loop − baseline) / iterations.
enum HelperCallBenchmark {
    static let iterations = 100_000
    /// The trivial helper: returns its argument plus one.
    static let helperID: Int32 = 10000

    /// The trivial helper in C, as a plugin.
    static let pluginSource = """
        #include "mimic_plugin.h"
        static uint64_t increment(const struct mimic_host *host, struct mimic_call *call,
                                  uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5) {
            return r1 + 1;
        }
        static const struct mimic_helper helpers[] = {{.id = 10000, .name = "increment", .function = increment}};
        static const struct mimic_plugin plugin = {
            .abi_major = MIMIC_PLUGIN_ABI_MAJOR, .abi_minor = MIMIC_PLUGIN_ABI_MINOR,
            .size = sizeof(struct mimic_plugin), .name = "bench", .helper_count = 1, .helpers = helpers,
        };
        __attribute__((visibility("default")))
        const struct mimic_plugin *mimic_plugin_entry(const struct mimic_host *host) { return &plugin; }
        """

    /// The same helper in Swift, statically linked.
    final class StaticEmulator: Emulator {
        let name = "static"
        let increment = Helper(id: HelperCallBenchmark.helperID, name: "increment") { process throws(HelperFailure) in
            .value(process.argument(1) &+ 1)
        }
        func helper(id: Int32) -> Helper? { id == HelperCallBenchmark.helperID ? increment : nil }
    }

    static func loop(call id: Int32?) -> String {
        """
            mov %r6, \(iterations)
            mov %r7, 0
        loop:
            mov %r1, %r6
            \(id.map { "call \($0)" } ?? "mov %r0, %r1")
            add %r7, %r0
            sub %r6, 1
            jne %r6, 0, loop
            mov %r0, %r7
            exit
        """
    }

    /// Best ns per run of `source` on `emulator` over `rounds` rounds.
    static func time(_ source: String, emulator: any Emulator, rounds: Int, vCPU: Int = 0) throws -> (
        ns: Double, r0: UInt64
    ) {
        let vm = VM(emulator: emulator)
        let program = try vm.load(Assembler.assemble(source))
        var best = Double.infinity
        var r0: UInt64 = 0
        for _ in 0..<rounds {
            let process = try vm.makeProcess(for: program, vCPU: vCPU)
            let start = DispatchTime.now().uptimeNanoseconds
            r0 = try process.run()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start))
        }
        return (best, r0)
    }

    /// Compiles the C plugin with clang into a temporary folder.
    static func buildPlugin() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mimic-bench-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let source = directory.appendingPathComponent("bench_plugin.c")
        let library = directory.appendingPathComponent("libbench_plugin.so")
        try pluginSource.write(to: source, atomically: true, encoding: .utf8)
        let header = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/CMimicPlugin/include").path
        let clang = Foundation.Process()
        clang.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        clang.arguments = ["clang", "-O2", "-fPIC", "-shared", "-I", header, source.path, "-o", library.path]
        try clang.run()
        clang.waitUntilExit()
        guard clang.terminationStatus == 0 else {
            throw HelperBenchmarkError("clang could not build the benchmark plugin")
        }
        return library.path
    }

    static func run(rounds: Int) throws {
        let baseline = try time(loop(call: nil), emulator: StaticEmulator(), rounds: rounds)
        let statically = try time(loop(call: helperID), emulator: StaticEmulator(), rounds: rounds)
        let plugin = try PluginLibrary.load(path: buildPlugin())
        let viaPlugin = try time(loop(call: helperID), emulator: plugin.emulator, rounds: rounds)
        guard statically.r0 == viaPlugin.r0, statically.r0 == baseline.r0 &+ UInt64(iterations) else {
            throw HelperBenchmarkError(
                "results differ: static \(statically.r0), plugin \(viaPlugin.r0), baseline \(baseline.r0)")
        }
        func perCall(_ ns: Double) -> Double { (ns - baseline.ns) / Double(iterations) }
        print("helper call (\(iterations) calls per run)        ns/run   ns/call")
        print(String(format: "loop without a call (baseline)          %10.0f         -", baseline.ns))
        print(
            String(
                format: "static Swift helper                     %10.0f  %8.2f", statically.ns, perCall(statically.ns)))
        print(
            String(format: "C plugin helper (plugin ABI)            %10.0f  %8.2f", viaPlugin.ns, perCall(viaPlugin.ns))
        )

        // MimicLinux statically linked vs as a plugin: `HelperID.getSmpProcessorId`.
        let executable =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let linuxPath = URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent(
            "libMimicLinuxPlugin.so"
        ).path
        let helper = HelperID.getSmpProcessorId
        let linuxLoop = loop(call: helper.rawValue)
        let linuxStatic = try time(linuxLoop, emulator: LinuxEmulator(), rounds: rounds, vCPU: 1)
        print(String(format: "Linux \(helper.name), static  %10.0f  %8.2f", linuxStatic.ns, perCall(linuxStatic.ns)))
        if FileManager.default.fileExists(atPath: linuxPath) {
            let linux = try PluginLibrary.load(path: linuxPath)
            let linuxPlugin = try time(linuxLoop, emulator: linux.emulator, rounds: rounds, vCPU: 1)
            guard linuxPlugin.r0 == linuxStatic.r0 else {
                throw HelperBenchmarkError("the Linux plugin computed \(linuxPlugin.r0), static \(linuxStatic.r0)")
            }
            print(
                String(format: "Linux \(helper.name), plugin  %10.0f  %8.2f", linuxPlugin.ns, perCall(linuxPlugin.ns)))
        } else {
            print(
                "(libMimicLinuxPlugin.so not found beside mimic-bench: build with `swift build -c release` to compare)")
        }
    }
}

struct HelperBenchmarkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
