import Foundation
import Testing
@testable import MimicCore

/// Edits the fields of an ELF image in its own byte order.
struct ELFImage {
    var bytes: [UInt8]
    var bigEndian: Bool { bytes.count > 5 && bytes[5] == 2 }

    func read(_ offset: Int, _ width: Int) -> UInt64 {
        guard offset >= 0, offset + width <= bytes.count else { return 0 }
        var value: UInt64 = 0
        for i in 0..<width {
            let byte = UInt64(bytes[offset + i])
            value |= bigEndian ? byte << (8 * UInt64(width - 1 - i)) : byte << (8 * UInt64(i))
        }
        return value
    }

    func writing(_ offset: Int, _ width: Int, _ value: UInt64) -> [UInt8] {
        var copy = bytes
        guard offset >= 0, offset + width <= copy.count else { return copy }
        for i in 0..<width {
            let shift = bigEndian ? 8 * UInt64(width - 1 - i) : 8 * UInt64(i)
            copy[offset + i] = UInt8(truncatingIfNeeded: value >> shift)
        }
        return copy
    }

    var sectionHeaderOffset: Int { Int(read(40, 8)) }
    var sectionCount: Int { Int(read(60, 2)) }
    func sectionHeader(_ index: Int) -> Int { sectionHeaderOffset + index * 64 }
    func sectionOffset(_ index: Int) -> Int { Int(read(sectionHeader(index) + 24, 8)) }
    func sectionSize(_ index: Int) -> Int { Int(read(sectionHeader(index) + 32, 8)) }
    func sectionType(_ index: Int) -> UInt32 { UInt32(read(sectionHeader(index) + 4, 4)) }
}

/// A malformed-input corpus generated from the good fixtures: every case must throw an
/// `ObjectFileError` or parse into something the rest of the API handles without trapping.
@Suite struct ObjectFileMalformedTests {
    /// Parses `bytes`; on success, exercises the views and the loader. Returns whether it threw.
    @discardableResult
    static func exercise(_ bytes: [UInt8]) -> Bool {
        do {
            let object = try ObjectFile(bytes: bytes)
            _ = object.inspectionReport()
            let vm = VM(emulator: FixtureEmulator(object))
            for program in object.programs {
                _ = program.annotatedListing()
                _ = try? vm.load(program.instructions, name: program.name)
            }
            if let btf = object.btf {
                for map in object.maps {
                    if let id = map.valueTypeID { _ = btf.format([UInt8](repeating: 0x41, count: 16), as: id) }
                }
                for id in 0..<min(btf.count, 200) {
                    _ = btf.typeName(UInt32(id))
                    _ = btf.size(of: UInt32(id))
                }
            }
            return false
        } catch {
            // Every error explains itself (checked here without the cost of an expectation each).
            return !error.description.isEmpty
        }
    }

    @Test(arguments: Fixtures.names) func truncatedFilesAreRejected(name: String) throws {
        let image = ELFImage(bytes: try Fixtures.bytes(name))
        var lengths = Set(stride(from: 0, to: image.sectionHeaderOffset, by: 7))
        lengths.formUnion(0...64)
        for index in 0..<image.sectionCount {
            let header = image.sectionHeader(index)
            lengths.formUnion([header, header + 1, header + 32, header + 63])
            lengths.formUnion([image.sectionOffset(index), image.sectionOffset(index) + image.sectionSize(index) - 1])
        }
        lengths.insert(image.bytes.count - 1)
        var parsed: [Int] = []
        for length in lengths.sorted() where length >= 0 && length < image.bytes.count {
            if !Self.exercise(Array(image.bytes.prefix(length))) { parsed.append(length) }
        }
        #expect(parsed.isEmpty, "\(name) truncated to these lengths parsed: \(parsed)")
    }

    @Test(arguments: Fixtures.names) func corruptedFieldsNeverCrash(name: String) throws {
        let image = ELFImage(bytes: try Fixtures.bytes(name))
        let size = UInt64(image.bytes.count)
        var cases: [[UInt8]] = []
        // ELF header.
        for value: UInt64 in [0, 1, size, size - 10, .max, UInt64(image.sectionHeaderOffset + 1)] {
            cases.append(image.writing(40, 8, value))
        }
        for value: UInt64 in [0, 1, 2, 0xFFFF, UInt64(image.sectionCount + 1)] {
            cases.append(image.writing(60, 2, value))
        }
        for value: UInt64 in [0, 1, 0xFFFF, UInt64(image.sectionCount)] { cases.append(image.writing(62, 2, value)) }
        for value: UInt64 in [0, 63, 128] { cases.append(image.writing(58, 2, value)) }
        cases.append(image.writing(18, 2, 62)) // e_machine x86-64
        cases.append(image.writing(16, 2, 2)) // e_type ET_EXEC
        cases.append(image.writing(4, 1, 1)) // ELFCLASS32
        cases.append(image.writing(5, 1, 3)) // bad EI_DATA
        cases.append(image.writing(0, 1, 0)) // bad magic

        // Section headers.
        for index in 1..<image.sectionCount {
            let header = image.sectionHeader(index)
            let offset = UInt64(image.sectionOffset(index))
            let length = UInt64(image.sectionSize(index))
            for value in [size, .max, 0, offset + 1, size - 1] { cases.append(image.writing(header + 24, 8, value)) } // sh_offset
            for value in [.max, size, length + 1, 0, length &- 1] { cases.append(image.writing(header + 32, 8, value)) } // sh_size
            for value: UInt64 in [0xFFFF_FFFF, 0x7FFF] { cases.append(image.writing(header, 4, value)) } // sh_name
            for value: UInt64 in [0xFFFF, UInt64(index), 0] { cases.append(image.writing(header + 40, 4, value)) } // sh_link
            for value: UInt64 in [0xFFFF, 0, UInt64(index)] { cases.append(image.writing(header + 44, 4, value)) } // sh_info
            for value: UInt64 in [1, 23, 0] { cases.append(image.writing(header + 56, 8, value)) } // sh_entsize
            for value: UInt64 in [8, 2, 9, 4] { cases.append(image.writing(header + 4, 4, value)) } // sh_type
            cases.append(image.writing(header + 8, 8, 6)) // sh_flags: executable
        }

        // Symbols and relocations.
        for index in 1..<image.sectionCount {
            let type = image.sectionType(index)
            let start = image.sectionOffset(index)
            let length = image.sectionSize(index)
            if type == 2 {
                for symbol in stride(from: start + 24, to: start + length, by: 24) {
                    cases.append(image.writing(symbol, 4, 0xFFFF_FFF0)) // st_name
                    cases.append(image.writing(symbol + 6, 2, 0xFEFF)) // st_shndx
                    cases.append(image.writing(symbol + 8, 8, .max - 7)) // st_value
                    cases.append(image.writing(symbol + 16, 8, .max - 7)) // st_size
                    cases.append(image.writing(symbol + 4, 1, 0x12)) // st_info: global function
                    cases.append(image.writing(symbol + 8, 8, 3)) // misaligned st_value
                }
            } else if type == 9 {
                for relocation in stride(from: start, to: start + length, by: 16) {
                    cases.append(image.writing(relocation, 8, .max - 7)) // r_offset
                    cases.append(image.writing(relocation, 8, 4)) // r_offset, misaligned
                    cases.append(image.writing(relocation + 8, 8, 0xFFFF_FF00_0000_0001)) // r_info symbol
                    cases.append(image.writing(relocation + 8, 8, image.read(relocation + 8, 8) & ~0xFFFF_FFFF | 99)) // type
                    cases.append(image.writing(relocation + 8, 8, image.read(relocation + 8, 8) & ~0xFFFF_FFFF | 10)) // as a call
                    cases.append(
                        image.writing(relocation + 8, 8, image.read(relocation + 8, 8) & 0xFFFF_FFFF | 1 << 32)) // symbol 1
                }
            }
        }

        // BTF and BTF.ext: header lengths, then every word of the body.
        let names = ByteNames(image: image)
        for (sectionName, index) in names.sections where sectionName == ".BTF" || sectionName == ".BTF.ext" {
            let start = image.sectionOffset(index)
            let length = image.sectionSize(index)
            for field in stride(from: 4, to: 32, by: 4) {
                let original = image.read(start + field, 4)
                for value in [0, 0xFFFF_FFFF, original + 1, original &- 1, 8] {
                    cases.append(image.writing(start + field, 4, value))
                }
            }
            _ = length
        }
        // Every BTF type record: its name, its info word (kind, vlen) and its size/type word.
        if let btfIndex = names.sections.first(where: { $0.0 == ".BTF" })?.1,
            let btf = try? ObjectFile(bytes: image.bytes).btf
        {
            let start = image.sectionOffset(btfIndex)
            let header = Int(image.read(start + 4, 4))
            var record = start + header + Int(image.read(start + 8, 4))
            for (id, type) in btf.types.enumerated().dropFirst() {
                cases.append(image.writing(record, 4, 0xFFFF_FFF0)) // name_off
                cases.append(image.writing(record + 4, 4, image.read(record + 4, 4) | 0xFFFF)) // vlen 65535
                cases.append(image.writing(record + 4, 4, 0x1F00_0000)) // unknown kind
                cases.append(image.writing(record + 4, 4, 0x0400_FFFF)) // a struct with 65535 members
                cases.append(image.writing(record + 8, 4, 0xFFFF_FFFF)) // size / type
                cases.append(image.writing(record + 8, 4, UInt64(id))) // refers to itself: a cycle
                record += Self.recordLength(type)
            }
        }

        // Deterministic random byte flips over the whole file.
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(name.utf8.count)
        for _ in 0..<200 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let position = Int((seed >> 33) % size)
            var copy = image.bytes
            copy[position] ^= UInt8(truncatingIfNeeded: seed >> 20) | 1
            cases.append(copy)
        }

        var rejected = 0
        for bytes in cases where Self.exercise(bytes) { rejected += 1 }
        #expect(rejected > 0)
    }

    /// The bytes a BTF type record takes (`struct btf_type` and what follows it).
    static func recordLength(_ type: BTF.TypeInfo) -> Int {
        switch type {
        case .int, .variable, .declTag: 16
        case .array: 24
        case .structure(_, _, let members), .union(_, _, let members): 12 + 12 * members.count
        case .enumeration(_, _, let values, _, let is64): 12 + (is64 ? 12 : 8) * values.count
        case .functionProto(_, let parameters): 12 + 8 * parameters.count
        case .dataSection(_, _, let variables): 12 + 12 * variables.count
        default: 12
        }
    }

    // MARK: Specific errors

    @Test func specificErrorsNameTheField() throws {
        let good = try Fixtures.bytes("socket_filter")
        let image = ELFImage(bytes: good)
        #expect(throws: ObjectFileError.notELF) { try ObjectFile(bytes: [0x7F, 0x45, 0x4C, 0x47] + good.dropFirst(4)) }
        #expect(throws: ObjectFileError.wrongMachine(62)) { try ObjectFile(bytes: image.writing(18, 2, 62)) }
        #expect(throws: ObjectFileError.wrongFileType(2)) { try ObjectFile(bytes: image.writing(16, 2, 2)) }
        #expect(throws: ObjectFileError.unsupportedClass(1)) { try ObjectFile(bytes: image.writing(4, 1, 1)) }
        do {
            _ = try ObjectFile(bytes: Array(good.prefix(40)))
            Issue.record("a 40-byte file parsed")
        } catch {
            #expect(error.description.contains("ELF header"))
        }
        do {
            _ = try ObjectFile(bytes: image.writing(60, 2, 0xFFFF))
            Issue.record("e_shnum 65535 parsed")
        } catch {
            #expect(error.description.contains("e_shnum"))
        }
        // A section past the end of the file names the section.
        let names = ByteNames(image: image)
        let btfIndex = try #require(names.sections.first { $0.0 == ".BTF" }?.1)
        do {
            _ = try ObjectFile(bytes: image.writing(image.sectionHeader(btfIndex) + 32, 8, UInt64(good.count)))
            Issue.record("an oversized .BTF parsed")
        } catch {
            #expect(error.description.contains("sh_size") || error.description.contains("section #\(btfIndex)"))
        }
        // A BTF string section length past the end of the section.
        let btfStart = image.sectionOffset(btfIndex)
        do {
            _ = try ObjectFile(bytes: image.writing(btfStart + 20, 4, 0xFFFF_0000))
            Issue.record("a bad str_len parsed")
        } catch {
            #expect(error.description.contains(".BTF") && error.description.contains("str_len"))
        }
        // A symbol name outside .strtab.
        let symtab = try #require((0..<image.sectionCount).first { image.sectionType($0) == 2 })
        do {
            _ = try ObjectFile(bytes: image.writing(image.sectionOffset(symtab) + 24, 4, 0xFFFF_FFF0))
            Issue.record("a bad st_name parsed")
        } catch {
            #expect(error.description.contains("st_name"))
        }
        #expect(ObjectFileError.missingSection(".BTF").description.contains(".BTF"))
    }

    @Test func readerNeverReadsPastTheEnd() throws {
        let reader = ByteReader([1, 2, 3, 4, 5], bigEndian: true, structure: "test")
        #expect(try reader.u32(0, "word") == 0x0102_0304)
        #expect(throws: ObjectFileError.truncated(structure: "test", field: "word", offset: 2, size: 4, available: 5)) {
            try reader.u32(2, "word")
        }
        #expect(throws: ObjectFileError.self) { try reader.u64(Int.max - 2, "x") }
        #expect(throws: ObjectFileError.self) { try reader.slice(-1, 2, "x") }
        #expect(reader.cString(at: 0) == nil) // no terminator
        let little = ByteReader([0x34, 0x12, 0], bigEndian: false, structure: "le")
        #expect(try little.u16(0, "half") == 0x1234)
        #expect(little.cString(at: 2) == "")
    }
}

/// Section names of an image, read through the parser (the names themselves are trusted here
/// because the image is a good fixture).
struct ByteNames {
    var sections: [(String, Int)]
    init(image: ELFImage) {
        let elf = try? ELFFile(bytes: image.bytes)
        sections = elf?.sections.map { ($0.name, $0.index) } ?? []
    }
}
