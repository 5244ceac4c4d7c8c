import Foundation
import Testing
import MimicCore
@testable import MimicKernel

/// `LoadableBTF`: an object's `.BTF` with libbpf's fixups, checked without a kernel
/// (`TimerDynptrKernelTests` loads it into one).
struct LoadableBTFTests {
    static func object(_ name: String) throws -> ObjectFile {
        try ObjectFile(contentsOf: Fixtures.directories[1].appendingPathComponent("\(name).o").path)
    }

    @Test("kfuncs become global functions backed by dummy_ksym, and every DATASEC gets its size and offsets")
    func fixups() throws {
        let object = try Self.object("kfuncs")
        let loadable = try #require(try LoadableBTF(object: object))
        let btf = try BTF(bytes: loadable.bytes)
        let original = try #require(object.btf)
        #expect(btf.count >= original.count, "types are kept (new ones appended)")
        var sections: [String: (size: UInt32, variables: [BTF.SectionVariable])] = [:]
        var dummy: UInt32?
        for id in 1..<UInt32(btf.count) {
            switch btf.type(id) {
            case .function(let name, _, let linkage):
                #expect(linkage <= 1, "\(name) has linkage \(linkage), which the kernel refuses")
                // Each of the object's types keeps its id.
                if case .function(let before, _, _) = original.type(id) { #expect(before == name) }
            case .dataSection(let name, let size, let variables):
                sections[name] = (size, variables)
            case .variable(let name, _, _) where name == "dummy_ksym":
                dummy = id
            default:
                break
            }
        }
        let ksyms = try #require(sections[".ksyms"])
        #expect(ksyms.size == UInt32(4 * ksyms.variables.count))
        #expect(ksyms.variables.allSatisfy { $0.type == dummy && $0.size == 4 })
        #expect(ksyms.variables.map(\.offset) == (0..<ksyms.variables.count).map { UInt32(4 * $0) })
        for (name, section) in sections where name != ".ksyms" {
            #expect(section.size > 0, "\(name) has no size")
            #expect(section.variables.map(\.offset) == section.variables.map(\.offset).sorted(), "\(name)")
        }
        // The lock, the list head and the tree root of the private section, at their symbols.
        let privateSection = try #require(sections[".data.A"])
        let symbols = object.elf.symbols.filter { ["glock", "items", "tree"].contains($0.name) }
        #expect(privateSection.variables.map { UInt64($0.offset) } == symbols.map(\.value).sorted())
    }

    @Test("a damaged .BTF is refused with a message, never a crash")
    func damagedBTF() throws {
        let object = try Self.object("kfuncs")
        let section = try #require(object.elf.section(named: ".BTF"))
        let raw = object.elf.contents(of: section)
        #expect(throws: Never.self) { _ = try LoadableBTF(btf: raw, of: object) }
        var refused = 0
        // Cut short anywhere, header lengths out of range, and a sample of single corrupted bytes.
        var damaged: [[UInt8]] = stride(from: 0, to: raw.count, by: 7).map { Array(raw[..<$0]) }
        for field in [4, 8, 12, 16, 20] {
            var bytes = raw
            bytes[field + 3] = 0x7F
            damaged.append(bytes)
        }
        for position in stride(from: 24, to: raw.count, by: 5) {
            var bytes = raw
            bytes[position] ^= 0xA5
            damaged.append(bytes)
        }
        for bytes in damaged {
            do {
                _ = try LoadableBTF(btf: bytes, of: object)
            } catch {
                refused += 1
                #expect(error.description.contains(".BTF"), "\(error)")
            }
        }
        #expect(refused >= 100, "the truncations and broken headers are refused (\(refused) of \(damaged.count))")
    }
}
