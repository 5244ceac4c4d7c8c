import Foundation
import MimicMemory
import Testing
@testable import MimicCore

/// The compiled fixtures (`Fixtures/*.o`, rebuilt by `Fixtures/build.sh`).
enum Fixtures {
    static var directory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "Fixtures", isDirectory: true)
    }

    /// Every fixture object; `core_target` holds only types (a stand-in for kernel BTF).
    static let names = [
        "bigendian", "btf_maps", "core_target", "globals", "legacy_maps", "loops", "map_in_map",
        "multi_prog", "socket_filter", "subprog_calls", "tracing", "xdp_parse",
    ]

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: directory.appendingPathComponent(name + ".o")))
    }

    static func object(_ name: String, targetBTF: BTF? = nil) throws -> ObjectFile {
        try ObjectFile(bytes: bytes(name), targetBTF: targetBTF)
    }

    static func program(_ object: ObjectFile, _ name: String) throws -> ObjectProgram {
        try #require(object.program(named: name), "no program \(name) in \(object.programs.map(\.name))")
    }
}

/// An emulator for fixtures: maps global data into the VM on first reference, gives maps a
/// placeholder address (the programs run here never dereference one), and provides
/// `bpf_trace_printk` as a no-op.
final class FixtureEmulator: MapProvider, @unchecked Sendable {
    let name = "fixture"
    let object: ObjectFile
    private let lock = NSLock()
    private var globalAddresses: [Int32: UInt64] = [:]

    init(_ object: ObjectFile) { self.object = object }

    func helper(id: Int32) -> Helper? {
        id == 6 ? Helper(id: 6, name: "bpf_trace_printk") { _ throws(HelperFailure) in .value(0) } : nil
    }

    func createMap(_ spec: MapSpec, in vm: VM) throws(LoadError.Reason) -> UInt64 {
        throw .unsupported("the fixture emulator resolves map references of raw programs only; it creates no maps")
    }

    func resolveLoadImm64(kind: LoadImm64Kind, imm: Int32, nextImm: Int32, in vm: VM) throws(LoadError.Reason) -> UInt64
    {
        switch (kind, object.dataObject(atPseudoIndex: imm)) {
        case (.mapIndex, .map?):
            return 0x7000_0000_0000 + UInt64(imm) * 0x1000
        case (.mapIndexValue, .global(let global)?):
            lock.lock()
            defer { lock.unlock() }
            if let base = globalAddresses[imm] { return base + UInt64(nextImm) }
            do {
                let base = try vm.mapShared(
                    RegionStorage(bytes: global.contents), name: global.name,
                    kind: global.isReadOnly ? .readOnly : .plain)
                globalAddresses[imm] = base
                return base + UInt64(nextImm)
            } catch {
                throw .unresolvedReference("cannot map \(global.name): \(error)")
            }
        default:
            throw .unresolvedReference("\(kind.cName) \(imm) is not a map or global of the object")
        }
    }
}

/// An XDP context: the packet in the low 32-bit window, and an `xdp_md` whose 32-bit `data` /
/// `data_end` point at it, as the kernel exposes them.
struct XDPContext: Context {
    var packet: [UInt8]
    var ingressInterface: UInt32 = 1

    func attach(to process: MimicCore.Process) throws(SetupError) {
        do {
            let data = try process.memory.map(RegionStorage(bytes: packet), name: "packet", placement: .low32)
            var md = [UInt8](repeating: 0, count: 24)
            func put(_ value: UInt32, at offset: Int) {
                for i in 0..<4 { md[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
            }
            put(UInt32(truncatingIfNeeded: data), at: 0)
            put(UInt32(truncatingIfNeeded: data) + UInt32(packet.count), at: 4)
            put(UInt32(truncatingIfNeeded: data), at: 8)
            put(ingressInterface, at: 12)
            process.registers[1] = try process.memory.map(RegionStorage(bytes: md), name: "xdp_md")
        } catch {
            throw .message("cannot map the XDP context: \(error)")
        }
    }
}

/// Little-endian bytes of 32-bit words, for `__sk_buff`-like contexts.
func words(_ values: [UInt32]) -> [UInt8] {
    values.flatMap { value in (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) } }
}

/// Loads `program` into a fresh VM and runs it with `context`.
func run(_ program: ObjectProgram, in object: ObjectFile, context: (any Context)? = nil) throws -> UInt64 {
    let vm = VM(emulator: FixtureEmulator(object))
    let loaded = try vm.load(program.instructions, name: program.name)
    return try vm.run(loaded, context: context, instructionLimit: 100_000)
}

@Suite struct ObjectFileTests {
    // MARK: Every fixture

    @Test(arguments: Fixtures.names) func everyFixtureParsesAndLoads(name: String) throws {
        let object = try Fixtures.object(name)
        if name == "core_target" {
            #expect(object.programs.isEmpty)
            #expect(object.btf?.typeID(named: "task_struct", kind: .structure) != nil)
            return
        }
        #expect(!object.programs.isEmpty)
        #expect(object.license != nil)
        #expect(object.btf != nil)
        let vm = VM(emulator: FixtureEmulator(object))
        for program in object.programs {
            #expect(program.instructions.count > 0)
            #expect(program.functions.first?.name == program.name)
            #expect(program.functions.first?.instructionIndex == 0)
            _ = try vm.load(program.instructions, name: program.name)
            // Line info points into this fixture's C file.
            #expect(!program.lineInfo.isEmpty, "\(program.name) has no line info")
            for line in program.lineInfo {
                #expect(line.instructionIndex >= 0 && line.instructionIndex < program.instructions.count)
                #expect(line.file.hasSuffix(name + ".c"), "\(line.file)")
            }
        }
        #expect(!object.inspectionReport().isEmpty)
    }

    // MARK: Programs and types

    @Test func programsSectionsAndTypes() throws {
        let object = try Fixtures.object("multi_prog")
        let summary = object.programs.map { "\($0.name) \($0.sectionName) \($0.type)" }
        #expect(
            summary == [
                "xdp_first xdp xdp", "xdp_second xdp xdp", "tc_mark tc sched_cls",
                "classify classifier/egress unspec", "probe_open kprobe/do_sys_open kprobe",
            ])
        #expect(object.license == "GPL")

        let tracing = try Fixtures.object("tracing")
        #expect(
            tracing.programs.map(\.type) == [
                .kprobe, .kprobe, .tracepoint, .rawTracepoint, .perfEvent, .cgroupSkb, .lwtXmit, .skMsg,
            ])
        #expect(try Fixtures.object("socket_filter").programs.map(\.type) == [.socketFilter])
        #expect(try Fixtures.object("socket_filter").license == "Dual BSD/GPL")
    }

    @Test func sectionNamesAsLibbpfGuessesThem() {
        let cases: [(String, ProgramType)] = [
            ("xdp", .xdp), ("xdp.frags", .xdp), ("xdp/devmap", .xdp), ("xdp/foo", .unspec),
            ("tc", .schedCls), ("classifier", .schedCls), ("tc/ingress", .schedCls), ("action", .schedAct),
            ("socket", .socketFilter), ("socket/x", .unspec),
            ("kprobe/do_exit", .kprobe), ("kprobe", .kprobe), ("kprobex", .unspec), ("kretprobe/x", .kprobe),
            ("uprobe/bin:fn", .kprobe), ("tracepoint/a/b", .tracepoint), ("tp/a/b", .tracepoint),
            ("raw_tp/x", .rawTracepoint), ("raw_tracepoint.w/x", .rawTracepointWritable), ("perf_event", .perfEvent),
            ("cgroup_skb/ingress", .cgroupSkb), ("cgroup/skb", .cgroupSkb), ("cgroup/connect4", .cgroupSockAddr),
            ("lwt_in", .lwtIn), ("lwt_out", .lwtOut), ("lwt_xmit", .lwtXmit), ("lwt_seg6local", .lwtSeg6Local),
            ("sk_msg", .skMsg), ("sk_skb/stream_parser", .skSkb), ("sockops", .sockOps), ("fentry/f", .tracing),
            ("lsm/file_open", .lsm), ("syscall", .syscall), ("struct_ops/x", .structOps), ("netfilter", .netfilter),
            (".text", .unspec),
        ]
        for (name, type) in cases {
            #expect(ProgramType.guess(sectionName: name) == type, "\(name)")
        }
        #expect(ProgramType.xdp.cName == "BPF_PROG_TYPE_XDP")
        #expect(MapType.perCPUArray.cName == "BPF_MAP_TYPE_PERCPU_ARRAY")
        #expect(MapType(rawValue: 999).description == "type 999")
    }

    @Test func subProgramsAreLinkedAndCallsFixedUp() throws {
        let object = try Fixtures.object("subprog_calls")
        let hash = try Fixtures.program(object, "hash_input")
        #expect(hash.functions.map(\.name) == ["hash_input", "fold", "mix"])
        #expect(hash.functions.dropFirst().allSatisfy { $0.sectionName == ".text" })
        // The entry's call now lands on fold's first slot.
        let fold = try #require(hash.functions.first { $0.name == "fold" })
        #expect(hash.instructions[0].opcode == 0x85 && hash.instructions[0].source == 1)
        #expect(0 + 1 + Int(hash.instructions[0].imm) == fold.instructionIndex)

        let twice = try Fixtures.program(object, "twice_first")
        #expect(twice.functions.map(\.name) == ["twice_first", "global_twice", "mix"])
        #expect(twice.lineInfo.contains { $0.sourceText.contains("return x * 2;") })
    }

    // MARK: Running programs

    @Test func runsPureProgramsToKnownResults() throws {
        let calls = try Fixtures.object("subprog_calls")
        for input in [[UInt8](), [1, 2, 3], Array(0..<40).map { UInt8($0 * 7 & 0xFF) }] {
            var expected: UInt32 = 17
            for byte in input.prefix(16) { expected = (expected &* 31) ^ UInt32(byte) }
            #expect(
                try run(Fixtures.program(calls, "hash_input"), in: calls, context: MemoryContext(input))
                    == UInt64(expected))
        }
        #expect(try run(Fixtures.program(calls, "twice_first"), in: calls, context: MemoryContext([21])) == 42 + 29)
        #expect(try run(Fixtures.program(calls, "twice_first"), in: calls, context: MemoryContext([])) == 0xFFFF_FFFF)

        let loops = try Fixtures.object("loops")
        let bytes: [UInt8] = (0..<100).map { (i: Int) -> UInt8 in i % 5 == 0 ? 0 : UInt8(truncatingIfNeeded: i * 13) }
        let expectedSum = bytes.prefix(64).reduce(UInt32(0)) { $0 + UInt32($1) }
        #expect(
            try run(Fixtures.program(loops, "sum_bytes"), in: loops, context: MemoryContext(bytes))
                == UInt64(expectedSum))
        #expect(
            try run(Fixtures.program(loops, "count_zeros"), in: loops, context: MemoryContext(bytes))
                == UInt64(bytes.filter { $0 == 0 }.count))

        let filter = try Fixtures.object("socket_filter")
        #expect(
            try run(
                Fixtures.program(filter, "trim_long"), in: filter, context: MemoryContext(words([200, 0, 0, 0, 0])))
                == 64)
        #expect(
            try run(Fixtures.program(filter, "trim_long"), in: filter, context: MemoryContext(words([50, 0, 0, 0, 0])))
                == 50)

        let multi = try Fixtures.object("multi_prog")
        #expect(
            try run(Fixtures.program(multi, "tc_mark"), in: multi, context: MemoryContext(words([0, 0, 20, 0, 0])))
                == 41)
        #expect(
            try run(
                Fixtures.program(multi, "classify"), in: multi, context: MemoryContext(words([0, 0, 0, 0, 0x1234])))
                == 0x34)
        #expect(try run(Fixtures.program(multi, "xdp_first"), in: multi) == 2)
        #expect(
            try run(
                Fixtures.program(multi, "xdp_second"), in: multi, context: XDPContext(packet: [0], ingressInterface: 3))
                == 1)
        #expect(
            try run(
                Fixtures.program(multi, "xdp_second"), in: multi, context: XDPContext(packet: [0], ingressInterface: 4))
                == 3)
        #expect(try run(Fixtures.program(multi, "probe_open"), in: multi) == 7)
    }

    @Test func xdpProgramReadsThePacket() throws {
        let object = try Fixtures.object("xdp_parse")
        let program = try Fixtures.program(object, "xdp_filter")
        func packet(etherType: UInt16, protocol_: UInt8) -> [UInt8] {
            var bytes = [UInt8](repeating: 0xAA, count: 12) + [UInt8(etherType >> 8), UInt8(etherType & 0xFF)]
            var ip = [UInt8](repeating: 0, count: 20)
            ip[0] = 0x45
            ip[9] = protocol_
            bytes += ip
            return bytes
        }
        #expect(try run(program, in: object, context: XDPContext(packet: packet(etherType: 0x0800, protocol_: 6))) == 2) // PASS
        #expect(
            try run(program, in: object, context: XDPContext(packet: packet(etherType: 0x0800, protocol_: 17))) == 1) // DROP
        #expect(try run(program, in: object, context: XDPContext(packet: packet(etherType: 0x86DD, protocol_: 6))) == 1) // DROP
        #expect(
            try run(
                program, in: object,
                context: XDPContext(packet: Array(packet(etherType: 0x0800, protocol_: 6).prefix(20)))) == 0)
        #expect(try run(program, in: object, context: XDPContext(packet: [1, 2, 3])) == 0) // ABORTED
    }

    @Test func runsProgramsThatUseGlobalData() throws {
        let object = try Fixtures.object("globals")
        // counter (5) + 1, banner[0] 'm', ports[1] 443, tuned 0x1234.
        #expect(
            try run(Fixtures.program(object, "read_globals"), in: object, context: MemoryContext([1, 2, 3])) == 6 + 109
                + 443 + 0x1234)
        // "literal!"[length & 7]
        for length in 0..<10 {
            let expected = Array("literal!".utf8)[length & 7]
            #expect(
                try run(
                    Fixtures.program(object, "literal_char"), in: object,
                    context: MemoryContext([UInt8](repeating: 0, count: length)))
                    == UInt64(expected))
        }
    }

    // MARK: Maps

    @Test func legacyMaps() throws {
        let object = try Fixtures.object("legacy_maps")
        #expect(object.maps.map(\.name) == ["packet_counts", "flow_table"])
        let counts = try #require(object.map(named: "packet_counts"))
        #expect(
            counts.attributes.type == .array && counts.attributes.keySize == 4 && counts.attributes.valueSize == 8
                && counts.attributes.maxEntries == 256 && counts.attributes.flags == 0)
        #expect(counts.source == .legacy && counts.sectionName == "maps")
        let flows = try #require(object.map(named: "flow_table"))
        #expect(
            flows.attributes.type == .hash && flows.attributes.keySize == 8 && flows.attributes.valueSize == 16
                && flows.attributes.maxEntries == 1024 && flows.attributes.flags == 1)

        // Both lddw map references were rewritten to BPF_PSEUDO_MAP_IDX with the map's index.
        let program = try Fixtures.program(object, "count_packets")
        #expect(program.references.map(\.target) == [.map("packet_counts"), .map("flow_table")])
        for (reference, index) in zip(program.references, [0, 1]) {
            let slot = program.instructions[reference.instructionIndex]
            #expect(slot.opcode == 0x18 && slot.source == LoadImm64Kind.mapIndex.rawValue && slot.imm == Int32(index))
            #expect(program.instructions[reference.instructionIndex + 1].imm == 0)
        }
    }

    @Test func btfDefinedMaps() throws {
        let object = try Fixtures.object("btf_maps")
        let btf = try #require(object.btf)
        #expect(object.maps.map(\.name) == ["flows", "counters", "events"])
        let flows = try #require(object.map(named: "flows"))
        #expect(
            flows.attributes.type == .hash && flows.attributes.maxEntries == 4096 && flows.attributes.flags == 1
                && flows.pinning == 1)
        #expect(flows.attributes.keySize == 16 && flows.attributes.valueSize == 32)
        #expect(flows.keyTypeID.map { btf.typeName($0) } == "struct flow_key")
        #expect(flows.valueTypeID.map { btf.typeName($0) } == "struct flow_stats")
        let counters = try #require(object.map(named: "counters"))
        #expect(
            counters.attributes.type == .perCPUArray && counters.attributes.keySize == 4
                && counters.attributes.valueSize == 8 && counters.attributes.maxEntries == 4)
        #expect(counters.keyTypeID == nil)
        let events = try #require(object.map(named: "events"))
        #expect(
            events.attributes.type == .ringBuffer && events.attributes.maxEntries == 4096 && events.sectionOffset == 80)

        let program = try Fixtures.program(object, "track")
        #expect(program.references.map(\.target) == [.map("flows"), .map("counters"), .map("events")])
        #expect(program.references.map { program.instructions[$0.instructionIndex].imm } == [0, 1, 2])
    }

    @Test func mapInMapAndProgArrayInitialValues() throws {
        let object = try Fixtures.object("map_in_map")
        #expect(object.maps.map(\.name) == ["inner_a", "inner_b", "outer", "jump_table"])
        let outer = try #require(object.map(named: "outer"))
        #expect(
            outer.attributes.type == .arrayOfMaps && outer.attributes.maxEntries == 4 && outer.attributes.keySize == 4
                && outer.attributes.valueSize == 4)
        let inner = try #require(outer.innerMap)
        #expect(
            inner.attributes.type == .array && inner.attributes.maxEntries == 16 && inner.attributes.keySize == 4
                && inner.attributes.valueSize == 4)
        #expect(inner.source == .innerTemplate)
        #expect(
            outer.initialSlots == [.init(index: 0, target: .map("inner_a")), .init(index: 3, target: .map("inner_b"))])
        let table = try #require(object.map(named: "jump_table"))
        #expect(table.attributes.type == .progArray && table.attributes.maxEntries == 8)
        #expect(
            table.initialSlots == [
                .init(index: 1, target: .program("tail_a")), .init(index: 5, target: .program("tail_b")),
            ])
        #expect(table.innerMap == nil)
    }

    // MARK: Global data

    @Test func globalDataSections() throws {
        let object = try Fixtures.object("globals")
        #expect(
            object.globals.map(\.name) == [
                ".data", ".rodata", ".data.tuning", ".rodata.ports", ".bss", ".rodata.str1.1",
            ])
        let data = try #require(object.global(named: ".data"))
        #expect(data.contents == [5, 0, 0, 0] && !data.isReadOnly && data.variables.map(\.name) == ["counter"])
        let rodata = try #require(object.global(named: ".rodata"))
        #expect(rodata.isReadOnly)
        #expect(Array(rodata.contents[0..<4]) == [0xE8, 0x03, 0, 0]) // threshold = 1000
        #expect(Array(rodata.contents[4..<10]) == Array("mimic\0".utf8))
        let bss = try #require(object.global(named: ".bss"))
        #expect(bss.contents == [UInt8](repeating: 0, count: 24) && !bss.isReadOnly)
        #expect(bss.variables.map(\.name) == ["total", "scratch"])
        #expect(try #require(object.global(named: ".data.tuning")).contents == [0x34, 0x12, 0, 0])
        #expect(try #require(object.global(named: ".rodata.ports")).contents == [80, 0, 0xBB, 1, 0x90, 0x1F])
        let strings = try #require(object.global(named: ".rodata.str1.1"))
        #expect(String(decoding: strings.contents, as: UTF8.self).contains("literal!"))

        // Global references: src 6, imm = maps.count + global index, next imm = offset.
        let program = try Fixtures.program(object, "read_globals")
        let bssIndex = Int32(object.maps.count + 4)
        let scratch = try #require(program.references.first { $0.target == .globalData(section: ".bss", offset: 8) })
        let slot = program.instructions[scratch.instructionIndex]
        #expect(slot.source == LoadImm64Kind.mapIndexValue.rawValue && slot.imm == bssIndex)
        #expect(program.instructions[scratch.instructionIndex + 1].imm == 8)
        #expect(object.dataObject(atPseudoIndex: bssIndex) == .global(bss))
        #expect(object.dataObject(atPseudoIndex: 99) == nil)
    }

    // MARK: Big-endian

    @Test func bigEndianObject() throws {
        let object = try Fixtures.object("bigendian")
        #expect(object.isBigEndian)
        #expect(object.btf?.isBigEndian == true)
        let program = try Fixtures.program(object, "be_prog")
        #expect(program.type == .schedCls)
        #expect(program.instructions[0] == RawInstruction(opcode: 0xB4, destination: 1, imm: 1)) // w1 = 1
        #expect(program.instructions.contains(RawInstruction(opcode: 0xB4, destination: 0, imm: 42))) // add_seven(35), folded
        #expect(
            object.maps.first?.name == "be_values" && object.maps.first?.attributes.valueSize == 8
                && object.maps.first?.attributes.maxEntries == 8)
        #expect(object.global(named: ".data")?.contents == [1, 2, 3, 4]) // 0x01020304, big-endian
        #expect(program.references.map(\.target) == [.map("be_values"), .globalData(section: ".data", offset: 0)])
        let btf = try #require(object.btf)
        #expect(btf.format([0, 0, 0, 0, 0, 0, 1, 2], as: try #require(object.maps.first?.valueTypeID)) == "258")
        #expect(!program.lineInfo.isEmpty)
    }

    /// Issue 13.2: a big-endian object is refused at load (it would run with little-endian
    /// loads, stores and data), with a message that says what to compile with instead.
    @Test func bigEndianObjectIsRefusedAtLoad() throws {
        let object = try Fixtures.object("bigendian")
        #expect(object.byteOrderProblem?.contains("-target bpfeb") == true)
        do {
            _ = try VM().load(object: object)
            Issue.record("a big-endian object was loaded")
        } catch {
            #expect(error.reason == .unsupported(try #require(object.byteOrderProblem)))
            #expect(error.description.contains("-target bpfel"), "\(error)")
        }
        #expect(try Fixtures.object("globals").byteOrderProblem == nil)
    }

    // MARK: BTF

    @Test func btfTypesAndFormatting() throws {
        let object = try Fixtures.object("btf_maps")
        let btf = try #require(object.btf)
        let keyID = try #require(btf.typeID(named: "flow_key", kind: .structure))
        guard case .structure(_, let size, let members)? = btf.type(keyID) else {
            Issue.record("flow_key is not a struct")
            return
        }
        #expect(size == 16)
        #expect(members.map(\.name) == ["saddr", "daddr", "sport", "dport", "protocol"])
        #expect(members.map { $0.bitOffset / 8 } == [0, 4, 8, 10, 12])
        #expect(btf.size(of: keyID) == 16)

        let verdictID = try #require(btf.typeID(named: "verdict", kind: .enumeration))
        guard case .enumeration(_, _, let values, _, _)? = btf.type(verdictID) else {
            Issue.record("verdict is not an enum")
            return
        }
        #expect(values.map(\.name) == ["VERDICT_PASS", "VERDICT_DROP", "VERDICT_REDIRECT"])
        #expect(values.map(\.value) == [1, 2, 7])

        let statsID = try #require(btf.typeID(named: "flow_stats", kind: .structure))
        var value = [UInt8](repeating: 0, count: 32)
        value[0] = 3 // packets
        value[8] = 0x10
        value[9] = 0x01 // bytes = 272
        value[16] = 7 // verdict
        for (i, c) in "eth0".utf8.enumerated() { value[20 + i] = c }
        #expect(
            btf.format(value, as: statsID)
                == #"{ .packets = 3, .bytes = 272, .verdict = VERDICT_REDIRECT, .label = "eth0" }"#)
        #expect(
            btf.format([1, 0, 0, 0, 2, 0, 0, 0, 0x50, 0, 0xBB, 1, 6, 0, 0, 0], as: keyID)
                == "{ .saddr = 1, .daddr = 2, .sport = 80, .dport = 443, .protocol = 6 }")
        #expect(btf.format([1, 0], as: keyID).contains("<truncated>"))

        // Functions, prototypes, variables and data sections are all there.
        #expect(btf.typeID(named: "track", kind: .function) != nil)
        #expect(btf.types.contains { $0.kind == .functionProto })
        #expect(btf.typeID(named: "flows", kind: .variable) != nil)
        let maps = try #require(btf.typeID(named: ".maps", kind: .dataSection))
        if case .dataSection(_, let size, let variables)? = btf.type(maps) {
            #expect(variables.map(\.offset) == [0, 48, 80]) // fixed up from the symbols, as libbpf does
            #expect(size == 96)
        }
        #expect(object.btfExt?.functionInfo.contains { $0.section == "xdp" } == true)
    }

    // MARK: Line info and listings

    @Test func annotatedListingShowsSourceLines() throws {
        let object = try Fixtures.object("subprog_calls")
        let listing = try Fixtures.program(object, "hash_input").annotatedListing()
        #expect(listing.contains("<hash_input> (socket):"))
        #expect(listing.contains("<fold> (.text):"))
        #expect(listing.contains("; acc = mix(acc, bytes[i]);  (subprog_calls.c:14:"))
        #expect(listing.contains("call local"))

        let globals = try Fixtures.object("globals")
        let read = try Fixtures.program(globals, "read_globals").annotatedListing()
        #expect(read.contains("lddw %r4, map_value[\(globals.maps.count + 4)]+8  # .bss+8"))
        let legacy = try Fixtures.program(Fixtures.object("legacy_maps"), "count_packets").annotatedListing()
        #expect(legacy.contains("map[1]  # map flow_table"))

        let report = try Fixtures.object("map_in_map").inspectionReport()
        #expect(report.contains("dispatcher"))
        #expect(report.contains("array_of_maps"))
        #expect(report.contains("[1]=tail_a"))
        let line = try #require(Fixtures.program(object, "twice_first").sourceLine(at: 4))
        #expect(line.file.hasSuffix("subprog_calls.c") && line.line == 35)
    }

    // MARK: CO-RE

    @Test func coreAgainstOwnTypes() throws {
        let object = try Fixtures.object("tracing")
        #expect(object.btfExt?.coreRelocations.count == 6)
        #expect(object.notes.contains { $0.contains("against the object's own BTF") })
        #expect(try run(Fixtures.program(object, "on_fork_return"), in: object) == 1 + 16)
        #expect(try run(Fixtures.program(object, "on_openat"), in: object) == 32 + 1)
        let kinds = Set(object.btfExt?.coreRelocations.map(\.kind) ?? [])
        #expect(kinds == [.fieldByteOffset, .fieldExists, .fieldByteSize, .typeSize, .typeExists])
    }

    @Test func coreAgainstATargetBTF() throws {
        let target = try #require(Fixtures.object("core_target").btf)
        let object = try Fixtures.object("tracing", targetBTF: target)
        #expect(!object.notes.contains { $0.contains("own BTF") })
        #expect(try run(Fixtures.program(object, "on_fork_return"), in: object) == 1 + 32) // comm is char[32] there
        #expect(try run(Fixtures.program(object, "on_openat"), in: object) == 64 + 1)
        let exit = try Fixtures.program(object, "on_exit")
        #expect(exit.instructions[0].opcode == 0x79 && exit.instructions[0].offset == 16) // regs->di
        #expect(exit.instructions.contains(RawInstruction(opcode: 0xB7, destination: 1, imm: 20))) // &task->pid
    }

    @Test func coreFieldsMissingFromTheTarget() throws {
        let unrelated = try #require(Fixtures.object("socket_filter").btf)
        let object = try Fixtures.object("tracing", targetBTF: unrelated)
        let fork = try Fixtures.program(object, "on_fork_return")
        // FIELD_EXISTS becomes 0; FIELD_BYTE_SIZE cannot be satisfied and is poisoned, as libbpf does.
        #expect(fork.instructions.contains(RawInstruction(opcode: 0xB7, destination: 1, imm: 0)))
        #expect(fork.instructions.contains(RawInstruction(opcode: 0x85, imm: 0xBAD2310)))
        #expect(object.notes.contains { $0.contains("on_fork_return") && $0.contains("0xbad2310") })
        #expect(throws: (any Error).self) { try run(fork, in: object) }
        #expect(CORERelocator.essentialName("task_struct___v2") == "task_struct")
        #expect(CORERelocator.essentialName("a____b") == "a____b")
        #expect(CORERelocator.essentialName("plain") == "plain")
    }
}
