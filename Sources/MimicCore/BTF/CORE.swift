/// Computes CO-RE (compile once, run everywhere) relocation values: what an instruction's
/// immediate or offset must become so the program's view of a type matches the target's.
///
/// Field relocations follow the access string (`0:2:1`: element 0 of the root, member 2, then
/// member 1) through the object's own (`local`) BTF, take the member names on the way, and
/// find the same path by name in a target type with the same essential name (the name without
/// a `___flavor` suffix). Anonymous members are searched through, as libbpf does.
public struct CORERelocator: Sendable {
    public let local: BTF
    public let target: BTF
    /// Byte order of the target, for bitfield shifts.
    public let bigEndian: Bool

    public init(local: BTF, target: BTF, bigEndian: Bool = false) {
        self.local = local
        self.target = target
        self.bigEndian = bigEndian
    }

    /// The result of resolving one relocation.
    public enum Outcome: Sendable, Equatable {
        /// The value to patch in.
        case value(UInt64)
        /// The field, type or enumerator does not exist in the target and the kind needs it.
        case missing(String)
        /// The relocation cannot be computed here (malformed or unsupported).
        case unsupported(String)
    }

    /// A field found by walking an access path: its bit offset from the root and its member.
    struct FieldLocation {
        var bitOffset: Int
        var typeID: UInt32
        var bitfieldSize: Int
    }

    public func resolve(_ relocation: BTFExt.CORERelocation) -> Outcome {
        let indices = relocation.accessString.split(separator: ":").map { Int($0) }
        guard !indices.isEmpty, !indices.contains(where: { $0 == nil || $0! < 0 }) else {
            return .unsupported("malformed access string '\(relocation.accessString)'")
        }
        let access = indices.compactMap { $0 }
        let localRoot = relocation.typeID
        guard local.type(localRoot) != nil else {
            return .unsupported("type id \(localRoot) is not in the object's BTF")
        }
        let candidates = targetCandidates(for: localRoot)

        switch relocation.kind {
        case .typeIDLocal:
            return .value(UInt64(localRoot))
        case .typeIDTarget:
            guard let id = candidates.first else {
                return .missing("no type named \(local.typeName(localRoot)) in the target")
            }
            return .value(UInt64(id))
        case .typeExists, .typeMatches:
            return .value(candidates.isEmpty ? 0 : 1)
        case .typeSize:
            guard let id = candidates.first else {
                return .missing("no type named \(local.typeName(localRoot)) in the target")
            }
            guard let size = target.size(of: id) else { return .unsupported("target type \(id) has no size") }
            return .value(UInt64(size))
        case .enumValueExists, .enumValue:
            guard case .enumeration(_, _, let values, _, _)? = local.type(local.resolve(localRoot)),
                let index = access.first, index < values.count
            else {
                return .unsupported("access string does not name an enumerator of \(local.typeName(localRoot))")
            }
            let name = values[index].name
            for id in candidates {
                if case .enumeration(_, _, let targetValues, _, _)? = target.type(target.resolve(id)),
                    let found = targetValues.first(where: { $0.name == name })
                {
                    return .value(relocation.kind == .enumValueExists ? 1 : found.value)
                }
            }
            return relocation.kind == .enumValueExists ? .value(0) : .missing("enumerator \(name) is not in the target")
        case .fieldByteOffset, .fieldByteSize, .fieldExists, .fieldSigned, .fieldLeftShift64, .fieldRightShift64:
            guard let (_, names) = walkLocal(localRoot, access) else {
                return .unsupported(
                    "access string '\(relocation.accessString)' does not fit \(local.typeName(localRoot))")
            }
            var found: FieldLocation?
            for id in candidates {
                if let location = walkTarget(id, access, names) {
                    found = location
                    break
                }
            }
            guard let field = found else {
                return relocation.kind == .fieldExists
                    ? .value(0) : .missing("the field is not in the target's \(local.typeName(localRoot))")
            }
            return fieldValue(relocation.kind, field)
        }
    }

    /// Target types with the local root's essential name and a compatible kind.
    func targetCandidates(for localID: UInt32) -> [UInt32] {
        guard let info = local.type(localID) else { return [] }
        let name = CORERelocator.essentialName(info.name)
        guard !name.isEmpty else {
            // Anonymous root: only meaningful when both sides are the same BTF.
            return local.types.count == target.types.count ? [localID] : []
        }
        let wanted = CORERelocator.compatibilityClass(info.kind)
        // Through the target's name index: a kernel BTF has some 100,000 types.
        return target.typeIDs(essentialName: name).filter { id in
            target.type(id).map { CORERelocator.compatibilityClass($0.kind) == wanted } ?? false
        }
    }

    static func compatibilityClass(_ kind: BTF.Kind) -> Int {
        switch kind {
        case .structure, .union: 1
        case .enumeration, .enumeration64: 2
        case .forward: 1
        default: Int(kind.rawValue) + 10
        }
    }

    /// `task_struct___v2` → `task_struct`: the name up to a `___` flavor separator.
    public static func essentialName(_ name: String) -> String {
        let chars = Array(name.utf8)
        var i = chars.count - 4
        while i >= 1 {
            if chars[i] == 0x5F, chars[i + 1] == 0x5F, chars[i + 2] == 0x5F, chars[i - 1] != 0x5F, chars[i + 3] != 0x5F
            {
                return String(decoding: chars[..<i], as: UTF8.self)
            }
            i -= 1
        }
        return name
    }

    /// Walks the access path in the local BTF; returns the location and each step's member name
    /// (nil for array steps).
    func walkLocal(_ root: UInt32, _ access: [Int]) -> (FieldLocation, [String?])? {
        var current = local.resolve(root)
        guard let rootSize = local.size(of: current), var bitOffset = Self.bits(access[0], rootSize) else { return nil }
        var bitfield = 0
        var names: [String?] = [nil]
        for index in access.dropFirst() {
            switch local.type(current) {
            case .structure(_, _, let members)?, .union(_, _, let members)?:
                guard index < members.count else { return nil }
                let member = members[index]
                guard case (let sum, false) = bitOffset.addingReportingOverflow(Int(member.bitOffset)) else {
                    return nil
                }
                bitOffset = sum
                bitfield = Int(member.bitfieldSize)
                names.append(member.name)
                current = local.resolve(member.type)
            case .array(let element, _, _)?:
                guard let size = local.size(of: element), let bits = Self.bits(index, size),
                    case (let sum, false) = bitOffset.addingReportingOverflow(bits)
                else { return nil }
                bitOffset = sum
                bitfield = 0
                names.append(nil)
                current = local.resolve(element)
            default:
                return nil
            }
        }
        return (FieldLocation(bitOffset: bitOffset, typeID: current, bitfieldSize: bitfield), names)
    }

    /// Follows the same path by member names in the target, starting at `root`.
    func walkTarget(_ root: UInt32, _ access: [Int], _ names: [String?]) -> FieldLocation? {
        var current = target.resolve(root)
        guard let rootSize = target.size(of: current), let rootBits = Self.bits(access[0], rootSize) else { return nil }
        var location = FieldLocation(bitOffset: rootBits, typeID: current, bitfieldSize: 0)
        for (step, index) in access.enumerated().dropFirst() {
            // An anonymous member is no step of its own, as in libbpf's high-level spec: the
            // next named member is searched for through the target's anonymous members.
            if names[step] == "", step < access.count - 1 { continue }
            if let name = names[step] {
                var searched: Set<UInt32> = []
                guard let (offset, member) = findMember(named: name, in: current, depth: 0, searched: &searched) else {
                    return nil
                }
                guard case (let sum, false) = location.bitOffset.addingReportingOverflow(offset) else { return nil }
                location.bitOffset = sum
                location.bitfieldSize = Int(member.bitfieldSize)
                current = target.resolve(member.type)
            } else {
                guard case .array(let element, _, _)? = target.type(current), let size = target.size(of: element),
                    let bits = Self.bits(index, size),
                    case (let sum, false) = location.bitOffset.addingReportingOverflow(bits)
                else { return nil }
                location.bitOffset = sum
                location.bitfieldSize = 0
                current = target.resolve(element)
            }
        }
        location.typeID = current
        return location
    }

    /// `index * size * 8` (an access path step in bits), nil when it overflows.
    static func bits(_ index: Int, _ size: Int) -> Int? {
        let (bytes, overflow1) = index.multipliedReportingOverflow(by: size)
        let (bits, overflow2) = bytes.multipliedReportingOverflow(by: 8)
        return overflow1 || overflow2 ? nil : bits
    }

    /// A member by name, looking inside anonymous struct/union members; returns its bit offset.
    /// `searched` holds the types already searched in vain, so each type is searched once
    /// (structs sharing anonymous members cost no more than their definitions).
    func findMember(named name: String, in typeID: UInt32, depth: Int, searched: inout Set<UInt32>) -> (
        Int, BTF.Member
    )? {
        guard depth < 16, searched.insert(typeID).inserted else { return nil }
        let members = target.type(typeID)?.members ?? []
        for member in members where member.name == name { return (Int(member.bitOffset), member) }
        for member in members where member.name.isEmpty {
            if let (offset, found) = findMember(
                named: name, in: target.resolve(member.type), depth: depth + 1, searched: &searched)
            {
                return (Int(member.bitOffset) + offset, found)
            }
        }
        return nil
    }

    func fieldValue(_ kind: CORERelocationKind, _ field: FieldLocation) -> Outcome {
        guard let typeSize = target.size(of: field.typeID) else { return .unsupported("the field's type has no size") }
        var bitSize = field.bitfieldSize
        var signed = false
        switch target.type(field.typeID) {
        case .int(_, _, let encoding, let intOffset, let bits)?:
            signed = encoding.contains(.signed)
            if bitSize == 0 && Int(bits) != typeSize * 8 { bitSize = Int(bits) }
            if intOffset != 0 { return .unsupported("BTF_INT_OFFSET bitfields") }
        case .enumeration(_, _, _, let isSigned, _)?:
            signed = isSigned
        default:
            break
        }
        let isBitfield = bitSize != 0
        // The load that covers the field (libbpf widens it until the bitfield fits).
        var byteSize = typeSize
        var byteOffset = field.bitOffset / 8
        if isBitfield {
            guard byteSize > 0 else { return .unsupported("zero-sized bitfield type") }
            byteOffset = field.bitOffset / 8 / byteSize * byteSize
            while field.bitOffset + bitSize - byteOffset * 8 > byteSize * 8 {
                guard byteSize < 8 else { return .unsupported("bitfield spans more than 8 bytes") }
                byteSize *= 2
                byteOffset = field.bitOffset / 8 / byteSize * byteSize
            }
        } else {
            bitSize = typeSize * 8
        }
        switch kind {
        case .fieldByteOffset: return .value(UInt64(byteOffset))
        case .fieldByteSize: return .value(UInt64(byteSize))
        case .fieldExists: return .value(1)
        case .fieldSigned: return .value(signed ? 1 : 0)
        case .fieldLeftShift64 where bitSize > 64, .fieldRightShift64 where bitSize > 64:
            // Shifts describe how to extract the field from a u64; a wider field (a struct or
            // array member) has no such shift (libbpf's `64 - bit_sz` would wrap).
            return .unsupported("a shift relocation on a field of \(bitSize) bits (wider than 64)")
        case .fieldLeftShift64:
            let shift =
                bigEndian
                ? (field.bitOffset - byteOffset * 8) + (64 - byteSize * 8)
                : 64 - (field.bitOffset + bitSize - byteOffset * 8)
            return .value(UInt64(max(0, shift)))
        case .fieldRightShift64: return .value(UInt64(64 - bitSize))
        default: return .unsupported("not a field relocation")
        }
    }

    /// Writes `value` into the instruction at `pc` the way the kernel's CO-RE patching does: the
    /// `imm` of an ALU instruction with an immediate, the `off` of a load or store, or both
    /// immediates of an `lddw`. Returns a problem description, or nil on success.
    static func patch(_ code: inout [RawInstruction], at pc: Int, value: UInt64) -> String? {
        guard pc >= 0, pc < code.count else { return "instruction index out of range" }
        let instruction = code[pc]
        let instructionClass = instruction.opcode & 0x07
        switch instructionClass {
        case 0x04 where instruction.opcode & 0x08 == 0, 0x07 where instruction.opcode & 0x08 == 0:
            guard value <= UInt64(UInt32.max) || Int64(bitPattern: value) >= Int64(Int32.min) else {
                return "value \(value) does not fit in imm"
            }
            code[pc].imm = Int32(truncatingIfNeeded: value)
        case 0x01, 0x02, 0x03:
            guard value <= UInt64(Int16.max) else { return "offset \(value) does not fit in a 16-bit field" }
            code[pc].offset = Int16(value)
        case 0x00 where instruction.opcode == 0x18 && pc + 1 < code.count:
            code[pc].imm = Int32(truncatingIfNeeded: value)
            code[pc + 1].imm = Int32(truncatingIfNeeded: value >> 32)
        default:
            return "instruction opcode 0x\(String(instruction.opcode, radix: 16)) cannot take a CO-RE value"
        }
        return nil
    }
}
