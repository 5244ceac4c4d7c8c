import MimicCore
import MimicLinux

/// The interpreter on random bytecode, with AddressSanitizer watching host memory: a program
/// must never reach it. The first 64 bytes are the packet (`MemoryContext`: R1 = its address,
/// R2 = its length), the rest the bytecode. Run under the Linux emulator (helpers, maps), and
/// under the deterministic conformance helpers once run and once single-stepped: those two must
/// end the same way. `run()` takes the VM's default engine (the JIT on x86-64), so the pair is
/// also compiled code against the interpreter's single steps.
///
/// One Linux emulator serves every input: bytecode loaded raw cannot create maps or reach the
/// emulator's other per-object state, and building an emulator (its ~300 helpers and kfuncs)
/// was most of an execution under AddressSanitizer. The pair compared stops after
/// `comparedInstructionLimit`: single steps under instrumentation cost ~1 µs each, and the
/// 10,000 of the plain run made looping inputs 5x slower to fuzz without new coverage.
func fuzzOne(_ bytes: [UInt8]) {
    let packet = Array(bytes.prefix(64))
    let code = Array(bytes.dropFirst(packet.count).prefix(8 * 4096)).chunkedTo8()
    let linux = VM(emulator: sharedLinuxEmulator, configuration: VMConfiguration(memoryLimit: 16 << 20))
    if let program = try? linux.load(bytecode: code) {
        _ = outcome(linux, program, packet, stepping: false, limit: fuzzInstructionLimit)
    }
    let run = VM(emulator: ConformanceEmulator())
    let step = VM(emulator: ConformanceEmulator())
    guard let first = try? run.load(bytecode: code), let second = try? step.load(bytecode: code) else { return }
    let ran = outcome(run, first, packet, stepping: false, limit: comparedInstructionLimit)
    let stepped = outcome(step, second, packet, stepping: true, limit: comparedInstructionLimit)
    guard ran == stepped else { fatalError("run gave \(ran), step gave \(stepped)") }
}

/// The emulator every input's Linux VM uses (see `fuzzOne`).
let sharedLinuxEmulator = LinuxEmulator()

/// The instruction limit of the run-against-step pair.
let comparedInstructionLimit: UInt64 = 1_000

/// R0, or the error's description, of one run.
func outcome(_ vm: VM, _ program: Program, _ packet: [UInt8], stepping: Bool, limit: UInt64) -> String {
    guard let process = try? vm.makeProcess(for: program, context: MemoryContext(packet)) else { return "no process" }
    do {
        if stepping {
            var steps: UInt64 = 0
            while steps < limit {
                if case .exited(let r0) = try process.step() { return "r0 \(r0)" }
                steps += 1
            }
            return "limit"
        }
        return "r0 \(try process.run(instructionLimit: limit))"
    } catch {
        if error.kind.code == .budgetExhausted { return "limit" }
        return "\(error.kind)"
    }
}

extension Array where Element == UInt8 {
    /// The bytes cut to whole 8-byte instruction slots.
    func chunkedTo8() -> [UInt8] { Array(prefix(count / 8 * 8)) }
}
