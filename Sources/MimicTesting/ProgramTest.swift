import Foundation
import MimicCore
import MimicJSON
import MimicLinux

/// Runs test cases on one program of an object in the Linux emulator: no root, no kernel.
///
/// ```swift
/// let test = try ProgramTest(object: "Examples/xdp_firewall.o")
/// let result = try test.run(TestCase(name: "runt", input: .packet([0x02, 0x00]), expect: Expectation(verdict: .drop)))
/// #expect(result.verdict == .drop)
/// #expect(result.passed, "\(result.report)")
/// ```
///
/// Every case runs in a fresh VM (maps as the object declares them, then the seeds), so cases
/// do not see each other's map changes.
public struct ProgramTest: Sendable {
    public let object: ObjectFile
    /// The object's path or name, for messages.
    public let objectName: String
    public let program: ObjectProgram
    public let config: TestConfiguration
    /// Seeds applied before every case's own.
    public let setup: [MapSeed]
    /// The per-run instruction budget.
    public var instructionLimit: UInt64 = 10_000_000

    /// Loads the object at `path` and picks `program` (nil: its only program).
    public init(
        object path: String, program: String? = nil, config: TestConfiguration = TestConfiguration(),
        setup: [MapSeed] = []
    ) throws(TestFileError) {
        let object: ObjectFile
        do {
            object = try ObjectFile(contentsOf: path)
        } catch {
            let exists = FileManager.default.fileExists(atPath: path)
            throw TestFileError(file: path, exists ? "cannot read the object: \(error)" : "no such object file")
        }
        try self.init(object: object, name: path, program: program, config: config, setup: setup)
    }

    /// Tests `program` (nil: the only program) of an object already read, configured by
    /// `config` first (globals, map sizes, slots; its program type goes to the program tested).
    public init(
        object unconfigured: ObjectFile, name: String, program: String? = nil,
        config: TestConfiguration = TestConfiguration(),
        setup: [MapSeed] = []
    ) throws(TestFileError) {
        let names = unconfigured.programs.map(\.name).joined(separator: ", ")
        let programName: String
        if let program {
            guard unconfigured.program(named: program) != nil else {
                throw TestFileError(file: name, "has no program named '\(program)' (programs: \(names))")
            }
            programName = program
        } else {
            guard unconfigured.programs.count == 1, let only = unconfigured.programs.first else {
                throw TestFileError(
                    file: name,
                    unconfigured.programs.isEmpty
                        ? "contains no programs"
                        : "has \(unconfigured.programs.count) programs; name one with \"program\": \(names)")
            }
            programName = only.name
        }
        var configuration = config.object
        if let type = config.programType { configuration.programTypes[programName] = type }
        do {
            object = configuration.isEmpty ? unconfigured : try unconfigured.configured(configuration)
        } catch {
            throw TestFileError(file: name, "config: \(error)")
        }
        guard let found = object.program(named: programName) else {
            throw TestFileError(file: name, "has no program named '\(programName)' (programs: \(names))")
        }
        self.program = found
        objectName = name
        self.config = config
        self.setup = setup
    }

    /// What runs the cases (`--engine`); the default is the host's JIT, or the interpreter.
    public var engine: ExecutionEngine = .automatic

    /// The test of a suite's object, program, configuration and setup.
    public init(suite: TestSuite) throws(TestFileError) {
        try self.init(object: suite.objectPath, program: suite.program, config: suite.config, setup: suite.setup)
    }

    /// The map layout and BTF types expectations are read with.
    public var layout: ObjectLayout { ObjectLayout(object: object, cpus: config.cpus, programType: program.type) }

    /// Runs `testCase` and checks it.
    ///
    /// - Throws: `TestFileError` when the case cannot run at all (an unknown map, a seed of
    ///   the wrong size, an unreadable input); a program that faults is a failed result, not a throw.
    public func run(_ testCase: TestCase) throws(TestFileError) -> TestResult {
        let observation = try observe(testCase)
        return TestResult(
            name: testCase.name, observation: observation,
            failures: try layout.check(testCase.expect, against: observation, file: objectName))
    }

    /// Runs `testCase` in the emulator and records everything it produced.
    public func observe(_ testCase: TestCase) throws(TestFileError) -> Observation {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: config.cpus, randomSeed: config.seed))
        let vm = VM(emulator: emulator, configuration: VMConfiguration(engine: engine))
        let loaded: LoadedObject
        let runnable: Program
        do {
            loaded = try vm.load(object: object)
            runnable = try loaded.program(named: program.name)
        } catch {
            throw TestFileError(file: objectName, "cannot load: \(error)")
        }
        for map in emulator.allMaps { (map as? PerfEventArrayMap)?.attachReaders() }
        let layout = self.layout
        for seed in setup + testCase.seeds {
            for entry in seed.entries {
                let (key, values) = try layout.seedBytes(seed.map, entry, file: objectName)
                if let global = loaded.globals[seed.map] {
                    guard !global.spec.isReadOnly else {
                        throw TestFileError(
                            file: objectName, "\(entry.path): \(seed.map) is read-only; it cannot be seeded")
                    }
                    global.storage.write(values[0], at: 0)
                    continue
                }
                guard let map = emulator.map(named: seed.map) else {
                    throw TestFileError(file: objectName, "\(entry.path): the emulator created no map \(seed.map)")
                }
                let perCPU = layout.isPerCPU(seed.map)
                for cpu in 0..<(perCPU ? config.cpus : 1) {
                    if let failure = map.update(
                        key: key, value: values.count == 1 ? values[0] : values[cpu], flags: .any, cpu: cpu)
                    {
                        throw TestFileError(
                            file: objectName, "\(entry.path): cannot store the entry in \(seed.map): \(failure)")
                    }
                }
            }
        }
        let context = try self.context(for: testCase)
        var observation = Observation(source: .mimic)
        do {
            let process = try vm.makeProcess(for: runnable, context: context, vCPU: 0)
            defer {
                let state = LinuxProcessState.of(process)
                observation.trace = state?.traceOutput ?? []
                observation.packet = state?.packet?.data
                observation.redirect = state?.redirect
                observation.context = TestRunContext.output(of: process)
            }
            observation.returnValue = try process.run(instructionLimit: instructionLimit)
        } catch {
            observation.error = "\(error)"
        }
        var events: [Observation.Event] = []
        for map in emulator.allMaps {
            if let ring = map as? RingBufferMap {
                events += ring.drainRecords().map { Observation.Event(map: map.name, cpu: nil, data: $0) }
            } else if let perf = map as? PerfEventArrayMap {
                events += perf.drainRecords().map { Observation.Event(map: map.name, cpu: $0.cpu, data: $0.data) }
            }
        }
        observation.events = events
        observation.lookup = { name, key in
            if let global = loaded.globals[name] { return [global.storage.bytes] }
            return emulator.map(named: name)?.perCPUValues(forKey: key)
        }
        return observation
    }

    /// The context a case runs in: its input's, with its context fields set.
    public func context(for testCase: TestCase) throws(TestFileError) -> any Context {
        let context = try self.context(for: testCase.input)
        do {
            return try TestRunContext.apply(testCase.contextFields, to: context)
        } catch {
            throw TestFileError(file: objectName, "case \"\(testCase.name)\": input.ctx: \(error)")
        }
    }

    /// The context an input runs in.
    public func context(for input: TestInput) throws(TestFileError) -> any Context {
        let describing = "program \(program.name) (type \(program.type))"
        if case .context(let path) = input {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw TestFileError(file: path, "cannot read the context file")
            }
            do {
                return try ContextFit.fit(try ContextFile.load(data: data), to: program)
            } catch {
                throw TestFileError(file: path, error.description)
            }
        }
        guard let packet = try input.packetBytes() else {
            if ContextFit.packetKind(of: program.type) != nil {
                throw TestFileError(
                    file: objectName, "\(describing) needs a packet: give the case an input (packet, pcap or context)")
            }
            return GenericContext(name: "empty")
        }
        switch ContextFit.packetKind(of: program.type) {
        case .xdp?:
            return XDPContext(packet: packet)
        case .skb?:
            // As the kernel's test run builds it (`ObjectComparison` does the same).
            var skb = SKBContext(packet: packet, ifindex: 1)
            skb.ingressIfindex = 0
            skb.dataStart = ContextFit.dataStart(of: program.type)
            return skb
        case nil:
            throw TestFileError(file: objectName, "\(describing) does not take packets; give a context file instead")
        }
    }
}

/// What one run produced, in Mimic or in the kernel; nil members were not observable there.
public struct Observation {
    /// Where the run happened.
    public enum Source: String, Sendable { case mimic, kernel }

    public var source: Source
    /// R0 (the kernel reports its low 32 bits).
    public var returnValue: UInt64?
    /// Why the run did not finish.
    public var error: String?
    public var packet: [UInt8]?
    /// nil with `trace`/`events` nil: not observable (the kernel's test run).
    public var redirect: Redirect?
    public var trace: [String]?
    public var events: [Event]?
    /// The context fields as the program left them (`ctx_out`); nil where not reported.
    public var context: [TestRunContext.Field]?
    /// A map entry's value(s) after the run, one per CPU for per-CPU maps (nil: absent).
    public var lookup: (_ map: String, _ key: [UInt8]) throws -> [[UInt8]]? = { _, _ in nil }
    /// Differences between Mimic and the kernel, when both ran (`--kernel`).
    public var disagreements: [String] = []

    public init(source: Source) { self.source = source }

    /// A ring buffer record or perf event.
    public struct Event: Sendable, Equatable {
        public var map: String
        /// The CPU of a perf event; nil for ring buffer records.
        public var cpu: Int?
        public var data: [UInt8]

        public init(map: String, cpu: Int?, data: [UInt8]) {
            self.map = map
            self.cpu = cpu
            self.data = data
        }
    }
}

/// The outcome of one case.
public struct TestResult {
    public var name: String
    public var observation: Observation
    /// Every expectation that did not hold; empty when the case passed.
    public var failures: [Mismatch]
    /// Expectations that could not be checked where the case ran (trace output in the kernel).
    public var notes: [String] = []

    public var passed: Bool { failures.isEmpty }

    /// The verdict the program returned (R0's low 32 bits), or nil when the run failed.
    public var verdict: Verdict? {
        observation.returnValue.map { Verdict(UInt32(truncatingIfNeeded: $0)) }
    }

    /// The failures as the readable diff `mimic test` prints.
    public var report: String { failures.map(\.description).joined(separator: "\n") }
}

/// One expectation that did not hold: what, expected and actual, and extra lines of context
/// (the whole value formatted by BTF, a hex dump).
public struct Mismatch: Sendable, Equatable, CustomStringConvertible {
    /// What was checked: `verdict`, `packet[14]`, `map blocklist [192.0.2.66] .hits`.
    public var what: String
    public var expected: String
    public var actual: String
    public var detail: [String] = []

    public init(what: String, expected: String, actual: String, detail: [String] = []) {
        self.what = what
        self.expected = expected
        self.actual = actual
        self.detail = detail
    }

    public var description: String {
        var text = "\(what):\n  - expected: \(expected)\n  + actual:   \(actual)"
        for line in detail { text += "\n    \(line)" }
        return text
    }
}

extension ProgramTest {
    /// Runs every case of `suite` in the emulator. A suite whose object cannot be used reports
    /// each case as an error with that message.
    public static func run(suite: TestSuite, engine: ExecutionEngine = .automatic) -> SuiteReport {
        let file = suite.path ?? suite.name
        var test: ProgramTest
        do {
            test = try ProgramTest(suite: suite)
            test.engine = engine
        } catch {
            return SuiteReport(
                name: suite.name, file: file,
                cases: suite.cases.map { CaseReport(name: $0.name, status: .error(error.description)) })
        }
        return SuiteReport(name: suite.name, file: file, cases: suite.cases.map(test.report))
    }

    /// Runs one case and reports it, timed.
    public func report(_ testCase: TestCase) -> CaseReport {
        let clock = ContinuousClock()
        let start = clock.now
        var report: CaseReport
        do {
            let result = try run(testCase)
            report = CaseReport(name: testCase.name, status: result.passed ? .passed : .failed(result.failures))
        } catch {
            report = CaseReport(name: testCase.name, status: .error(error.description))
        }
        let elapsed = clock.now - start
        report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return report
    }
}
