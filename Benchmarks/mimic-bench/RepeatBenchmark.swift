import Foundation
import MimicCore
import MimicLinux

/// `mimic-bench --repeat OBJECT.o:PROGRAM N`: runs one program of an object file (maps from the
/// Linux emulator) N times on one engine, for deterministic instruction counts under
/// `valgrind --tool=callgrind --toggle-collect='*measuredRunsEntry*'`: the processes are
/// made and the program compiled (one warm-up run) before `measuredRuns`, so the collected cost
/// divided by N is the host instructions per run. Prints R0 and the eBPF instructions per run.
struct RepeatBenchmark {
    let source: String
    let runs: Int
    let engine: Engine
    /// The input blob (R1 = its address, R2 = its length), e.g. `.build/shared-bench/sieve.in`.
    let input: String?

    func run() throws {
        guard let colon = source.lastIndex(of: ":"), source[..<colon].hasSuffix(".o") else {
            throw SuiteError("--repeat needs OBJECT.o:PROGRAM, not \(source)")
        }
        let vm = engine.makeVM()
        let object = try vm.load(object: ObjectFile(contentsOf: String(source[..<colon])))
        let program = try object.program(named: String(source[source.index(after: colon)...]))
        let bytes = try input.map { try [UInt8](Data(contentsOf: URL(fileURLWithPath: $0))) } ?? []
        let context = MemoryContext(bytes, name: "input")
        let warmUp = try vm.makeProcess(for: program, context: context)
        let r0 = try warmUp.run()
        var processes: [MimicCore.Process] = []
        processes.reserveCapacity(runs)
        for _ in 0..<runs { processes.append(try vm.makeProcess(for: program, context: context)) }
        try measuredRuns(processes)
        print(
            "\(source) on the \(engine.rawValue): r0 = \(r0), \(warmUp.instructionsExecuted) eBPF instructions per run, "
                + "\(runs) runs in measuredRunsEntry")
    }
}

/// The runs callgrind collects (`--toggle-collect='*measuredRunsEntry*'`, the mangled name).
@inline(never)
func measuredRunsEntry(_ processes: UnsafeRawPointer) {
    let processes = processes.assumingMemoryBound(to: [MimicCore.Process].self).pointee
    for process in processes { _ = try? process.run() }
}

private func measuredRuns(_ processes: [MimicCore.Process]) throws {
    withUnsafePointer(to: processes) { measuredRunsEntry(UnsafeRawPointer($0)) }
    for process in processes where process.instructionsExecuted == 0 {
        throw SuiteError("a measured run executed nothing")
    }
}
