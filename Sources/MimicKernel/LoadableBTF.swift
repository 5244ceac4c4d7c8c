import MimicCore

/// An object's `.BTF` made loadable by `BPF_BTF_LOAD`, with the fixups libbpf makes before it
/// loads an object's BTF (`bpf_object__collect_externs`, `btf_fixup_datasec`), which the kernel
/// needs where clang leaves them to the loader:
///
/// - `.ksyms`: an extern function (a kfunc) has `BTF_FUNC_EXTERN` linkage, which the kernel
///   refuses in a `FUNC`, and a `DATASEC` may hold only `VAR`s. Each kfunc becomes global, its
///   unnamed parameters take the name of a `dummy_ksym` variable appended for the purpose, and
///   its section entry points at that variable; a `__ksym` variable becomes an allocated `int`.
///   Each entry gets 4 bytes, in order.
/// - `.kconfig`: the section as `KernelObject` creates it — its variables at the offsets of the
///   resolved section (`GlobalDataSpec.variables`), allocated.
/// - Every other `DATASEC` clang left at size 0: the ELF section's size, and each global
///   variable at its symbol's value.
/// - Every `DATASEC`'s entries sorted by offset.
///
/// Type ids are kept (new types are appended), so the ids the object's instructions and map
/// definitions name stay valid. Little-endian objects only (`KernelObject` refuses others).
struct LoadableBTF {
    /// The BTF, ready for `BPF_BTF_LOAD`.
    let bytes: [UInt8]

    /// One type: its three header words and the words after it (members, parameters, ...).
    private struct RawType {
        var nameOffset: UInt32
        var info: UInt32
        var sizeOrType: UInt32
        var extra: [UInt32]

        var kind: UInt32 { (info >> 24) & 0x1F }
        var vlen: Int { Int(info & 0xFFFF) }
    }

    // BTF kinds and linkages (include/uapi/linux/btf.h).
    private static let kindInt: UInt32 = 1, kindFunc: UInt32 = 12, kindFuncProto: UInt32 = 13
    private static let kindVar: UInt32 = 14, kindDatasec: UInt32 = 15
    private static let funcGlobal: UInt32 = 1, varGlobalAllocated: UInt32 = 1, varStatic: UInt32 = 0
    private static let varGlobalExtern: UInt32 = 2

    /// The object's BTF with the fixups, or nil when the object has no `.BTF`.
    init?(object: ObjectFile) throws(KernelError) {
        guard let section = object.elf.section(named: ".BTF") else { return nil }
        try self.init(btf: object.elf.contents(of: section), of: object)
    }

    /// `raw`, the bytes of `object`'s `.BTF`, with the fixups (the object gives the sections'
    /// sizes, the symbols and the resolved `.kconfig`). Damaged BTF is an error naming the fault.
    init(btf raw: [UInt8], of object: ObjectFile) throws(KernelError) {
        func fail(_ what: String) -> KernelError {
            KernelError.invalidArgument("the object's .BTF cannot be made loadable: \(what)")
        }
        func word(_ offset: Int) -> UInt32? {
            guard offset >= 0, offset + 4 <= raw.count else { return nil }
            return UInt32(raw[offset]) | UInt32(raw[offset + 1]) << 8 | UInt32(raw[offset + 2]) << 16
                | UInt32(raw[offset + 3]) << 24
        }
        guard raw.count >= 24, raw[0] == 0x9F, raw[1] == 0xEB, let headerLength = word(4).map(Int.init),
            let typeOffset = word(8).map(Int.init), let typeLength = word(12).map(Int.init),
            let stringOffset = word(16).map(Int.init), let stringLength = word(20).map(Int.init),
            headerLength >= 24, headerLength <= raw.count
        else { throw fail("no little-endian BTF header") }
        let typesStart = headerLength + typeOffset
        let stringsStart = headerLength + stringOffset
        guard typesStart >= headerLength, typeLength >= 0, typesStart + typeLength <= raw.count,
            stringsStart >= headerLength, stringLength >= 0, stringsStart + stringLength <= raw.count
        else { throw fail("its type or string section lies outside it") }
        var strings = Array(raw[stringsStart..<(stringsStart + stringLength)])

        // The types, id 1 first (id 0 is void).
        var types: [RawType] = [RawType(nameOffset: 0, info: 0, sizeOrType: 0, extra: [])]
        var offset = typesStart
        let typesEnd = typesStart + typeLength
        while offset < typesEnd {
            guard offset + 12 <= typesEnd, let nameOffset = word(offset), let info = word(offset + 4),
                let sizeOrType = word(offset + 8)
            else {
                throw fail("type \(types.count) is cut off")
            }
            var type = RawType(nameOffset: nameOffset, info: info, sizeOrType: sizeOrType, extra: [])
            let extraWords: Int
            switch type.kind {
            case 1, 14, 17: extraWords = 1 // INT, VAR, DECL_TAG
            case 3: extraWords = 3 // ARRAY
            case 4, 5, 15, 19: extraWords = 3 * type.vlen // STRUCT, UNION, DATASEC, ENUM64
            case 6, 13: extraWords = 2 * type.vlen // ENUM, FUNC_PROTO
            case 2, 7, 8, 9, 10, 11, 12, 16, 18: extraWords = 0
            default: throw fail("type \(types.count) has kind \(type.kind), which Mimic does not know")
            }
            offset += 12
            for index in 0..<extraWords {
                guard offset + 4 * index + 4 <= typesEnd, let value = word(offset + 4 * index) else {
                    throw fail("type \(types.count) is cut off")
                }
                type.extra.append(value)
            }
            offset += 4 * extraWords
            types.append(type)
        }

        func name(_ type: RawType) -> String {
            let start = Int(type.nameOffset)
            guard start < strings.count else { return "" }
            return String(decoding: strings[start...].prefix { $0 != 0 }, as: UTF8.self)
        }
        func addString(_ text: String) -> UInt32 {
            let offset = UInt32(strings.count)
            strings += Array(text.utf8) + [0]
            return offset
        }
        func intTypeID() -> UInt32 {
            if let id = types.indices.first(where: { types[$0].kind == Self.kindInt && types[$0].sizeOrType == 4 }) {
                return UInt32(id)
            }
            types.append(
                RawType(
                    nameOffset: addString("int"), info: Self.kindInt << 24, sizeOrType: 4,
                    extra: [1 << 24 | 32])) // BTF_INT_SIGNED, 32 bits
            return UInt32(types.count - 1)
        }

        for id in types.indices where types[id].kind == Self.kindDatasec {
            let section = name(types[id])
            let entries = types[id].vlen
            func entryType(_ index: Int) -> Int { Int(types[id].extra[3 * index]) }
            for index in 0..<entries where entryType(index) >= types.count {
                throw fail("section \(section) names type \(entryType(index)), which does not exist")
            }
            switch section {
            case ".ksyms":
                var dummy: (id: UInt32, nameOffset: UInt32)?
                if (0..<entries).contains(where: { types[entryType($0)].kind == Self.kindFunc }) {
                    let int = intTypeID()
                    let nameOffset = addString("dummy_ksym")
                    types.append(
                        RawType(
                            nameOffset: nameOffset, info: Self.kindVar << 24, sizeOrType: int,
                            extra: [Self.varGlobalAllocated]))
                    dummy = (UInt32(types.count - 1), nameOffset)
                }
                for index in 0..<entries {
                    let target = entryType(index)
                    if types[target].kind == Self.kindFunc, let dummy {
                        let proto = Int(types[target].sizeOrType)
                        if proto < types.count, types[proto].kind == Self.kindFuncProto {
                            for parameter in 0..<types[proto].vlen
                            where types[proto].extra[2 * parameter + 1] != 0 && types[proto].extra[2 * parameter] == 0 {
                                types[proto].extra[2 * parameter] = dummy.nameOffset
                            }
                        }
                        types[target].info = (types[target].info & ~0xFFFF) | Self.funcGlobal
                        types[id].extra[3 * index] = dummy.id
                    } else if types[target].kind == Self.kindVar {
                        let int = intTypeID()
                        types[target].extra[0] = Self.varGlobalAllocated
                        types[target].sizeOrType = int
                    }
                    types[id].extra[3 * index + 1] = UInt32(4 * index)
                    types[id].extra[3 * index + 2] = 4
                }
                types[id].sizeOrType = UInt32(4 * entries)
            case ObjectExtern.kconfigSection:
                guard let global = object.globals.first(where: { $0.name == section }) else { break }
                guard let size = UInt32(exactly: global.size) else { throw fail("section \(section) is too large") }
                types[id].sizeOrType = size
                for index in 0..<entries {
                    let variable = entryType(index)
                    guard types[variable].kind == Self.kindVar,
                        let placed = global.variables.first(where: { $0.name == name(types[variable]) }),
                        let placedOffset = UInt32(exactly: placed.offset)
                    else { continue }
                    types[variable].extra[0] = Self.varGlobalAllocated
                    types[id].extra[3 * index + 1] = placedOffset
                }
            default:
                guard types[id].sizeOrType == 0 else { break }
                guard let elfSection = object.elf.section(named: section), elfSection.size > 0,
                    elfSection.size <= UInt64(UInt32.max)
                else { throw fail("section \(section) has no size in the ELF file") }
                types[id].sizeOrType = UInt32(elfSection.size)
                for index in 0..<entries {
                    let variable = entryType(index)
                    guard types[variable].kind == Self.kindVar else {
                        throw fail("section \(section) holds type \(variable), which is not a variable")
                    }
                    let linkage = types[variable].extra[0]
                    if linkage == Self.varStatic || linkage == Self.varGlobalExtern { continue }
                    let variableName = name(types[variable])
                    guard
                        let symbol = object.elf.symbols.first(where: {
                            $0.name == variableName && Int($0.sectionIndex) == elfSection.index
                        }), symbol.value <= UInt64(UInt32.max)
                    else { throw fail("no ELF symbol for variable \(variableName) of section \(section)") }
                    types[id].extra[3 * index + 1] = UInt32(symbol.value)
                }
            }
            // Entries in offset order, as the kernel requires.
            let sorted = (0..<entries).map { Array(types[id].extra[(3 * $0)..<(3 * $0 + 3)]) }
                .sorted { $0[1] < $1[1] }
            types[id].extra = sorted.flatMap { $0 }
        }

        let typeBytes = types.dropFirst().flatMap { type in
            ([type.nameOffset, type.info, type.sizeOrType] + type.extra).flatMap(KernelObject.u32)
        }
        // The header with the sections laid out again: types right after it, strings after them.
        let header =
            Array(raw[0..<4]) + KernelObject.u32(24) + KernelObject.u32(0)
            + [typeBytes.count, typeBytes.count, strings.count].flatMap { KernelObject.u32(UInt32($0)) }
        bytes = header + typeBytes + strings
    }
}
