import MimicCore
import MimicJSON
import MimicLinux
import MimicMemory
import Testing
#if canImport(Glibc)
    import Glibc
#endif

/// The resource bombs of issue 20: each ends in a clear error (or works lazily) within a second
/// and without taking 100 MB of host memory.
@Suite("Robustness: resource bombs")
struct ResourceBombTests {
    /// The process's peak resident memory so far, in bytes (`ru_maxrss`).
    static func peakResident() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }

    /// Runs `body` and checks it takes under a second and raises the process's peak resident
    /// memory by less than 100 MB.
    static func bounded<T>(_ what: String, _ body: () throws -> T) rethrows -> T {
        let before = peakResident()
        let clock = ContinuousClock()
        let start = clock.now
        let result = try body()
        let elapsed = clock.now - start
        #expect(elapsed < .seconds(1), "\(what) took \(elapsed)")
        #expect(
            peakResident() - before < 100 << 20, "\(what) raised the peak memory by \(peakResident() - before) bytes")
        return result
    }

    static func mapError(_ body: () throws -> Any) -> MapError? {
        do {
            _ = try body()
            return nil
        } catch let error as MapError {
            return error
        } catch {
            Issue.record("expected a MapError, got \(error)")
            return nil
        }
    }

    static func contextError(_ bytes: [UInt8]) -> ContextError? {
        do {
            _ = try ContextFile.load(data: bytes)
            return nil
        } catch {
            return error
        }
    }

    static let inner = MapAttributes(name: "inner", type: .array, keySize: 4, valueSize: 8, maxEntries: 4)

    static func hugeFDArray(_ type: MapType) -> MapAttributes {
        MapAttributes(
            name: "huge", type: type, keySize: 4, valueSize: 4, maxEntries: 0xFFFF_FFFF,
            innerMap: type == .arrayOfMaps ? inner : nil)
    }

    @Test(arguments: [MapType.progArray, .perfEventArray, .arrayOfMaps])
    func fdArraysOfFourBillionSlotsExceedTheBudget(type: MapType) throws {
        let (vm, emulator) = makeLinuxVM()
        let error = Self.bounded("\(type.cName) max_entries 0xFFFFFFFF") {
            Self.mapError { try emulator.createMap(Self.hugeFDArray(type), in: vm) }
        }
        #expect(error?.errno == .noMemory)
        #expect(error?.map == "huge")
        #expect(error?.message.contains("max_entries 4294967295") == true)
        #expect(error?.message.contains("34359738360 bytes") == true)
        #expect(vm.memoryBudget.inUse == 0)
    }

    @Test func hashOfMapsPastTheKernelsBucketLimitIsTooBig() throws {
        let (vm, emulator) = makeLinuxVM()
        let attributes = MapAttributes(
            name: "hom", type: .hashOfMaps, keySize: 4, valueSize: 4, maxEntries: 0xFFFF_FFFF,
            innerMap: Self.inner)
        let error = Self.bounded("hash of maps max_entries 0xFFFFFFFF") {
            Self.mapError { try emulator.createMap(attributes, in: vm) }
        }
        #expect(error?.errno == .tooBig)
        #expect(error?.message.contains("hash buckets") == true)
    }

    /// With a budget that allows them, the huge fd arrays are created lazily: only set slots
    /// take memory, and the last index is bounds-checked.
    @Test(arguments: [MapType.progArray, .perfEventArray, .arrayOfMaps])
    func fdArraysAllocateTheirSlotsLazily(type: MapType) throws {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 2, randomSeed: 1))
        let vm = VM(emulator: emulator, configuration: VMConfiguration(memoryLimit: .max))
        let map = try Self.bounded("\(type.cName) max_entries 0xFFFFFFFF, lazily") {
            try emulator.createMap(Self.hugeFDArray(type), in: vm)
        }
        let last: [UInt8] = [0xFE, 0xFF, 0xFF, 0xFF]
        let past: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF]
        switch map {
        case let programs as ProgramArrayMap:
            let program = try load(vm, "mov %r0, 7\nexit")
            #expect(programs.setProgram(program, at: 0xFFFF_FFFE) == nil)
            #expect(programs.program(at: 0xFFFF_FFFE) === program)
            #expect(programs.setProgram(program, at: 0xFFFF_FFFF) == .tooBig)
        case let perf as PerfEventArrayMap:
            #expect(perf.update(key: last, value: [1, 0, 0, 0], flags: .any, cpu: 0) == nil)
            #expect(perf.value(forKey: last) == [1, 0, 0, 0])
            #expect(perf.update(key: past, value: [1, 0, 0, 0], flags: .any, cpu: 0) == .tooBig)
        case let outer as MapOfMaps:
            let inner = try emulator.createMap(Self.inner, in: vm)
            #expect(outer.setInnerMap(inner, forKey: last) == nil)
            #expect(outer.innerMap(forKey: last) === inner)
            #expect(outer.setInnerMap(inner, forKey: past) == .tooBig)
        default:
            Issue.record("unexpected map \(map)")
        }
    }

    /// Eight 4 GiB arrays: the first does not fit the default 1 GiB budget.
    @Test func fourGiBArraysStopAtTheBudget() throws {
        let (vm, emulator) = makeLinuxVM()
        let error = Self.bounded("eight 4 GiB arrays") {
            Self.mapError {
                for i in 0..<8 {
                    _ = try makeMap(emulator, vm, .array, key: 4, value: 8, max: 1 << 29, name: "big\(i)")
                }
                return ()
            }
        }
        #expect(error?.map == "big0")
        #expect(error?.errno == .noMemory)
        #expect(error?.message.contains("needs 4294967296 bytes") == true)
        #expect(error?.message.contains("0 of 1073741824 bytes in use") == true)
    }

    /// Maps that fit one by one but not together: the sum is what the budget holds.
    @Test func theBudgetCountsTheSumOfTheMaps() throws {
        let (vm, emulator) = makeLinuxVM()
        let error = Self.bounded("five 256 MiB arrays") {
            Self.mapError {
                for i in 0..<5 {
                    _ = try makeMap(emulator, vm, .array, key: 4, value: 8, max: 1 << 25, name: "quarter\(i)")
                }
                return ()
            }
        }
        #expect(error?.map == "quarter4")
        #expect(error?.message.contains("1073741824 of 1073741824 bytes in use") == true)
        #expect(vm.memoryBudget.inUse == 1 << 30)
    }

    /// A declared 2 GiB per-CPU array costs host memory only for the pages written.
    @Test func arraysTakeHostMemoryOnlyWhereWritten() throws {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 2, randomSeed: 1))
        let vm = VM(emulator: emulator, configuration: VMConfiguration(memoryLimit: 8 << 30))
        let map = try Self.bounded("a 2 GiB per-CPU array") {
            try makeMap(emulator, vm, .perCPUArray, key: 4, value: 8, max: 1 << 27)
        }
        #expect(vm.memoryBudget.inUse == 2 << 30)
        let key: [UInt8] = [0xFF, 0xFF, 0xFF, 0x07]
        #expect(map.update(key: key, value: [1, 2, 3, 4, 5, 6, 7, 8], flags: .any, cpu: 1) == nil)
        #expect(map.lookupAddress(key: key, cpu: 1) != nil)
    }

    /// A hash map without preallocation is charged per element as it grows: past the budget an
    /// update fails with `-ENOMEM`; a freed slot is reused without a new charge.
    @Test func unpreallocatedHashMapsGrowWithinTheBudget() throws {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 2, randomSeed: 1))
        let vm = VM(emulator: emulator, configuration: VMConfiguration(memoryLimit: 4096))
        let map = try makeMap(emulator, vm, .hash, key: 4, value: 8, max: 1_000_000, flags: .noPrealloc)
        #expect(vm.memoryBudget.inUse == 0)
        var inserted = 0
        while map.update(
            key: littleEndian(UInt32(inserted)), value: [UInt8](repeating: 1, count: 8), flags: .any, cpu: 0) == nil
        {
            inserted += 1
        }
        #expect(inserted == 4096 / (8 + 8 + 48))
        #expect(
            map.update(key: littleEndian(UInt32(inserted)), value: [UInt8](repeating: 1, count: 8), flags: .any, cpu: 0)
                == .noMemory)
        #expect(map.delete(key: littleEndian(0)) == nil)
        #expect(map.update(key: littleEndian(999), value: [UInt8](repeating: 2, count: 8), flags: .any, cpu: 0) == nil)
        // Preallocated maps are charged in full when created.
        #expect(
            Self.mapError { try makeMap(emulator, vm, .hash, key: 4, value: 8, max: 1_000_000, name: "prealloc") }?
                .errno == .noMemory)
    }

    func littleEndian(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }

    // MARK: Helpers

    /// Runs `source` and returns the error it stops with (nil if it returns).
    static func failure(_ source: String, context: (any Context)? = nil) throws -> ExecutionError? {
        do {
            _ = try ContextTestSupport.run(source, context: context)
            return nil
        } catch let error as ExecutionError {
            return error
        }
    }

    @Test func currentCommWithAFourGiBSizeFaultsAtOnce() throws {
        let error = try Self.bounded("bpf_get_current_comm(buf, 0xFFFFFFFF)") {
            try Self.failure("mov %r1, %r10\nadd %r1, -16\nmov32 %r2, -1\ncall 16\nexit")
        }
        #expect(error != nil)
        #expect("\(error.map { "\($0)" } ?? "")".contains("out of bounds"))
    }

    @Test(arguments: [4, 112, 113])
    func probeReadOfAnUnreadableSourceFaultsAtOnce(helper: Int) throws {
        let error = try Self.bounded("probe_read(buf, 0xFFFFFFFF, NULL)") {
            try Self.failure("mov %r1, %r10\nadd %r1, -16\nmov32 %r2, -1\nmov %r3, 0\ncall \(helper)\nexit")
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains("out of bounds"))
    }

    @Test func skbLoadBytesPastThePacketFaultsAtOnce() throws {
        let error = try Self.bounded("bpf_skb_load_bytes(skb, 0, buf, 0xFFFFFFFF)") {
            try Self.failure(
                "mov %r2, 0\nmov %r3, %r10\nadd %r3, -16\nmov32 %r4, -1\ncall 26\nexit",
                context: SKBContext(packet: [UInt8](repeating: 0xAB, count: 64)))
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains("out of bounds"))
    }

    /// A destination that is big enough is still zeroed when the source is unreadable.
    @Test func probeReadZeroesAValidDestinationInPlace() throws {
        let (r0, process) = try ContextTestSupport.run(
            """
            mov %r1, 0x55
            stxdw [%r10-8], %r1
            mov %r1, %r10
            add %r1, -8
            mov %r2, 8
            mov %r3, 0
            call 4
            exit
            """)
        #expect(r0 == Errno.fault.helperReturnValue)
        let top = process.stackBase + UInt64(process.stackSize)
        #expect(try process.memory.read(top - 8, count: 8) == [UInt8](repeating: 0, count: 8))
    }

    // MARK: Contexts

    /// Structs sharing members (`s(n) = [s(n-1), s(n-1)]`): the layout is worked out once per
    /// struct, and a size past the region limit is an error naming the struct.
    @Test func genericStructsSharingMembersAreLinear() throws {
        func json(levels: Int) -> String {
            var memory = [#"{"name":"s0","type":"block","value":{"value":"AQ=="}}"#]
            for level in 1...levels {
                memory.append(
                    #"{"name":"s\#(level)","type":"struct","value":[{"name":"a","memory":"s\#(level - 1)"},{"name":"b","memory":"s\#(level - 1)"}]}"#
                )
            }
            return
                #"{"name":"g","type":"generic","ctx":{"registers":{"r1":"s\#(levels)"},"memory":[\#(memory.joined(separator: ","))]}}"#
        }
        let error = Self.bounded("a 40-level shared struct") { Self.contextError(Array(json(levels: 40).utf8)) }
        #expect(error?.message.contains("larger than the 4294967296-byte region limit") == true)
        // 20 levels: 1 MiB, laid out and attached quickly.
        let loaded = try Self.bounded("a 20-level shared struct") {
            try ContextFile.load(data: Array(json(levels: 20).utf8))
        }
        let (r0, _) = try Self.bounded("attaching a 20-level shared struct") {
            try ContextTestSupport.run("mov %r2, 1048575\nadd %r1, %r2\nldxb %r0, [%r1]\nexit", context: loaded)
        }
        #expect(r0 == 1)
    }

    @Test func genericStructsNestedDeeperThan64AreAnError() throws {
        var memory = [#"{"name":"s0","type":"block","value":{"value":"AQ=="}}"#]
        for level in 1...1000 {
            memory.append(#"{"name":"s\#(level)","type":"struct","value":[{"name":"a","memory":"s\#(level - 1)"}]}"#)
        }
        let text = #"{"name":"g","type":"generic","ctx":{"memory":[\#(memory.joined(separator: ","))]}}"#
        let error = Self.bounded("a 1000-deep struct chain") { Self.contextError(Array(text.utf8)) }
        #expect(error?.message.contains("nested deeper than 64 levels") == true)
        // 64 levels are fine.
        let fine = #"{"name":"g","type":"generic","ctx":{"memory":[\#(memory.prefix(65).joined(separator: ","))]}}"#
        #expect(throws: Never.self) { try ContextFile.load(data: Array(fine.utf8)) }
    }

    @Test(arguments: [
        (
            #"{"name":"x","type":"xdp_md","ctx":{"packet":"AAAA","headrom":64}}"#, "ctx.headrom",
            "unknown field \"headrom\""
        ),
        (#"{"name":"x","type":"xdp_md","cxt":{}}"#, "cxt", "unknown field \"cxt\""),
        (
            #"{"name":"s","type":"sk_buff","ctx":{"sock":{"srcport":80}}}"#, "ctx.sock.srcport",
            "unknown field \"srcport\""
        ),
        (
            #"{"name":"g","type":"generic","ctx":{"memory":[{"name":"b","type":"block","value":{"valu":"AA=="}}]}}"#,
            "ctx.memory[0].value.valu", "unknown field \"valu\""
        ),
    ])
    func misspeltContextFieldsAreErrors(json: String, path: String, message: String) throws {
        do {
            _ = try ContextFile.load(data: Array(json.utf8))
            Issue.record("\(json) loaded")
        } catch {
            #expect(error.path == path)
            #expect(error.message.contains(message))
        }
    }

    /// Size limits apply before parsing and decoding: a 64 MiB file is refused unparsed, and a
    /// base64 packet past the context type's limit is refused before it is decoded.
    @Test func hugeContextFilesAreRefusedBeforeDecoding() throws {
        let huge = [UInt8](repeating: 0x20, count: 64 << 20)
        let error = Self.bounded("a 64 MiB context file") { Self.contextError(huge) }
        #expect(error?.message.contains("more than the 16777216 a context file may have") == true)
        let field = JSONField(.string(String(repeating: "A", count: 1 << 20)), path: "ctx.packet")
        #expect(throws: ContextError(path: "ctx.packet", "about 786432 bytes exceed the limit of 1000")) {
            try field.optionalBase64(limit: 1000)
        }
    }

    /// Packet buffers are charged too: a context bigger than the budget fails when attached.
    @Test func packetBuffersAreChargedToTheBudget() throws {
        let emulator = LinuxEmulator()
        let vm = VM(emulator: emulator, configuration: VMConfiguration(memoryLimit: 1024))
        let program = try vm.load(Assembler.assemble("mov %r0, 2\nexit"))
        do {
            _ = try vm.makeProcess(for: program, context: XDPContext(packet: [UInt8](repeating: 0, count: 2048)))
            Issue.record("a 2 KiB packet fit a 1 KiB budget")
        } catch {
            #expect("\(error)".contains("the VM's memory budget"))
        }
        #expect(vm.memoryBudget.inUse == 0)
    }
}
