import Foundation
import MimicCore
import MimicJSON
import MimicLinux
import MimicPcap

/// A test file of `mimic test`: one object, its configuration, and cases (Docs/Testing-Programs.md).
///
/// Load one with `TestSuite.load(path:)`, or build one in code from `TestCase`s and run it with
/// `ProgramTest`.
public struct TestSuite: Sendable {
    /// The file the suite came from (nil when built in code).
    public var path: String?
    /// The suite's name: the file's `"name"`, else its base name.
    public var name: String
    /// Where the object file is (resolved against the test file's folder).
    public var objectPath: String
    /// The program to run (nil: the object's only program).
    public var program: String?
    public var config: TestConfiguration
    /// Entries put in maps before every case (before the case's own).
    public var setup: [MapSeed]
    public var cases: [TestCase]

    public init(
        name: String, objectPath: String, program: String? = nil, config: TestConfiguration = TestConfiguration(),
        setup: [MapSeed] = [], cases: [TestCase]
    ) {
        self.name = name
        self.objectPath = objectPath
        self.program = program
        self.config = config
        self.setup = setup
        self.cases = cases
    }

    /// Reads the test file at `path`. Relative paths inside it (object, pcap, context files)
    /// are relative to the test file's folder.
    public static func load(path: String) throws(TestFileError) -> TestSuite {
        guard let data = FileManager.default.contents(atPath: path) else {
            let exists = FileManager.default.fileExists(atPath: path)
            throw TestFileError(file: path, exists ? "cannot read the file" : "no such file")
        }
        do {
            let root = JSONField(try JSONValue.parse(Array(data)), path: "")
            return try parse(root, path: path)
        } catch {
            throw TestFileError(file: path, error.description)
        }
    }

    /// Parses a test file's JSON; `path` names it and anchors its relative paths.
    public static func parse(_ root: JSONField, path: String) throws(JSONError) -> TestSuite {
        try root.object()
        try requireKnown(root, ["name", "object", "program", "config", "setup", "cases"])
        let folder = TestSuite.folder(of: path)
        let baseName = path.split(separator: "/").last.map(String.init) ?? path
        var suite = TestSuite(
            name: try root["name"].optionalString() ?? baseName,
            objectPath: resolve(try root["object"].string(), in: folder),
            program: try root["program"].optionalString(),
            config: try TestConfiguration(root["config"]),
            setup: try MapSeed.list(root["setup"]),
            cases: [])
        suite.path = path
        let cases = try root["cases"].elements()
        if cases.isEmpty { throw root["cases"].error("a test file needs at least one case") }
        for field in cases { suite.cases.append(try TestCase(field, folder: folder)) }
        var names = Set<String>()
        for (index, item) in suite.cases.enumerated() where !names.insert(item.name).inserted {
            throw root["cases"].error("case \(index) repeats the name \"\(item.name)\"; case names must be unique")
        }
        return suite
    }

    static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return path[..<slash].isEmpty ? "/" : String(path[..<slash])
    }

    static func resolve(_ path: String, in folder: String) -> String {
        path.hasPrefix("/") || folder == "." ? path : folder + "/" + path
    }

    /// Refuses members outside `allowed`, so a misspelt key is an error, not a silently
    /// skipped check.
    static func requireKnown(_ field: JSONField, _ allowed: [String]) throws(JSONError) {
        for (key, member) in try field.members() where !allowed.contains(key) {
            throw member.error("unknown member \"\(key)\" (expected one of: \(allowed.joined(separator: ", ")))")
        }
    }
}

/// A test file's `"config"`: how the object is set up before it loads, as a libbpf skeleton
/// configures it between open and load (MimicCore's `ObjectConfiguration`), plus the emulator's
/// CPUs and random seed.
public struct TestConfiguration: Sendable, Equatable {
    /// Possible CPUs of the emulator (per-CPU maps hold this many values). Default 1.
    public var cpus: Int = 1
    /// The seed of `bpf_get_prandom_u32` (default 1, so runs repeat).
    public var seed: UInt64 = 1
    /// Global variables (`.rodata` constants, `.data`, `.bss`) by name, `max_entries` by map
    /// name, prog-array and map-of-maps slots.
    public var object = ObjectConfiguration()
    /// The program type of the program under test, for a section that gives none (`xdp`, `tc`).
    public var programType: ProgramType?
    /// The program must pass the verifier model (`"verify": true`; `mimic test` checks it with
    /// MimicVerifier before the cases, as a case `(verifier)`).
    public var verify = false

    public init(
        cpus: Int = 1, seed: UInt64 = 1, object: ObjectConfiguration = ObjectConfiguration(),
        programType: ProgramType? = nil
    ) {
        self.cpus = cpus
        self.seed = seed
        self.object = object
        self.programType = programType
    }

    init(_ field: JSONField) throws(JSONError) {
        guard !field.isMissing else { return }
        try field.object()
        try TestSuite.requireKnown(
            field, ["cpus", "seed", "globals", "mapSizes", "type", "progArrays", "mapsOfMaps", "verify"])
        switch field["verify"].value {
        case nil, .null: break
        case .bool(let value): verify = value
        default: throw field["verify"].error("must be true or false")
        }
        if let cpus = try field["cpus"].optionalInteger(Int.self) {
            guard (1...1024).contains(cpus) else { throw field["cpus"].error("must be between 1 and 1024") }
            self.cpus = cpus
        }
        if !field["seed"].isMissing { seed = try field["seed"].bits64() }
        if !field["globals"].isMissing {
            try field["globals"].object()
            for (name, value) in try field["globals"].members() {
                guard let value = value.value else { continue }
                object.globals.append(.init(name: name, value: value))
            }
        }
        if !field["mapSizes"].isMissing {
            try field["mapSizes"].object()
            for (name, size) in try field["mapSizes"].members() {
                let entries = try size.integer(UInt32.self)
                guard entries >= 1 else { throw size.error("a map needs at least 1 entry") }
                object.mapSizes[name] = Int(entries)
            }
        }
        for (member, isProgram) in [("progArrays", true), ("mapsOfMaps", false)] where !field[member].isMissing {
            // {"MAP": {"INDEX": "PROGRAM or INNER MAP"}}
            try field[member].object()
            for (map, slots) in try field[member].members() {
                try slots.object()
                for (index, target) in try slots.members() {
                    guard let slot = Int(index), slot >= 0 else {
                        throw target.error("slot indexes are whole numbers from 0")
                    }
                    let name = try target.string()
                    object.slots.append(.init(map: map, index: slot, target: isProgram ? .program(name) : .map(name)))
                }
            }
        }
        if let text = try field["type"].optionalString() {
            guard let type = text == "tc" ? ProgramType.schedCls : ProgramType(kernelName: text) else {
                throw field["type"].error(
                    "unknown program type \"\(text)\"; use xdp, tc (sched_cls), socket_filter, ... (linux/bpf.h's names)"
                )
            }
            programType = type
        }
    }
}

/// One case: maps to seed, the input, and what to expect.
public struct TestCase: Sendable {
    public var name: String
    /// Entries put in maps before the run (after the suite's `setup`).
    public var seeds: [MapSeed]
    public var input: TestInput
    /// Context fields set before the run, as `BPF_PROG_TEST_RUN`'s `ctx_in` allows them
    /// (`__sk_buff` mark, priority, cb[0..4], ...; `xdp_md` ingress_ifindex, rx_queue_index).
    public var contextFields: [TestRunContext.Field]
    public var expect: Expectation

    public init(
        name: String, seeds: [MapSeed] = [], input: TestInput, contextFields: [TestRunContext.Field] = [],
        expect: Expectation
    ) {
        self.name = name
        self.seeds = seeds
        self.input = input
        self.contextFields = contextFields
        self.expect = expect
    }

    init(_ field: JSONField, folder: String) throws(JSONError) {
        try field.object()
        try TestSuite.requireKnown(field, ["name", "maps", "input", "expect"])
        name = try field["name"].string()
        seeds = try MapSeed.list(field["maps"])
        input = try TestInput(field["input"], folder: folder)
        contextFields = try Self.fields(field["input"]["ctx"])
        expect = try Expectation(field["expect"])
    }
}

extension TestCase {
    /// `{"mark": 7, "cb[0]": 1}`: context fields by the kernel's names.
    static func fields(_ field: JSONField) throws(JSONError) -> [TestRunContext.Field] {
        guard !field.isMissing else { return [] }
        try field.object()
        var fields: [TestRunContext.Field] = []
        for (name, value) in try field.members() {
            fields.append(TestRunContext.Field(name: name, value: try value.bits64()))
        }
        return fields
    }
}

/// What a case runs on.
public enum TestInput: Sendable, Equatable {
    /// No input: tracing programs run with an empty context.
    case none
    /// A packet (an Ethernet frame), in the context the program type takes.
    case packet([UInt8])
    /// Packet `number` (from 1, as `mimic run --pcap F --packet N` counts) of a pcap or pcapng file.
    case pcap(path: String, number: Int)
    /// A context file (Docs/Contexts.md).
    case context(path: String)

    init(_ field: JSONField, folder: String) throws(JSONError) {
        guard !field.isMissing else {
            self = .none
            return
        }
        try field.object()
        try TestSuite.requireKnown(field, ["packet", "packetBase64", "pcap", "number", "context", "ctx"])
        let given = ["packet", "packetBase64", "pcap", "context"].filter { !field[$0].isMissing }
        if given.isEmpty, !field["ctx"].isMissing {
            throw field["ctx"].error("context fields need a packet or a context file to set them on")
        }
        guard given.count <= 1 else { throw field.error("give one of \(given.joined(separator: ", ")), not several") }
        if !field["number"].isMissing, given != ["pcap"] { throw field["number"].error("number goes with pcap") }
        switch given.first {
        case "packet":
            self = .packet(try ValueSyntax.hex(field["packet"]))
        case "packetBase64":
            self = .packet(try field["packetBase64"].base64())
        case "pcap":
            let number = try field["number"].optionalInteger(Int.self) ?? 1
            guard number >= 1 else { throw field["number"].error("packets are numbered from 1") }
            self = .pcap(path: TestSuite.resolve(try field["pcap"].string(), in: folder), number: number)
        case "context":
            self = .context(path: TestSuite.resolve(try field["context"].string(), in: folder))
        default:
            self = .none
        }
    }

    /// The packet of this input, if it is a packet or a packet of a capture.
    public func packetBytes() throws(TestFileError) -> [UInt8]? {
        switch self {
        case .packet(let bytes):
            return bytes
        case .pcap(let path, let number):
            guard let data = FileManager.default.contents(atPath: path) else {
                throw TestFileError(file: path, "cannot read the capture")
            }
            let packets: [PcapPacket]
            do {
                packets = try PcapReader.readAll(Array(data))
            } catch {
                throw TestFileError(file: path, "\(error)")
            }
            guard number <= packets.count else {
                throw TestFileError(
                    file: path, "has \(packets.count) packets; there is no packet \(number) (numbered from 1)")
            }
            return packets[number - 1].data
        case .none, .context:
            return nil
        }
    }
}

/// Entries to put in one map before a run.
public struct MapSeed: Sendable, Equatable {
    public var map: String
    public var entries: [MapEntry]

    public init(map: String, entries: [MapEntry]) {
        self.map = map
        self.entries = entries
    }

    /// A `"maps"` object: map name → array of entries.
    static func list(_ field: JSONField) throws(JSONError) -> [MapSeed] {
        guard !field.isMissing else { return [] }
        try field.object()
        var seeds: [MapSeed] = []
        for (name, entries) in try field.members() {
            var list: [MapEntry] = []
            for item in try entries.elements() {
                try item.object()
                try TestSuite.requireKnown(item, ["key", "value", "values"])
                guard let key = item["key"].value else { throw item["key"].error("missing") }
                let values: [JSONValue]
                if !item["values"].isMissing {
                    guard item["value"].isMissing else { throw item.error("give either value or values, not both") }
                    values = try item["values"].elements().compactMap(\.value)
                } else {
                    guard let value = item["value"].value else { throw item["value"].error("missing") }
                    values = [value]
                }
                list.append(MapEntry(key: key, values: values, perCPU: !item["values"].isMissing, path: item.path))
            }
            seeds.append(MapSeed(map: name, entries: list))
        }
        return seeds
    }
}

/// A map entry as written in a test file: its key and value(s) as JSON, read against the map's
/// sizes and BTF types when the case runs.
public struct MapEntry: Sendable, Equatable {
    public var key: JSONValue
    /// One value, or one per CPU when `perCPU`.
    public var values: [JSONValue]
    public var perCPU: Bool
    /// Where it is in the test file (for messages).
    public var path: String

    /// An entry with one value (per-CPU maps: every CPU's).
    public init(key: JSONValue, value: JSONValue) {
        self.init(key: key, values: [value], perCPU: false, path: "entry")
    }

    init(key: JSONValue, values: [JSONValue], perCPU: Bool, path: String) {
        self.key = key
        self.values = values
        self.perCPU = perCPU
        self.path = path
    }
}

/// What a case expects; every member is optional and only given members are checked.
public struct Expectation: Sendable, Equatable {
    /// The verdict (R0's low 32 bits, as the program returns `int`).
    public var verdict: Verdict?
    public var packet: PacketExpectation?
    /// Map entries after the run (a value of `null` expects the key absent).
    public var maps: [MapExpectation] = []
    /// Ring buffer records and perf events, in order (all of them).
    public var events: [EventExpectation]?
    /// `bpf_printk` lines, in order (all of them).
    public var trace: [String]?
    /// The redirect target: `"none"`, `"ifindex N"`, or `"MAP[KEY]"` for `bpf_redirect_map`.
    public var redirect: String?
    /// A substring of the error the run must fail with (instead of finishing).
    public var error: String?
    /// Context fields as the program left them (`ctx_out`): `__sk_buff` mark, priority,
    /// tc_classid, cb[0..4], ...; `xdp_md` ingress_ifindex, rx_queue_index.
    public var context: [TestRunContext.Field] = []

    public init(
        verdict: Verdict? = nil, packet: PacketExpectation? = nil, maps: [MapExpectation] = [],
        events: [EventExpectation]? = nil, trace: [String]? = nil, redirect: String? = nil, error: String? = nil,
        context: [TestRunContext.Field] = []
    ) {
        self.context = context
        self.verdict = verdict
        self.packet = packet
        self.maps = maps
        self.events = events
        self.trace = trace
        self.redirect = redirect
        self.error = error
    }

    init(_ field: JSONField) throws(JSONError) {
        try field.object()
        try TestSuite.requireKnown(field, ["verdict", "packet", "maps", "events", "trace", "redirect", "error", "ctx"])
        if !field["verdict"].isMissing { verdict = try Verdict(field["verdict"]) }
        if !field["packet"].isMissing { packet = try PacketExpectation(field["packet"]) }
        if !field["maps"].isMissing {
            try field["maps"].object()
            for (name, entries) in try field["maps"].members() {
                for item in try entries.elements() {
                    try item.object()
                    try TestSuite.requireKnown(item, ["key", "value", "values"])
                    guard let key = item["key"].value else { throw item["key"].error("missing") }
                    if !item["values"].isMissing {
                        guard item["value"].isMissing else { throw item.error("give either value or values, not both") }
                        let values = try item["values"].elements().compactMap(\.value)
                        maps.append(MapExpectation(map: name, key: key, values: values, perCPU: true, path: item.path))
                    } else {
                        guard let value = item["value"].value else {
                            throw item["value"].error("missing (null expects the key absent)")
                        }
                        maps.append(
                            MapExpectation(
                                map: name, key: key, values: value == .null ? [] : [value], perCPU: false,
                                path: item.path))
                    }
                }
            }
        }
        if !field["events"].isMissing {
            events = []
            for item in try field["events"].elements() { events?.append(try EventExpectation(item)) }
        }
        if !field["trace"].isMissing {
            trace = try field["trace"].elements().map { (line) throws(JSONError) in try line.string() }
        }
        redirect = try field["redirect"].optionalString()
        error = try field["error"].optionalString()
        context = try TestCase.fields(field["ctx"])
        if error != nil, verdict != nil || packet != nil {
            throw field["error"].error("a run that fails has no verdict or packet to expect")
        }
    }
}

/// An expected verdict: a name (`XDP_DROP`, `TC_ACT_SHOT`) or a number.
public struct Verdict: Sendable, Equatable, CustomStringConvertible {
    /// The low 32 bits of R0 this verdict stands for.
    public var value: UInt32
    /// The name it was given by, if any.
    public var name: String?

    public init(_ value: UInt32) { self.value = value }

    public static let aborted = Verdict(XDPAction.aborted), drop = Verdict(XDPAction.drop),
        pass = Verdict(XDPAction.pass),
        tx = Verdict(XDPAction.tx), redirect = Verdict(XDPAction.redirect)
    public static let tcOK = Verdict(TCAction.ok), tcShot = Verdict(TCAction.shot), tcUnspec = Verdict(TCAction.unspec),
        tcRedirect = Verdict(TCAction.redirect), tcPipe = Verdict(TCAction.pipe)

    public init(_ action: XDPAction) {
        value = action.rawValue
        name = action.name
    }

    public init(_ action: TCAction) {
        value = UInt32(bitPattern: action.rawValue)
        name = action.name
    }

    /// The verdict named `name` (`XDP_*`, `TC_ACT_*`, `SK_DROP`/`SK_PASS`), or nil.
    public init?(named name: String) {
        if let action = XDPAction.allCases.first(where: { $0.name == name }) {
            self.init(action)
        } else if let action = TCAction.allCases.first(where: { $0.name == name }) {
            self.init(action)
        } else if name == "SK_DROP" || name == "SK_PASS" {
            self.init(name == "SK_PASS" ? 1 : 0)
            self.name = name
        } else {
            return nil
        }
    }

    init(_ field: JSONField) throws(JSONError) {
        if case .string(let text)? = field.value {
            guard let verdict = Verdict(named: text) else {
                throw field.error(
                    "unknown verdict \"\(text)\"; use XDP_* (XDP_PASS), TC_ACT_* (TC_ACT_OK), SK_PASS/SK_DROP, or a number"
                )
            }
            self = verdict
            return
        }
        let number = try field.integer(Int64.self)
        guard number >= Int64(Int32.min), number <= Int64(UInt32.max) else {
            throw field.error("\(number) does not fit in 32 bits")
        }
        self.init(UInt32(truncatingIfNeeded: number))
    }

    public static func == (a: Verdict, b: Verdict) -> Bool { a.value == b.value }

    public var description: String { name ?? String(Int32(bitPattern: value)) }
}

/// The packet after the run: all its bytes, or bytes at offsets (and its length).
public struct PacketExpectation: Sendable, Equatable {
    /// The whole packet, when given.
    public var exact: [UInt8]?
    public var length: Int?
    /// Bytes expected at offsets.
    public var bytes: [(offset: Int, bytes: [UInt8])] = []

    public init(exact: [UInt8]) { self.exact = exact }

    public init(length: Int? = nil, bytes: [(offset: Int, bytes: [UInt8])]) {
        self.length = length
        self.bytes = bytes
    }

    init(_ field: JSONField) throws(JSONError) {
        if case .string? = field.value {
            exact = try ValueSyntax.hex(field)
            return
        }
        try field.object()
        try TestSuite.requireKnown(field, ["length", "bytes"])
        length = try field["length"].optionalInteger(Int.self)
        for item in try field["bytes"].optionalElements() {
            try item.object()
            try TestSuite.requireKnown(item, ["offset", "hex"])
            let offset = try item["offset"].integer(Int.self)
            guard offset >= 0 else { throw item["offset"].error("must be 0 or more") }
            bytes.append((offset, try ValueSyntax.hex(item["hex"])))
        }
        if length == nil, bytes.isEmpty {
            throw field.error(
                "give length and/or bytes ({\"offset\": N, \"hex\": \"...\"}), or the whole packet as a hex string")
        }
    }

    public static func == (a: PacketExpectation, b: PacketExpectation) -> Bool {
        a.exact == b.exact && a.length == b.length && a.bytes.map(\.offset) == b.bytes.map(\.offset)
            && a.bytes.map(\.bytes) == b.bytes.map(\.bytes)
    }
}

/// One expected map entry after the run.
public struct MapExpectation: Sendable, Equatable {
    public var map: String
    public var key: JSONValue
    /// Empty: the key must be absent. One value: the value (per-CPU maps: the value on the CPU
    /// the test ran on, CPU 0). Several, with `perCPU`: one per CPU.
    public var values: [JSONValue]
    public var perCPU: Bool
    public var path: String

    /// Expects `key` in `map` to hold `value` (nil: to be absent).
    public init(map: String, key: JSONValue, value: JSONValue?) {
        self.init(map: map, key: key, values: value.map { [$0] } ?? [], perCPU: false, path: "maps.\(map)")
    }

    init(map: String, key: JSONValue, values: [JSONValue], perCPU: Bool, path: String) {
        self.map = map
        self.key = key
        self.values = values
        self.perCPU = perCPU
        self.path = path
    }
}

/// One expected ring buffer record or perf event.
public struct EventExpectation: Sendable, Equatable {
    /// The ring buffer or perf event array it comes from (nil: any).
    public var map: String?
    /// The BTF struct to read it as (nil: the one struct of its size named like an event).
    public var type: String?
    /// The record: bytes forms, or an object of field values read by BTF.
    public var value: JSONValue

    public init(map: String? = nil, type: String? = nil, value: JSONValue) {
        self.map = map
        self.type = type
        self.value = value
    }

    init(_ field: JSONField) throws(JSONError) {
        try field.object()
        try TestSuite.requireKnown(field, ["map", "type", "value"])
        map = try field["map"].optionalString()
        type = try field["type"].optionalString()
        guard let value = field["value"].value else { throw field["value"].error("missing") }
        self.value = value
    }
}

/// A test file that cannot be read or used: the message names the file and the JSON path.
public struct TestFileError: Error, Sendable, CustomStringConvertible, Equatable {
    public var file: String
    public var message: String

    public init(file: String, _ message: String) {
        self.file = file
        self.message = message
    }

    public var description: String { "\(file): \(message)" }
}
