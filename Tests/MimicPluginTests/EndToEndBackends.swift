import Foundation
import MimicCore
import MimicLinux
import Testing
import MimicTestSupport

/// The two ways a host gets the Linux environment, for the end-to-end scenarios: MimicLinux
/// linked statically (`LinuxEmulator`), or loaded as a plugin (`libMimicLinuxPlugin.so`) with
/// the host using only MimicCore's generic plugin map and context API.
enum Backend: String, CaseIterable, CustomStringConvertible, Sendable {
    case `static`
    case plugin

    var description: String { rawValue }

    /// The fixtures of MimicLinuxTests (clang-built objects; not rebuilt here).
    static let fixtures = PluginFixtures.packageRoot.appendingPathComponent(
        "Tests/MimicLinuxTests/Fixtures", isDirectory: true)

    /// Loads fixture `name` into a fresh VM with a 2-CPU Linux environment (random seed 1).
    func load(_ name: String) throws -> any Environment {
        let object = try ObjectFile(contentsOf: Self.fixtures.appendingPathComponent("\(name).o").path)
        switch self {
        case .static:
            let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 2, randomSeed: 1))
            let vm = VM(emulator: emulator)
            let loaded = try vm.load(object: object)
            // The test reads perf events, as the plugin's host does: attach the readers.
            for map in emulator.allMaps { (map as? PerfEventArrayMap)?.attachReaders() }
            return StaticEnvironment(vm: vm, emulator: emulator, object: loaded)
        case .plugin:
            PluginFixtures.quietLogs
            let library = try PluginLibrary.load(path: try PluginFixtures.linuxPlugin.get())
            let emulator = library.makeEmulator(options: "cpus=2,seed=1")
            let vm = VM(emulator: emulator)
            return PluginEnvironment(vm: vm, emulator: emulator, object: try vm.load(object: object))
        }
    }
}

/// What a run produced, in terms both backends report.
struct RunOutcome: Equatable, CustomStringConvertible {
    var r0: UInt64
    /// `XDP_PASS`, `TC_ACT_OK`, ... (nil for other contexts).
    var action: String?
    var packet: [UInt8]?
    var redirectIfindex: UInt32?
    /// `__sk_buff.mark` after the run (sk_buff contexts).
    var mark: UInt32?
    var trace: [String]
    var warnings: [String]

    var description: String {
        "r0 \(r0) \(action ?? "-") redirect \(redirectIfindex.map(String.init) ?? "-") trace \(trace)"
    }
}

/// A record taken from a ring buffer or perf event array.
struct Record: Equatable {
    var cpu: Int?
    var data: [UInt8]
}

/// A fixture loaded into a VM, whichever backend provides the environment.
protocol Environment {
    var vm: VM { get }
    var object: LoadedObject { get }
    /// Runs program `name` on the context file `context` (JSON) on `vCPU`.
    func run(_ name: String, context: String, vCPU: Int) throws -> RunOutcome
    /// Runs the process `reset` reuses (`Process.reset(context:)`) a second time.
    func runTwice(_ name: String, contexts: (String, String)) throws -> (RunOutcome, RunOutcome)
    func map(_ name: String) throws -> any MapView
    /// Puts map `inner` into slot `index` of map of maps `outer`; the errno on failure.
    func setInnerMap(_ outer: String, index: Int, to inner: String) throws -> Int32?
}

extension Environment {
    func run(_ name: String, context: String) throws -> RunOutcome { try run(name, context: context, vCPU: 0) }
}

/// One map, through `BPFMap` (static) or `PluginMap` (plugin).
protocol MapView {
    var handle: UInt64 { get }
    var maxEntries: Int { get }
    var valueSize: Int { get }
    var flags: UInt32 { get }
    func value(_ key: [UInt8]) throws -> [UInt8]?
    func perCPUValues(_ key: [UInt8]) throws -> [[UInt8]]?
    /// Updates an element; returns the errno (positive) it failed with, or nil.
    func update(_ key: [UInt8], _ value: [UInt8], flags: UInt64) throws -> Int32?
    func keys() throws -> [[UInt8]]
    func lookupAddress(_ key: [UInt8]) throws -> UInt64?
    func drainRecords() throws -> [Record]
}

// MARK: Static

struct StaticEnvironment: Environment {
    let vm: VM
    let emulator: LinuxEmulator
    let object: LoadedObject

    func context(_ json: String) throws -> any Context { try ContextFile.load(data: Array(json.utf8)) }

    func outcome(_ process: MimicCore.Process, r0: UInt64) -> RunOutcome {
        let state = LinuxProcessState.of(process)
        var outcome = RunOutcome(r0: r0, trace: state?.traceOutput ?? [], warnings: state?.warnings ?? [])
        if let result = XDPContext.result(of: process) {
            outcome.action = result.action?.name
            outcome.packet = result.packet
            outcome.redirectIfindex = result.redirect?.ifindex
        } else if let result = SKBContext.result(of: process) {
            outcome.action = result.action?.name
            outcome.packet = result.packet
            outcome.redirectIfindex = result.redirect?.ifindex
            outcome.mark = result.fields.mark
        }
        return outcome
    }

    func run(_ name: String, context json: String, vCPU: Int) throws -> RunOutcome {
        let process = try vm.makeProcess(for: object.program(named: name), context: context(json), vCPU: vCPU)
        return outcome(process, r0: try process.run())
    }

    func runTwice(_ name: String, contexts: (String, String)) throws -> (RunOutcome, RunOutcome) {
        let process = try vm.makeProcess(for: object.program(named: name), context: context(contexts.0))
        let first = outcome(process, r0: try process.run())
        try process.reset(context: context(contexts.1))
        return (first, outcome(process, r0: try process.run()))
    }

    func map(_ name: String) throws -> any MapView {
        guard let map = emulator.map(named: name) else { throw FixtureFailure("no map named \(name)") }
        return StaticMap(map: map)
    }

    func setInnerMap(_ outer: String, index: Int, to inner: String) throws -> Int32? {
        guard let outer = emulator.map(named: outer) as? MapOfMaps, let inner = emulator.map(named: inner) else {
            throw FixtureFailure("no such maps")
        }
        return outer.setInnerMap(inner, forKey: le32(UInt32(index)))?.rawValue
    }
}

struct StaticMap: MapView {
    let map: any BPFMap
    var handle: UInt64 { map.handle }
    var maxEntries: Int { map.attributes.maxEntries }
    var valueSize: Int { map.attributes.valueSize }
    var flags: UInt32 { map.attributes.flags }
    func value(_ key: [UInt8]) -> [UInt8]? { map.value(forKey: key) }
    func perCPUValues(_ key: [UInt8]) -> [[UInt8]]? { map.perCPUValues(forKey: key) }
    func update(_ key: [UInt8], _ value: [UInt8], flags: UInt64) -> Int32? {
        map.update(key: key, value: value, flags: MapUpdateFlags(rawValue: flags), cpu: 0)?.rawValue
    }
    func keys() -> [[UInt8]] { map.keys }
    func lookupAddress(_ key: [UInt8]) -> UInt64? { map.lookupAddress(key: key, cpu: 0) }
    func drainRecords() throws -> [Record] {
        switch map {
        case let ring as RingBufferMap: return ring.drainRecords().map { Record(cpu: nil, data: $0) }
        case let perf as PerfEventArrayMap: return perf.drainRecords().map { Record(cpu: $0.cpu, data: $0.data) }
        default: throw FixtureFailure("\(map.name) holds no records")
        }
    }
}

// MARK: Plugin

struct PluginEnvironment: Environment {
    let vm: VM
    let emulator: PluginEmulator
    let object: LoadedObject

    func outcome(_ process: MimicCore.Process) throws -> RunOutcome {
        let result = try #require(try emulator.contextResult(of: process))
        var outcome = RunOutcome(
            r0: result.returnValue, action: result.action, redirectIfindex: result.redirectIfindex,
            trace: result.trace, warnings: result.warnings)
        if result.type == "xdp_md" || result.type == "sk_buff" { outcome.packet = result.packet }
        outcome.mark = result.fields["mark"].map { UInt32(truncatingIfNeeded: $0) }
        return outcome
    }

    func run(_ name: String, context json: String, vCPU: Int) throws -> RunOutcome {
        let process = try vm.makeProcess(
            for: object.program(named: name), context: PluginContext(json: json, emulator: emulator),
            vCPU: vCPU)
        try process.run()
        return try outcome(process)
    }

    func runTwice(_ name: String, contexts: (String, String)) throws -> (RunOutcome, RunOutcome) {
        let process = try vm.makeProcess(
            for: object.program(named: name), context: PluginContext(json: contexts.0, emulator: emulator))
        try process.run()
        let first = try outcome(process)
        try process.reset(context: PluginContext(json: contexts.1, emulator: emulator))
        try process.run()
        return (first, try outcome(process))
    }

    func map(_ name: String) throws -> any MapView {
        guard let map = emulator.map(named: name, in: vm) else { throw FixtureFailure("no map named \(name)") }
        return PluginMapView(map: map)
    }

    func setInnerMap(_ outer: String, index: Int, to inner: String) throws -> Int32? {
        guard let outer = emulator.map(named: outer, in: vm), let inner = emulator.map(named: inner, in: vm) else {
            throw FixtureFailure("no such maps")
        }
        do {
            try outer.setInnerMap(inner, at: index)
            return nil
        } catch {
            return -error.errno
        }
    }
}

struct PluginMapView: MapView {
    let map: PluginMap
    var handle: UInt64 { map.handle }
    var maxEntries: Int { map.maxEntries }
    var valueSize: Int { map.valueSize }
    var flags: UInt32 { map.flags }
    func value(_ key: [UInt8]) throws -> [UInt8]? { try map.value(forKey: key) }
    func perCPUValues(_ key: [UInt8]) throws -> [[UInt8]]? { try map.perCPUValues(forKey: key) }
    func update(_ key: [UInt8], _ value: [UInt8], flags: UInt64) throws -> Int32? {
        do {
            try map.update(key: key, value: value, flags: flags)
            return nil
        } catch {
            return -error.errno
        }
    }
    func keys() throws -> [[UInt8]] { try map.keys() }
    func lookupAddress(_ key: [UInt8]) throws -> UInt64? { try map.lookupAddress(key: key) }
    func drainRecords() throws -> [Record] { try map.drainRecords().map { Record(cpu: $0.cpu, data: $0.data) } }
}

struct FixtureFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: Context files

/// Context files (JSON, Docs/Contexts.md) for the scenarios: both backends read the same text.
enum ContextJSON {
    static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    /// An `xdp_md` context on `packet` whose `rx_queue_index` is `queue` (fixtures read it as input).
    static func xdp(_ packet: [UInt8], queue: UInt32 = 0) -> String {
        #"{"name":"xdp","type":"xdp_md","ctx":{"packet":"\#(base64(packet))","rx_queue_idx":\#(queue)}}"#
    }

    /// An `sk_buff` context on `packet`.
    static func skb(_ packet: [UInt8]) -> String {
        #"{"name":"skb","type":"sk_buff","ctx":{"packet":"\#(base64(packet))"}}"#
    }

    /// A `captured` context around a `generic` one whose R1 points to the bytes `regs`, with
    /// recorded calls: helper number to `(params, results)` of each call, results' values either
    /// numbers or bytes.
    static func captured(regs: [UInt8], calls: [Int: [(params: [(Int, UInt64)], results: [(Int, CapturedValue)])]])
        -> String
    {
        let records = calls.sorted { $0.key < $1.key }.map { helper, list in
            let entries = list.map { call in
                let params = call.params.map { #"{"reg":\#($0.0),"value":\#($0.1)}"# }.joined(separator: ",")
                let results = call.results.map { register, value in
                    switch value {
                    case .number(let number): return #"{"reg":\#(register),"value":\#(number)}"#
                    case .bytes(let bytes): return #"{"reg":\#(register),"value":"\#(base64(bytes))"}"#
                    }
                }.joined(separator: ",")
                return #"{"helperFn":\#(helper),"params":[\#(params)],"results":[\#(results)]}"#
            }
            return #""\#(helper)":[\#(entries.joined(separator: ","))]"#
        }
        let generic =
            #"{"name":"regs","type":"generic","ctx":{"registers":{"r1":"regs"},"memory":[{"name":"regs","type":"block","value":{"value":"\#(base64(regs))"}}]}}"#
        return
            #"{"name":"captured","type":"captured","ctx":{"subContext":\#(generic),"helperCalls":{\#(records.joined(separator: ","))}}}"#
    }

    enum CapturedValue {
        case number(UInt64)
        case bytes([UInt8])
    }
}
