import Testing
@testable import MimicCore

/// Parsers end in time linear in their input and quote it only in excerpts (issue 20): BTF that
/// loops or nests without end is refused when parsed and type spellings are bounded, so every
/// walk over a parsed BTF terminates quickly; assembler errors never echo a whole huge line.
@Suite struct ParserRobustnessTests {
    /// A little-endian BTF blob of `types` (each `struct btf_type` with what follows it) and an
    /// empty string section.
    static func blob(_ types: [[UInt32]]) -> [UInt8] {
        let words = types.flatMap { $0 }
        var bytes: [UInt8] = []
        func u32(_ value: UInt32) { bytes += withUnsafeBytes(of: value.littleEndian, Array.init) }
        bytes += [0x9F, 0xEB, 1, 0]
        u32(24) // hdr_len
        u32(0) // type_off
        u32(UInt32(words.count * 4)) // type_len
        u32(UInt32(words.count * 4)) // str_off
        u32(1) // str_len
        for word in words { u32(word) }
        bytes.append(0)
        return bytes
    }

    static func info(_ kind: BTF.Kind, vlen: UInt32 = 0) -> UInt32 { UInt32(kind.rawValue) << 24 | vlen }

    static func parseError(_ bytes: [UInt8]) -> ObjectFileError? {
        do {
            _ = try BTF(bytes: bytes, section: ".BTF")
            return nil
        } catch {
            return error
        }
    }

    /// The 52-byte BTF of the issue: a prototype whose return and parameters are itself. It
    /// used to take 2^64 calls to spell; the kernel refuses it ("Loop detected").
    @Test func aPrototypeReferringToItselfIsRefused() throws {
        let bytes = Self.blob([[0, Self.info(.functionProto, vlen: 2), 1, 0, 1, 0, 1]])
        #expect(bytes.count == 53)
        let clock = ContinuousClock()
        let start = clock.now
        let error = Self.parseError(bytes)
        #expect(clock.now - start < .seconds(1))
        #expect("\(error.map { "\($0)" } ?? "")".contains("loop detected"))
    }

    @Test func pointerLoopsAreRefusedButStructsMayPointAtThemselves() throws {
        // [1] ptr -> [2] const -> [1]: a loop.
        #expect(Self.parseError(Self.blob([[0, Self.info(.pointer), 2], [0, Self.info(.const), 1]])) != nil)
        // [1] struct { [2] *next } with [2] ptr -> [1]: a linked list, fine.
        let list = Self.blob([[0, Self.info(.structure, vlen: 1), 8, 0, 2, 0], [0, Self.info(.pointer), 1]])
        let btf = try BTF(bytes: list, section: ".BTF")
        #expect(btf.typeName(2) == "struct <anon> *")
    }

    @Test func chainsDeeperThanMaxResolveDepthAreRefused() throws {
        // [1] int, then const chains: 32 steps are fine, 33 are not.
        let int: [UInt32] = [0, Self.info(.int), 4, 32]
        func chain(_ length: Int) -> [UInt8] {
            Self.blob([int] + (0..<length).map { i in [0, Self.info(.const), UInt32(i + 1)] })
        }
        #expect(Self.parseError(chain(BTF.maxResolveDepth)) == nil)
        #expect(
            "\(Self.parseError(chain(BTF.maxResolveDepth + 1)).map { "\($0)" } ?? "")".contains(
                "MAX_RESOLVE_DEPTH of 32"))
    }

    /// Prototypes of prototypes sharing their parameters: a DAG whose spelling doubles with each
    /// level. The spelling stops after `typeNameParts` types.
    @Test func typeNamesOfSharedPrototypesAreBounded() throws {
        var types: [[UInt32]] = [[0, Self.info(.int), 4, 32]] // [1]
        for level in 0..<15 {
            let previous = UInt32(types.count)
            types.append([0, Self.info(.pointer), previous == 1 ? 1 : previous]) // pointer to the last prototype
            let pointer = UInt32(types.count)
            types.append([0, Self.info(.functionProto, vlen: 2), pointer, 0, pointer, 0, pointer])
            _ = level
        }
        let btf = try BTF(bytes: Self.blob(types), section: ".BTF")
        let clock = ContinuousClock()
        let start = clock.now
        let name = btf.typeName(UInt32(types.count))
        #expect(clock.now - start < .seconds(1))
        #expect(name.hasSuffix("...") || name.contains("..."))
        #expect(name.utf8.count < 64 << 10)
    }

    /// A 5 MB assembler line: the error quotes 80 characters of it, once.
    @Test func assemblerErrorsQuoteAnExcerpt() throws {
        let line = "mov %r0, " + String(repeating: "9", count: 5_000_000)
        do {
            _ = try Assembler.assemble(line + "\nexit")
            Issue.record("assembled")
        } catch {
            let message = "\(error)"
            #expect(message.utf8.count < 400)
            #expect(message.contains("more characters"))
        }
    }
}
