import MimicCore
import MimicJSON
import MimicLinux

/// An object's maps and BTF types, as test files name them: reads keys and values written in
/// a test file and checks expectations against an `Observation` (from Mimic or the kernel —
/// one implementation for both).
public struct ObjectLayout: Sendable {
    public let object: ObjectFile
    /// The CPUs of the run (per-CPU expectations with `values` give one per CPU).
    public let cpus: Int
    /// The type of the program tested, which names its verdicts (`XDP_DROP`, `TC_ACT_SHOT`).
    public let programType: ProgramType?

    public init(object: ObjectFile, cpus: Int, programType: ProgramType? = nil) {
        self.object = object
        self.cpus = cpus
        self.programType = programType
    }

    /// A map's (or global-data section's) key and value sizes and BTF type ids.
    struct MapShape {
        var type: MapType
        var keySize: Int
        var valueSize: Int
        var keyType: UInt32?
        var valueType: UInt32?
    }

    func shape(_ name: String, path: String, file: String) throws(TestFileError) -> MapShape {
        if let spec = object.map(named: name) {
            let attributes = spec.attributes
            return MapShape(
                type: attributes.type, keySize: attributes.keySize, valueSize: attributes.valueSize,
                keyType: spec.keyTypeID, valueType: spec.valueTypeID)
        }
        if let global = object.global(named: name) {
            return MapShape(type: .array, keySize: 4, valueSize: global.size, keyType: nil, valueType: global.btfTypeID)
        }
        let names = object.maps.map(\.name) + object.globals.map(\.name)
        throw TestFileError(
            file: file,
            "\(path): the object has no map named '\(name)' (maps: \(names.isEmpty ? "none" : names.joined(separator: ", ")))"
        )
    }

    func isPerCPU(_ name: String) -> Bool {
        guard let type = object.map(named: name)?.attributes.type else { return false }
        return [MapType.perCPUHash, .perCPUArray, .lruPerCPUHash, .perCPUCgroupStorage].contains(type)
    }

    /// A seed entry's key and value bytes (one value, or one per CPU).
    public func seedBytes(_ map: String, _ entry: MapEntry, file: String) throws(TestFileError) -> (
        key: [UInt8], values: [[UInt8]]
    ) {
        let shape = try shape(map, path: entry.path, file: file)
        do throws(JSONError) {
            let key = try ValueSyntax.bytes(
                JSONField(entry.key, path: entry.path + ".key"), size: shape.keySize, what: "key")
            var values: [[UInt8]] = []
            for (index, value) in entry.values.enumerated() {
                let path = entry.perCPU ? "\(entry.path).values[\(index)]" : "\(entry.path).value"
                values.append(try ValueSyntax.bytes(JSONField(value, path: path), size: shape.valueSize, what: "value"))
            }
            if entry.perCPU {
                guard isPerCPU(map) else {
                    throw JSONError(path: entry.path + ".values", "\(map) is not a per-CPU map; use \"value\"")
                }
                guard values.count == cpus else {
                    throw JSONError(
                        path: entry.path + ".values", "has \(values.count) values; give one per CPU (\(cpus))")
                }
            }
            return (key, values)
        } catch {
            throw TestFileError(file: file, error.description)
        }
    }

    /// Every expectation of `expect` that `observation` does not meet.
    public func check(_ expect: Expectation, against observation: Observation, file: String) throws(TestFileError)
        -> [Mismatch]
    {
        var failures: [Mismatch] = []
        if let error = observation.error {
            if let wanted = expect.error {
                if !error.contains(wanted) {
                    failures.append(
                        Mismatch(what: "error", expected: "an error containing \"\(wanted)\"", actual: error))
                }
            } else {
                failures.append(Mismatch(what: "run", expected: "the program to finish", actual: "it failed: \(error)"))
            }
            return failures
        }
        if let wanted = expect.error {
            failures.append(
                Mismatch(
                    what: "error", expected: "an error containing \"\(wanted)\"",
                    actual: "the program finished with R0 = \(observation.returnValue ?? 0)"))
        }
        if let verdict = expect.verdict, let r0 = observation.returnValue {
            let low = UInt32(truncatingIfNeeded: r0)
            if low != verdict.value {
                failures.append(
                    Mismatch(
                        what: "verdict", expected: verdictText(verdict.value),
                        actual: verdictText(low)))
            }
        }
        if let packet = expect.packet {
            failures += check(packet, actual: observation.packet)
        }
        if let redirect = expect.redirect, observation.source == .mimic {
            let actual = Self.redirectText(observation.redirect)
            if actual != redirect { failures.append(Mismatch(what: "redirect", expected: redirect, actual: actual)) }
        }
        if let trace = expect.trace, let actual = observation.trace, trace != actual {
            failures.append(
                Mismatch(
                    what: "trace", expected: Self.lines(trace), actual: Self.lines(actual),
                    detail: Self.lineDiff(expected: trace, actual: actual)))
        }
        if let events = expect.events, let actual = observation.events {
            failures += try check(events, actual: actual, file: file)
        }
        for entry in expect.maps {
            failures += try check(entry, observation: observation, file: file)
        }
        if !expect.context.isEmpty {
            if let actual = observation.context {
                for field in expect.context {
                    guard let found = actual.first(where: { $0.name == field.name }) else {
                        // The kernel's ctx_out leaves some fields out (tc_classid, ...): those are
                        // checked in Mimic only.
                        if observation.source == .kernel { continue }
                        failures.append(
                            Mismatch(
                                what: "ctx.\(field.name)", expected: "\(field.value)",
                                actual:
                                    "not a field the context reports (\(actual.map(\.name).joined(separator: ", ")))"))
                        continue
                    }
                    if found.value != field.value {
                        failures.append(
                            Mismatch(
                                what: "ctx.\(field.name)", expected: Self.number(field.value),
                                actual: Self.number(found.value)))
                    }
                }
            } else if observation.source == .mimic {
                failures.append(
                    Mismatch(
                        what: "ctx", expected: "context fields",
                        actual: "the program runs without an xdp_md or __sk_buff"))
            }
        }
        return failures
    }

    /// How a redirect target is written in test files: `none`, `ifindex N` (`ingress ifindex N`
    /// with `BPF_F_INGRESS`), or `MAP[KEY]`.
    public static func redirectText(_ redirect: Redirect?) -> String {
        switch redirect {
        case nil: "none"
        case .interface(let ifindex, let flags)?: flags & 1 != 0 ? "ingress ifindex \(ifindex)" : "ifindex \(ifindex)"
        case .map(let target)?: target.broadcastKeys.isEmpty ? "\(target.mapName)[\(target.key)]" : target.mapName
        }
    }

    /// A verdict with its name when the program type has one (`XDP_DROP (1)`).
    func verdictText(_ value: UInt32) -> String {
        let named: String?
        switch programType {
        case .xdp?: named = XDPAction(rawValue: value)?.name
        case .schedCls?, .schedAct?: named = TCAction(rawValue: Int32(bitPattern: value))?.name
        default: named = nil
        }
        let number = String(Int32(bitPattern: value))
        return named.map { "\($0) (\(number))" } ?? number
    }

    func check(_ expect: PacketExpectation, actual: [UInt8]?) -> [Mismatch] {
        guard let actual else {
            return [Mismatch(what: "packet", expected: "a packet", actual: "the program has no packet")]
        }
        var failures: [Mismatch] = []
        if let exact = expect.exact, exact != actual {
            let first =
                zip(exact, actual).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                ?? min(exact.count, actual.count)
            failures.append(
                Mismatch(
                    what: "packet", expected: "\(exact.count) bytes",
                    actual: "\(actual.count) bytes, first difference at offset \(first)",
                    detail: ["expected: " + ValueSyntax.hexString(exact), "actual:   " + ValueSyntax.hexString(actual)])
            )
        }
        if let length = expect.length, length != actual.count {
            failures.append(Mismatch(what: "packet length", expected: "\(length)", actual: "\(actual.count)"))
        }
        for (offset, bytes) in expect.bytes {
            let end = min(actual.count, offset + bytes.count)
            let got = offset < actual.count ? Array(actual[offset..<end]) : []
            if got != bytes {
                failures.append(
                    Mismatch(
                        what: "packet[\(offset)..<\(offset + bytes.count)]", expected: ValueSyntax.hexString(bytes),
                        actual: got.count == bytes.count
                            ? ValueSyntax.hexString(got)
                            : "\(ValueSyntax.hexString(got)) (the packet has \(actual.count) bytes)"))
            }
        }
        return failures
    }

    func check(_ expected: [EventExpectation], actual: [Observation.Event], file: String) throws(TestFileError)
        -> [Mismatch]
    {
        var failures: [Mismatch] = []
        if expected.count != actual.count {
            failures.append(
                Mismatch(
                    what: "events", expected: "\(expected.count) event(s)", actual: "\(actual.count) event(s)",
                    detail: actual.map {
                        "\($0.map): \(format(event: $0.data, type: nil) ?? ValueSyntax.hexString($0.data))"
                    }))
        }
        for (index, (wanted, event)) in zip(expected, actual).enumerated() {
            let what = "event \(index)"
            if let map = wanted.map, map != event.map {
                failures.append(Mismatch(what: "\(what) map", expected: map, actual: event.map))
                continue
            }
            let field = JSONField(wanted.value, path: "events[\(index)].value")
            do throws(JSONError) {
                if ValueSyntax.isTyped(wanted.value) {
                    guard let btf = object.btf, let id = eventType(size: event.data.count, named: wanted.type) else {
                        throw field.error(
                            wanted.type.map { "the object's BTF has no struct \($0)" }
                                ?? "no BTF struct of \(event.data.count) bytes names this event; give \"type\" or the bytes"
                        )
                    }
                    let differences = try TypedMatch(btf: btf, bytes: event.data).compare(
                        field, id: id, offset: 0, path: "")
                    let whole = btf.format(event.data, as: id)
                    for difference in differences {
                        failures.append(
                            Mismatch(
                                what: "\(what) (\(event.map)) .\(difference.path)", expected: difference.expected,
                                actual: difference.actual, detail: ["record: \(btf.typeName(id)) \(whole)"]))
                    }
                } else {
                    let bytes = try ValueSyntax.bytes(field, size: event.data.count, what: "event")
                    if bytes != event.data {
                        failures.append(
                            Mismatch(
                                what: "\(what) (\(event.map))", expected: ValueSyntax.hexString(bytes),
                                actual: ValueSyntax.hexString(event.data)))
                    }
                }
            } catch {
                throw TestFileError(file: file, error.description)
            }
        }
        return failures
    }

    /// The BTF struct an event is read as: `name` if given, else the one struct of its size
    /// whose name mentions "event" (or the only struct of that size).
    func eventType(size: Int, named name: String?) -> UInt32? {
        guard let btf = object.btf else { return nil }
        if let name { return btf.typeID(named: name, kind: .structure) }
        var candidates: [(UInt32, String)] = []
        for id in 1..<UInt32(max(1, btf.count)) {
            if case .structure(let name, let structSize, _)? = btf.type(id), Int(structSize) == size, !name.isEmpty {
                candidates.append((id, name))
            }
        }
        let preferred = candidates.filter { $0.1.lowercased().contains("event") }
        return (preferred.count == 1 ? preferred.first : (candidates.count == 1 ? candidates.first : nil))?.0
    }

    func format(event: [UInt8], type: String?) -> String? {
        guard let btf = object.btf, let id = eventType(size: event.count, named: type) else { return nil }
        return "\(btf.typeName(id)) \(btf.format(event, as: id))"
    }

    func check(_ expect: MapExpectation, observation: Observation, file: String) throws(TestFileError) -> [Mismatch] {
        let shape = try shape(expect.map, path: expect.path, file: file)
        let key: [UInt8]
        do throws(JSONError) {
            key = try ValueSyntax.bytes(
                JSONField(expect.key, path: expect.path + ".key"), size: shape.keySize, what: "key")
        } catch {
            throw TestFileError(file: file, error.description)
        }
        let keyText = format(key, type: shape.keyType, bytesOnly: shape.keyType == nil)
        let what = "map \(expect.map) [\(keyText)]"
        let found: [[UInt8]]?
        do {
            found = try observation.lookup(expect.map, key)
        } catch {
            return [Mismatch(what: what, expected: "a readable map", actual: "reading it failed: \(error)")]
        }
        guard let found, !found.isEmpty else {
            return expect.values.isEmpty
                ? []
                : [
                    Mismatch(
                        what: what, expected: expect.values.map(ValueSyntax.text).joined(separator: ", "),
                        actual: "no such key")
                ]
        }
        guard !expect.values.isEmpty else {
            return [Mismatch(what: what, expected: "no such key", actual: format(found[0], type: shape.valueType))]
        }
        // Mimic runs with the configured CPUs, which `values` must match; the kernel may have
        // more possible CPUs than the test gives: those past the list are not compared.
        if expect.perCPU,
            found.count < expect.values.count || (observation.source == .mimic && found.count != expect.values.count)
        {
            return [
                Mismatch(what: what, expected: "\(expect.values.count) per-CPU values", actual: "\(found.count) CPUs")
            ]
        }
        var failures: [Mismatch] = []
        for (index, wanted) in expect.values.enumerated() {
            let actual = found[index]
            let label = expect.perCPU ? "\(what) cpu\(index)" : what
            let path = expect.perCPU ? "\(expect.path).values[\(index)]" : "\(expect.path).value"
            let field = JSONField(wanted, path: path)
            do throws(JSONError) {
                if ValueSyntax.isTyped(wanted) {
                    guard let btf = object.btf, let type = shape.valueType else {
                        throw field.error("the map's value has no BTF type (compile with -g, or give the bytes)")
                    }
                    for difference in try TypedMatch(btf: btf, bytes: actual).compare(
                        field, id: type, offset: 0, path: "")
                    {
                        failures.append(
                            Mismatch(
                                what: "\(label) .\(difference.path)", expected: difference.expected,
                                actual: difference.actual,
                                detail: ["value: \(format(actual, type: type))"]))
                    }
                } else if let btf = object.btf, let type = shape.valueType {
                    // Compare as the type reads (so `__be32` may be written as an address).
                    for difference in try TypedMatch(btf: btf, bytes: actual).compare(
                        field, id: type, offset: 0, path: "")
                    {
                        failures.append(Mismatch(what: label, expected: difference.expected, actual: difference.actual))
                    }
                } else {
                    let bytes = try ValueSyntax.bytes(field, size: shape.valueSize, what: "value")
                    if bytes != actual {
                        failures.append(
                            Mismatch(what: label, expected: ValueSyntax.text(wanted), actual: format(actual, type: nil))
                        )
                    }
                }
            } catch {
                throw TestFileError(file: file, error.description)
            }
        }
        return failures
    }

    /// Bytes as their BTF type reads, else as a little-endian integer (1, 2, 4, 8 bytes) or hex.
    func format(_ bytes: [UInt8], type: UInt32?, bytesOnly: Bool = false) -> String {
        if let type, let btf = object.btf { return TypedMatch(btf: btf, bytes: bytes).format(bytes, id: type) }
        guard !bytesOnly, [1, 2, 4, 8].contains(bytes.count) else { return ValueSyntax.hexString(bytes) }
        var value: UInt64 = 0
        for (index, byte) in bytes.enumerated() { value |= UInt64(byte) << UInt64(index * 8) }
        return String(value)
    }

    static func number(_ value: UInt64) -> String {
        value < 10 ? "\(value)" : "\(value) (0x\(String(value, radix: 16)))"
    }

    static func lines(_ lines: [String]) -> String {
        lines.isEmpty ? "(none)" : "\(lines.count) line(s)"
    }

    /// The lines of two texts side by side: `  same`, `- expected only`, `+ actual only`.
    static func lineDiff(expected: [String], actual: [String]) -> [String] {
        var out: [String] = []
        for index in 0..<max(expected.count, actual.count) {
            let wanted = index < expected.count ? expected[index] : nil
            let got = index < actual.count ? actual[index] : nil
            if wanted == got {
                out.append("  \(wanted ?? "")")
            } else {
                if let wanted { out.append("- \(wanted)") }
                if let got { out.append("+ \(got)") }
            }
        }
        return out
    }
}
