import MimicCore
import MimicLinux

/// The interpreter on random bytecode, with AddressSanitizer watching host memory: a program
/// must never reach it. The first 64 bytes are the packet (`MemoryContext`: R1 = its address,
/// R2 = its length), the rest the bytecode. Run under the Linux emulator (helpers, maps), and
/// under the deterministic conformance helpers once run and once single-stepped: those two must
/// end the same way.
func fuzzOne(_ bytes: [UInt8]) {
    let packet = Array(bytes.prefix(64))
    let code = Array(bytes.dropFirst(packet.count).prefix(8 * 4096)).chunkedTo8()
    let linux = VM(emulator: LinuxEmulator(), configuration: VMConfiguration(memoryLimit: 16 << 20))
    if let program = try? linux.load(bytecode: code) {
        _ = outcome(linux, program, packet, stepping: false)
    }
    let run = VM(emulator: ConformanceEmulator())
    let step = VM(emulator: ConformanceEmulator())
    guard let first = try? run.load(bytecode: code), let second = try? step.load(bytecode: code) else { return }
    let ran = outcome(run, first, packet, stepping: false)
    let stepped = outcome(step, second, packet, stepping: true)
    guard ran == stepped else { fatalError("run gave \(ran), step gave \(stepped)") }
}

/// R0, or the error's description, of one run.
func outcome(_ vm: VM, _ program: Program, _ packet: [UInt8], stepping: Bool) -> String {
    guard let process = try? vm.makeProcess(for: program, context: MemoryContext(packet)) else { return "no process" }
    do {
        if stepping {
            var steps: UInt64 = 0
            while steps < fuzzInstructionLimit {
                if case .exited(let r0) = try process.step() { return "r0 \(r0)" }
                steps += 1
            }
            return "limit"
        }
        return "r0 \(try process.run(instructionLimit: fuzzInstructionLimit))"
    } catch {
        if error.kind.code == .budgetExhausted { return "limit" }
        return "\(error.kind)"
    }
}

extension Array where Element == UInt8 {
    /// The bytes cut to whole 8-byte instruction slots.
    func chunkedTo8() -> [UInt8] { Array(prefix(count / 8 * 8)) }
}
