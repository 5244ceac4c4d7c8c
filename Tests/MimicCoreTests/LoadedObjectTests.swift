import Testing
import MimicMemory
@testable import MimicCore

/// `VM.load(object:)`: global data mapped, maps created through the emulator, references bound.
@Suite struct LoadedObjectTests {
    /// Records the maps it is asked to create and gives each a distinct handle.
    final class RecordingEmulator: MapProvider, @unchecked Sendable {
        let name = "recording"
        var created: [String] = []
        var adopted: [String] = []
        var initialized = false

        func helper(id: Int32) -> Helper? {
            id == 6 ? Helper(id: 6, name: "bpf_trace_printk") { _ throws(HelperFailure) in .value(0) } : nil
        }

        func resolveLoadImm64(kind: LoadImm64Kind, imm: Int32, nextImm: Int32, in vm: VM) throws(LoadError.Reason)
            -> UInt64
        {
            throw .unresolvedReference("\(kind.cName): object programs reach this emulator with their references bound")
        }

        func createMap(_ spec: MapSpec, in vm: VM) throws(LoadError.Reason) -> UInt64 {
            created.append(spec.name)
            return 0xAB00_0000 + UInt64(created.count)
        }

        func adoptGlobalData(_ spec: GlobalDataSpec, storage: RegionStorage, address: UInt64, in vm: VM)
            throws(LoadError.Reason)
        {
            adopted.append(spec.name)
        }

        func initializeMaps(of object: LoadedObject) throws(LoadError) { initialized = true }
    }

    @Test func globalDataIsSharedAndWritable() throws {
        let emulator = RecordingEmulator()
        let vm = VM(emulator: emulator)
        let loaded = try vm.load(object: Fixtures.object("globals"))
        #expect(Set(emulator.adopted) == Set(loaded.object.globals.map(\.name)))
        let program = try loaded.program(named: "read_globals")
        #expect(try loaded.program(named: "read_globals") === program)

        // counter (5) + 1, banner[0] 'm', ports[1] 443, tuned 0x1234.
        #expect(try vm.run(program, context: MemoryContext([1, 2, 3])) == 6 + 109 + 443 + 0x1234)
        // A second run sees the first run's writes: counter is 7 now.
        #expect(try vm.run(program, context: MemoryContext([1, 2, 3])) == 7 + 109 + 443 + 0x1234)

        let data = try #require(loaded.globals[".data"])
        #expect(data.storage.bytes.prefix(4) == [7, 0, 0, 0])
        let bss = try #require(loaded.globals[".bss"])
        #expect(bss.storage.bytes.prefix(8) == [6, 0, 0, 0, 0, 0, 0, 0]) // total += 3, twice
        #expect(try #require(loaded.globals[".rodata"]).spec.isReadOnly)
        #expect(vm.sharedRegions.contains { $0.name == ".rodata" && $0.kind == .readOnly })
    }

    @Test func mapReferencesBecomeTheEmulatorsHandles() throws {
        let emulator = RecordingEmulator()
        let vm = VM(emulator: emulator)
        let object = try Fixtures.object("legacy_maps")
        let loaded = try vm.load(object: object)
        #expect(emulator.created == object.maps.map(\.name))
        let program = try loaded.program(named: "count_packets")
        let source = try Fixtures.program(object, "count_packets")
        for reference in source.references {
            guard case .map(let name) = reference.target else { continue }
            let slot = reference.instructionIndex
            let value =
                UInt64(UInt32(bitPattern: program.instructions[slot].imm))
                | UInt64(UInt32(bitPattern: program.instructions[slot + 1].imm)) << 32
            #expect(program.instructions[slot].source == 0)
            #expect(value == loaded.mapHandles[name])
        }
    }

    @Test func initialSlotsGoToTheEmulator() throws {
        let emulator = RecordingEmulator()
        _ = try VM(emulator: emulator).load(object: Fixtures.object("map_in_map"))
        #expect(emulator.initialized)
    }

    /// Provides the two kfuncs `Fixtures/kfuncs.c` calls.
    final class KfuncEmulator: Emulator {
        let name = "kfunc-test"

        func helper(id: Int32) -> Helper? { nil }

        func kfunc(named name: String) -> Helper? {
            switch name {
            case "mimic_test_double":
                Helper(id: -1, name: name) { process throws(HelperFailure) in .value(process.argument(1) &* 2) }
            case "mimic_test_add":
                Helper(id: -1, name: name) { process throws(HelperFailure) in
                    .value(process.argument(1) &+ process.argument(2))
                }
            default:
                nil
            }
        }
    }

    @Test func kfuncCallsAreBoundByName() throws {
        let object = try Fixtures.object("kfuncs")
        for emulator in [KfuncEmulator(), try CompositeEmulator([ConformanceEmulator(), KfuncEmulator()])]
            as [any Emulator]
        {
            let vm = VM(emulator: emulator)
            let program = try vm.load(object: object).program(named: "call_kfuncs")
            // double(3) + double(1)
            #expect(try vm.run(program, context: MemoryContext([1, 2, 3])) == 8)
            #expect(program.helpers.map(\.name).sorted() == ["mimic_test_add", "mimic_test_double"])
        }
    }

    @Test func aKfuncNobodyProvidesIsALoadErrorNamingIt() throws {
        let object = try Fixtures.object("kfuncs")
        let loaded = try VM(emulator: ConformanceEmulator()).load(object: object)
        let error = try #require(throws: LoadError.self) { try loaded.program(named: "call_kfuncs") }
        #expect(error.description.contains("kfunc mimic_test_double"))
        #expect(error.description.contains("conformance"))
        #expect(error.pc == 1)
        let withoutEmulator = try VM().load(object: object)
        let second = try #require(throws: LoadError.self) { try withoutEmulator.program(named: "call_kfuncs") }
        #expect(second.description.contains("kfunc mimic_test_double"))
    }

    @Test func mapsWithoutAnEmulatorAreAClearError() throws {
        let error = try #require(throws: LoadError.self) { try VM().load(object: Fixtures.object("legacy_maps")) }
        #expect(error.description.contains("packet_counts"))
        #expect(error.description.contains("needs an emulator that provides maps"))
    }

    @Test func unknownProgramNamesTheAlternatives() throws {
        let loaded = try VM(emulator: RecordingEmulator()).load(object: Fixtures.object("multi_prog"))
        let error = try #require(throws: LoadError.self) { try loaded.program(named: "nope") }
        #expect(error.description.contains("no program named 'nope'"))
        #expect(try loaded.allPrograms().count == loaded.object.programs.count)
    }

    @Test func faultsNameTheCSourceLine() throws {
        let loaded = try VM(emulator: RecordingEmulator()).load(object: Fixtures.object("xdp_parse"))
        let program = try loaded.program(named: "xdp_filter")
        #expect(program.sourceLine(at: 1)?.file.hasSuffix("xdp_parse.c") == true)
        // A 3-byte buffer is no xdp_md: reading ctx->data_end faults.
        let error = try #require(throws: ExecutionError.self) {
            try loaded.vm.run(program, context: MemoryContext([1, 2, 3]))
        }
        #expect(error.sourceLine?.line == 27)
        #expect(error.description.contains("xdp_parse.c:27: void *data_end = (void *)(long)ctx->data_end;"))
    }
}
