import Foundation
import MimicCore
import MimicLinux

/// The clang-built objects in `Fixtures/` (rebuild them with `Fixtures/build.sh`), loaded as
/// libbpf would: `VM(emulator: LinuxEmulator())` + `vm.load(object:)`.
enum Fixture {
    static var directory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "Fixtures", isDirectory: true)
    }

    /// Parses `Fixtures/<name>.o`.
    static func object(_ name: String) throws -> ObjectFile {
        try ObjectFile(contentsOf: directory.appendingPathComponent("\(name).o").path)
    }

    /// Both engines, for suites that run every case under each (`@Test(arguments: engines)`).
    static let engines: [ExecutionEngine] = [.interpreter, .jit]

    /// A fixture object loaded into a fresh VM with a Linux emulator of `cpus` CPUs.
    static func load(_ name: String, cpus: Int = 2, engine: ExecutionEngine = .automatic) throws -> Loaded {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: cpus, randomSeed: 1))
        let vm = VM(emulator: emulator, configuration: VMConfiguration(engine: engine))
        return Loaded(vm: vm, emulator: emulator, object: try vm.load(object: object(name)))
    }

    struct Loaded {
        let vm: VM
        let emulator: LinuxEmulator
        let object: LoadedObject

        /// The emulator's map named `name`, as type `T`.
        func map<T>(_ name: String, as type: T.Type = (any BPFMap).self) throws -> T {
            guard let map = emulator.map(named: name) else { throw FixtureError("no map named \(name)") }
            guard let typed = map as? T else { throw FixtureError("map \(name) is a \(Swift.type(of: map))") }
            return typed
        }

        /// Runs program `name` with `context` on `vCPU`; returns the finished process.
        @discardableResult
        func run(_ name: String, context: (any Context)? = nil, vCPU: Int = 0) throws -> MimicCore.Process {
            let process = try vm.makeProcess(for: object.program(named: name), context: context, vCPU: vCPU)
            _ = try process.run()
            return process
        }
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
