import Foundation
import MimicCore
import MimicLinux
import MimicPcap
import Testing

/// Replays every input the fuzz harnesses (`Fuzz/`, `Scripts/fuzz.sh`) ever found, and the
/// resource bombs of issue 20, through what the harness of its folder exercises: each must end
/// (with or without an error) quickly, without a crash.
@Suite struct FuzzRegressionTests {
    static var crashes: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("Fuzz/crashes", isDirectory: true)
    }

    /// Every saved input as (harness, file name).
    static var inputs: [(String, String)] {
        let manager = FileManager.default
        let targets = (try? manager.contentsOfDirectory(atPath: crashes.path)) ?? []
        return targets.sorted().flatMap { target in
            ((try? manager.contentsOfDirectory(atPath: crashes.appendingPathComponent(target).path)) ?? [])
                .filter { !$0.hasPrefix(".") }.sorted().map { (target, $0) }
        }
    }

    @Test func thereAreRegressionInputs() {
        #expect(Self.inputs.count >= 2)
    }

    /// Found by the long `elf` run: a `__kconfig` char array of 2 GiB made the parser allocate
    /// the whole `.kconfig` section before anything checked its size.
    @Test func aHugeKconfigSectionIsRefusedByName() throws {
        let bytes = [UInt8](
            try Data(contentsOf: Self.crashes.appendingPathComponent("elf/kconfig-char-array-2gib")))
        do {
            _ = try ObjectFile(bytes: bytes)
            Issue.record("the object was parsed")
        } catch {
            #expect("\(error)".contains(".kconfig section"), "\(error)")
            #expect("\(error)".contains("KMALLOC_MAX_SIZE"), "\(error)")
        }
    }

    /// Found by the long `elf` runs: a CO-RE shift relocation (`FIELD_RSHIFT_U64`) on a field
    /// wider than 64 bits computed `64 - bitSize` as a negative number and trapped. The
    /// relocation is now left unapplied with a note saying why.
    @Test func aShiftRelocationOnAWideFieldIsLeftWithANote() throws {
        let bytes = [UInt8](
            try Data(contentsOf: Self.crashes.appendingPathComponent("elf/core-shift-of-wide-field")))
        let object = try ObjectFile(bytes: bytes)
        #expect(object.notes.contains { $0.contains("wider than 64") }, "\(object.notes)")
    }

    /// Found by the same campaign: a `__ksym` variable whose BTF type is a 4 GiB array made the
    /// emulator allocate the kernel object before the VM's memory budget was asked.
    @Test func aHugeKsymObjectIsChargedToTheBudget() throws {
        let bytes = [UInt8](try Data(contentsOf: Self.crashes.appendingPathComponent("elf/ksym-object-4gib")))
        let object = try ObjectFile(bytes: bytes)
        let vm = VM(emulator: LinuxEmulator(), configuration: VMConfiguration(memoryLimit: 64 << 20))
        do {
            _ = try vm.load(object: object)
            Issue.record("the object loaded")
        } catch {
            #expect("\(error)".contains("kernel symbol"), "\(error)")
            #expect("\(error)".contains("memory budget") || "\(error)".contains("budget"), "\(error)")
        }
    }

    @Test(arguments: inputs)
    func replay(target: String, file: String) throws {
        let bytes = [UInt8](
            try Data(contentsOf: Self.crashes.appendingPathComponent(target).appendingPathComponent(file)))
        let clock = ContinuousClock()
        let start = clock.now
        switch target {
        case "elf":
            if let object = try? ObjectFile(bytes: bytes) {
                let vm = VM(emulator: LinuxEmulator(), configuration: VMConfiguration(memoryLimit: 64 << 20))
                if let loaded = try? vm.load(object: object) {
                    for program in object.programs {
                        if let p = try? loaded.program(named: program.name) {
                            _ = try? vm.makeProcess(for: p).run(instructionLimit: 10_000)
                        }
                    }
                }
            }
        case "btf":
            if let btf = try? BTF(bytes: bytes) {
                for id in 0..<UInt32(min(btf.count, 4096)) { _ = btf.typeName(id) }
            }
        case "assembler":
            _ = try? Assembler.assemble(String(decoding: bytes, as: UTF8.self))
        case "interpreter":
            let vm = VM(emulator: LinuxEmulator(), configuration: VMConfiguration(memoryLimit: 16 << 20))
            let code = Array(bytes.dropFirst(64))
            if let program = try? vm.load(bytecode: Array(code.prefix(code.count / 8 * 8))) {
                _ = try? vm.makeProcess(for: program, context: MemoryContext(Array(bytes.prefix(64)))).run(
                    instructionLimit: 10_000)
            }
        case "contexts":
            if let context = try? ContextFile.load(data: bytes) {
                let vm = VM(emulator: LinuxEmulator(), configuration: VMConfiguration(memoryLimit: 16 << 20))
                let program = try vm.load(bytecode: [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])
                _ = try? vm.makeProcess(for: program, context: context).run(instructionLimit: 10_000)
            }
        case "pcap":
            _ = try? PcapReader.readAll(bytes)
        default:
            Issue.record("no harness named \(target)")
        }
        #expect(clock.now - start < .seconds(2), "\(target)/\(file) took \(clock.now - start)")
    }
}
