import MimicCore
import MimicLinux

/// The contents of a set of maps at one moment: keys and every CPU's value.
struct MapSnapshot {
    /// Maps with more entries than this are left out of snapshots (and diffs).
    static let maxEntries = 65_536

    struct Contents {
        var type: MapType
        /// Keys in iteration order.
        var keys: [[UInt8]]
        var values: [[UInt8]: [[UInt8]]]
    }

    /// Map contents by name, in map order.
    var maps: [(name: String, contents: Contents)] = []

    init(maps: [any BPFMap], cpus: Int) {
        for map in maps
        where MapSnapshot.hasEntries(map.attributes.type) && map.attributes.maxEntries <= MapSnapshot.maxEntries {
            var contents = Contents(type: map.attributes.type, keys: [], values: [:])
            for key in map.keys {
                guard let values = map.perCPUValues(forKey: key) else { continue }
                contents.keys.append(key)
                contents.values[key] = values
            }
            self.maps.append((map.name, contents))
        }
    }

    /// Whether host code can list a map type's entries (not ring buffers, perf arrays, prog
    /// arrays, queues or stacks).
    static func hasEntries(_ type: MapType) -> Bool {
        ![
            MapType.ringBuffer, .userRingBuffer, .perfEventArray, .progArray, .queue, .stack, .bloomFilter,
            .stackTrace, .cgroupArray, .sockMap, .sockHash,
        ].contains(type)
    }

    static func isPerCPU(_ type: MapType) -> Bool {
        type == .perCPUHash || type == .perCPUArray || type == .lruPerCPUHash || type == .perCPUCgroupStorage
    }

    /// One entry that differs between two snapshots.
    struct Change {
        var map: String
        var type: MapType
        var key: [UInt8]
        /// nil: the entry was added (before) or deleted (after).
        var before: [[UInt8]]?
        var after: [[UInt8]]?
    }

    /// Map types whose iteration order is the order their entries were inserted or used in
    /// (hash tables, LRU lists), not a property of the keys.
    static let insertionOrdered: Set<MapType> = [.hash, .perCPUHash, .lruHash, .lruPerCPUHash, .hashOfMaps, .devMapHash]

    /// The entries of `after` that differ from `self`, map by map, each map's in its iteration
    /// order (index order for arrays) — but hash maps' (`insertionOrdered`) in the order of their
    /// key bytes: their iteration order follows the insertions, and so, with `--workers`, the
    /// threads' timing, where the report must not.
    func changes(to after: MapSnapshot) -> [Change] {
        var result: [Change] = []
        for (name, new) in after.maps {
            let old = maps.first { $0.name == name }?.contents
            let first = result.count
            for key in new.keys {
                let before = old?.values[key]
                let value = new.values[key]
                if before != value {
                    result.append(Change(map: name, type: new.type, key: key, before: before, after: value))
                }
            }
            for key in old?.keys ?? [] where new.values[key] == nil {
                result.append(Change(map: name, type: new.type, key: key, before: old?.values[key], after: nil))
            }
            if Self.insertionOrdered.contains(new.type) {
                result[first...].sort { $0.key.lexicographicallyPrecedes($1.key) }
            }
        }
        return result
    }
}

/// Formats map keys, values and events: with the object's BTF types when it has them, else as
/// integers (1, 2, 4 or 8 bytes) or hex.
struct ValueDisplay {
    let object: ObjectFile
    let cpus: Int

    /// The BTF type ids of a map's key and value (global-data maps: the section's type).
    func typeIDs(of map: String) -> (key: UInt32?, value: UInt32?) {
        if let spec = object.map(named: map) { return (spec.keyTypeID, spec.valueTypeID) }
        if let global = object.global(named: map) { return (nil, global.btfTypeID) }
        return (nil, nil)
    }

    func key(_ bytes: [UInt8], map: String) -> String {
        format(bytes, typeID: typeIDs(of: map).key)
    }

    func value(_ bytes: [UInt8], map: String) -> String {
        format(bytes, typeID: typeIDs(of: map).value)
    }

    /// A value of every CPU: one value when there is one CPU or all agree, else `{cpu0: a, cpu1: b}`.
    func values(_ values: [[UInt8]], map: String, type: MapType) -> String {
        guard MapSnapshot.isPerCPU(type), values.count > 1 else {
            return values.first.map { value($0, map: map) } ?? "?"
        }
        return "{"
            + values.enumerated().map { "cpu\($0.offset): \(value($0.element, map: map))" }.joined(separator: ", ")
            + "}"
    }

    /// Bytes as a BTF type, or as a plain integer / hex when there is no type.
    func format(_ bytes: [UInt8], typeID: UInt32?) -> String {
        if let typeID, let btf = object.btf {
            if let special = bigEndianTypedef(bytes, typeID: typeID, btf: btf) { return special }
            return btf.format(bytes, as: typeID)
        }
        return ValueDisplay.plain(bytes)
    }

    /// `__be16` / `__be32` values read in network order (a `__be32` also as an IPv4 address).
    func bigEndianTypedef(_ bytes: [UInt8], typeID: UInt32, btf: BTF) -> String? {
        guard case .typedef(let name, _)? = btf.type(typeID) else { return nil }
        switch (name, bytes.count) {
        case ("__be16", 2):
            return String(UInt16(bytes[0]) << 8 | UInt16(bytes[1]))
        case ("__be32", 4):
            return bytes.map(String.init).joined(separator: ".")
        default:
            return nil
        }
    }

    /// Little-endian integers for 1, 2, 4 and 8 bytes; hex otherwise.
    static func plain(_ bytes: [UInt8]) -> String {
        guard [1, 2, 4, 8].contains(bytes.count) else { return "[" + Hex.string(bytes) + "]" }
        var value: UInt64 = 0
        for (index, byte) in bytes.enumerated() { value |= UInt64(byte) << UInt64(index * 8) }
        return String(value)
    }

    /// An event's bytes as the one BTF struct of that size whose name mentions "event" (or the
    /// only struct of that size), else nil.
    func event(_ bytes: [UInt8]) -> String? {
        guard let btf = object.btf else { return nil }
        var candidates: [(UInt32, String)] = []
        for id in 1..<UInt32(max(1, btf.count)) {
            if case .structure(let name, let size, _)? = btf.type(id), Int(size) == bytes.count, !name.isEmpty {
                candidates.append((id, name))
            }
        }
        let preferred = candidates.filter { $0.1.lowercased().contains("event") }
        let pick = preferred.count == 1 ? preferred.first : (candidates.count == 1 ? candidates.first : nil)
        guard let (id, name) = pick else { return nil }
        return "struct \(name) " + btf.format(bytes, as: id)
    }

    /// A map change as one line: `+ key: value`, `- key: value` or `key: old -> new`.
    func describe(_ change: MapSnapshot.Change) -> String {
        let key = self.key(change.key, map: change.map)
        switch (change.before, change.after) {
        case (nil, let after?):
            return "+ [\(key)] \(values(after, map: change.map, type: change.type))"
        case (let before?, nil):
            return "- [\(key)] \(values(before, map: change.map, type: change.type))"
        case (let before?, let after?):
            return
                "  [\(key)] \(values(before, map: change.map, type: change.type)) -> \(values(after, map: change.map, type: change.type))"
        case (nil, nil):
            return "  [\(key)]"
        }
    }

    /// Map changes grouped by map, indented by `indent`.
    func describe(_ changes: [MapSnapshot.Change], indent: String = "  ") -> String {
        var out = ""
        var current: String?
        for change in changes {
            if change.map != current {
                out += "\(indent)\(change.map) (\(change.type)):\n"
                current = change.map
            }
            out += "\(indent)  \(describe(change))\n"
        }
        return out
    }

    /// A map change for `--json`.
    func json(_ change: MapSnapshot.Change) -> JSONOutput {
        func side(_ values: [[UInt8]]?) -> JSONOutput {
            guard let values else { return .null }
            if MapSnapshot.isPerCPU(change.type) {
                return .array(values.map { .string(Hex.string($0)) })
            }
            return .string(Hex.string(values.first ?? []))
        }
        return .object([
            ("map", .string(change.map)),
            ("key", .string(Hex.string(change.key))),
            ("key_formatted", .string(key(change.key, map: change.map))),
            ("before", side(change.before)),
            ("after", side(change.after)),
            (
                "before_formatted",
                change.before.map { .string(values($0, map: change.map, type: change.type)) } ?? .null
            ),
            ("after_formatted", change.after.map { .string(values($0, map: change.map, type: change.type)) } ?? .null),
        ])
    }

    /// An event as text: `events: struct exec_event { ... }` or hex.
    func describe(_ event: Session.Event) -> String {
        let source = event.map + (event.cpu.map { " (cpu \($0))" } ?? "")
        if let formatted = self.event(event.data) { return "\(source): \(formatted)" }
        return "\(source): \(event.data.count) bytes: \(Hex.string(event.data))"
    }

    func json(_ event: Session.Event) -> JSONOutput {
        var members: [(String, JSONOutput)] = [("map", .string(event.map))]
        if let cpu = event.cpu { members.append(("cpu", .integer(Int64(cpu)))) }
        members.append(("data", .string(Hex.string(event.data))))
        if let formatted = self.event(event.data) { members.append(("formatted", .string(formatted))) }
        return .object(members)
    }
}

/// Hex dumps of memory and packets: 16 bytes a row, with the address or offset and ASCII.
enum HexDump {
    static func lines(_ bytes: [UInt8], start: UInt64 = 0, addressWidth: Int = 4) -> [String] {
        var lines: [String] = []
        var offset = 0
        while offset < bytes.count {
            let row = Array(bytes[offset..<min(offset + 16, bytes.count)])
            let address = String(start &+ UInt64(offset), radix: 16)
            var line = String(repeating: "0", count: max(0, addressWidth - address.count)) + address + "  "
            let hex = Hex.string(row)
            line += hex + String(repeating: " ", count: max(0, 47 - hex.count)) + "  "
            line += String(row.map { $0 >= 0x20 && $0 < 0x7F ? Character(UnicodeScalar($0)) : "." })
            lines.append(line)
            offset += 16
        }
        return lines
    }
}
