import MimicCore
import MimicLinux
import MimicTestSupport
import Testing

/// Array-map lookups compiled inline (`InlineArrayLookup`, the kernel's `array_map_gen_lookup`)
/// and the helpers' C-ABI entries (`DirectHelper`): the same results, registers, faults and map
/// contents as the helper, under both engines.
@Suite("Inline array lookups and direct helper calls")
struct InlineLookupTests {
    static let engines: [ExecutionEngine] = [.interpreter, .jit]

    func linuxVM(_ engine: ExecutionEngine, cpus: Int = 2) -> (vm: VM, emulator: LinuxEmulator) {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: cpus, randomSeed: 1))
        return (VM(emulator: emulator, configuration: VMConfiguration(engine: engine)), emulator)
    }

    /// `R0 = bpf_map_lookup_elem(map, &key)`, with R3–R5 set so that the registers after the
    /// call show whether anything but R0 changed.
    func lookupProgram(_ handle: UInt64, key: Int32) -> String {
        """
        stw [%r10-4], \(key)
        mov %r3, 3
        mov %r4, 4
        mov %r5, 5
        lddw %r1, \(hex(handle))
        mov %r2, %r10
        add %r2, -4
        call 1
        exit
        """
    }

    /// The bytes of `value` as they appear in an `imm64` of the machine code.
    func littleEndian(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }

    func contains(_ code: [UInt8], _ pattern: [UInt8]) -> Bool {
        guard code.count >= pattern.count else { return false }
        return (0...(code.count - pattern.count)).contains { Array(code[$0..<$0 + pattern.count]) == pattern }
    }

    /// Runs `process` to its end one `step()` at a time: always the interpreter.
    func stepToEnd(_ process: MimicCore.Process) throws -> UInt64 {
        while true {
            if case .exited(let r0) = try process.step() { return r0 }
        }
    }

    @Test(arguments: engines)
    func inBoundsIndicesGiveTheValueAddressAndOthersNull(engine: ExecutionEngine) throws {
        let (vm, emulator) = linuxVM(engine)
        // 12-byte values: a stride of 16, as the kernel rounds values up to 8.
        let map = try #require(try makeMap(emulator, vm, .array, key: 4, value: 12, max: 5) as? ArrayMap)
        for key: Int32 in [0, 1, 4, 5, 6, 1000, -1] {
            let program = try load(vm, lookupProgram(map.handle, key: key))
            let process = try vm.makeProcess(for: program)
            let r0 = try process.run()
            let expected = key >= 0 && key < 5 ? map.baseAddress + UInt64(key) * 16 : 0
            #expect(r0 == expected, "key \(key)")
            let registers = process.registers.all
            #expect(registers[1] == map.handle && registers[2] == registers[10] &- 4)
            #expect(Array(registers[3...5]) == [3, 4, 5])
            if engine == .jit, expected != 0 {
                // The compiled code carries the value's address (the key is a constant stored
                // before the call): the lookup is inline.
                #expect(contains(try #require(program.machineCode), littleEndian(expected)))
            }
        }
    }

    /// Per-CPU arrays (the kernel's `percpu_array_map_gen_lookup`): the vCPU's value of every
    /// element, NULL past the end, from one compiled program shared by processes on every vCPU.
    @Test(arguments: engines)
    func perCPUArraysAreLookedUpPerVCPU(engine: ExecutionEngine) throws {
        let (vm, emulator) = linuxVM(engine, cpus: 3)
        // 12-byte values: a stride of 16; each CPU's 48 bytes in an area of 128.
        let map = try #require(try makeMap(emulator, vm, .perCPUArray, key: 4, value: 12, max: 3) as? ArrayMap)
        for key: Int32 in [0, 1, 2, 3, 1000, -1] {
            let program = try load(vm, lookupProgram(map.handle, key: key))
            for cpu in 0..<3 {
                let process = try vm.makeProcess(for: program, vCPU: cpu)
                let r0 = try process.run()
                // Each CPU's values together, in an area of its own aligned to 128 bytes.
                let expected = key >= 0 && key < 3 ? map.baseAddress + UInt64(cpu * 128 + Int(key) * 16) : 0
                #expect(r0 == expected, "key \(key) cpu \(cpu)")
                #expect(Array(process.registers.all[3...5]) == [3, 4, 5])
                // The same process run again (its context reused) looks up the same value.
                try process.reset()
                #expect(try process.run() == expected, "key \(key) cpu \(cpu), again")
            }
            if engine == .jit, key >= 0, key < 3 {
                // The compiled code carries CPU 0's value address (the key is a constant stored
                // before the call): the lookup is inline.
                let address = map.baseAddress + UInt64(key) * 16
                #expect(contains(try #require(program.machineCode), littleEndian(address)))
            }
        }
    }

    /// Keys stored as constants before the call (`constantStackWord`): an immediate, a register
    /// set by a `mov`, the last of several stores, and keys that are not constants there (a
    /// store through another register, a register set otherwise, R10 moved) give what the
    /// interpreter gives, run whole and resumed after every slot with the host changing the
    /// stored register meanwhile.
    @Test func constantKeysStoredBeforeTheCallGiveTheHelpersAnswers() throws {
        for map in [MapType.array, .perCPUArray] {
            var outcomes: [ExecutionEngine: [String]] = [:]
            for engine in Self.engines {
                let (vm, emulator) = linuxVM(engine, cpus: 2)
                let m = try #require(try makeMap(emulator, vm, map, key: 4, value: 8, max: 4) as? ArrayMap)
                let handle = hex(m.handle)
                let programs = [
                    "mov32 %r1, 2\nstxw [%r10-4], %r1\nlddw %r1, \(handle)\nmov %r2, %r10\nadd %r2, -4\ncall 1\nexit",
                    "stw [%r10-4], 1\nstw [%r10-8], 9\nstw [%r10-4], 3\nlddw %r1, \(handle)\nmov %r2, %r10\nadd %r2, -4\ncall 1\nexit",
                    "stw [%r10-4], 1\nmov %r3, %r10\nstw [%r3-4], 2\nlddw %r1, \(handle)\nmov %r2, %r10\nadd %r2, -4\ncall 1\nexit",
                    "stw [%r10-4], 1\nstb [%r10-3], 1\nlddw %r1, \(handle)\nmov %r2, %r10\nadd %r2, -4\ncall 1\nexit",
                    "mov %r1, 1\nadd %r1, 1\nstxw [%r10-4], %r1\nlddw %r1, \(handle)\nmov %r2, %r10\nadd %r2, -4\ncall 1\nexit",
                    "mov %r1, 9\nstxw [%r10-4], %r1\nlddw %r1, \(handle)\nmov %r2, %r10\nadd %r2, -4\ncall 1\nexit",
                    "ldxw %r1, [%r10-8]\nstxw [%r10-4], %r1\nlddw %r1, \(handle)\nmov %r2, %r10\nadd %r2, -4\ncall 1\nexit",
                ]
                for (index, source) in programs.enumerated() {
                    let program = try load(vm, source)
                    for cpu in 0..<2 {
                        // Whole, then resumed after each slot with R1 (the stored register of
                        // the first, fifth and sixth programs) set to 1 by the host.
                        for steps in 0..<6 {
                            let process = try vm.makeProcess(for: program, vCPU: cpu)
                            for _ in 0..<steps { _ = try process.step() }
                            if steps > 0 { process.registers[1] = 1 }
                            let result: String
                            do {
                                let r0 = try process.run()
                                let offset = r0 == 0 ? "NULL" : "+\(r0 &- m.baseAddress)"
                                result = "\(offset) \(process.registers.all[1...5]) \(process.instructionsExecuted)"
                            } catch let error as ExecutionError {
                                result = "\(error.kind.code) \(process.pc)"
                            } catch {
                                result = "\(error)"
                            }
                            outcomes[engine, default: []].append("\(map) \(index) cpu \(cpu) steps \(steps): \(result)")
                        }
                    }
                }
            }
            #expect(outcomes[.jit] == outcomes[.interpreter])
            #expect(outcomes[.jit]?.count == 7 * 2 * 6)
        }
    }

    @Test func perCPUArrayLookupsWhileTheMapRecordsTouchesGoThroughTheHelper() throws {
        let (vm, emulator) = linuxVM(.jit, cpus: 2)
        let map = try #require(try makeMap(emulator, vm, .perCPUArray, key: 4, value: 8, max: 8) as? ArrayMap)
        let program = try load(vm, lookupProgram(map.handle, key: 5))
        #expect(try vm.makeProcess(for: program, vCPU: 1).run() == map.baseAddress + 128 + 5 * 8)
        #expect(map.touchedIndices.isEmpty)
        map.trackTouches()
        #expect(try vm.makeProcess(for: program, vCPU: 1).run() == map.baseAddress + 128 + 5 * 8)
        #expect(map.touchedIndices == [5])
    }

    /// A lookup whose map and key the instructions before it prove (`lddw %r1`, `mov %r2, %r10;
    /// add %r2, -4`) is compiled without the handle compare and the key's translation. A run
    /// resumed between those instructions and the call (after `step()`), with R1 or R2 changed by
    /// the host meanwhile, takes the checked copy: it gives what the interpreter gives.
    @Test func aRunResumedBetweenTheArgumentsAndTheCallUsesTheRegistersAsTheyAre() throws {
        let (vm, emulator) = linuxVM(.jit, cpus: 2)
        let a = try makeMap(emulator, vm, .perCPUArray, key: 4, value: 8, max: 4, name: "a")
        let b = try makeMap(emulator, vm, .array, key: 4, value: 8, max: 4, name: "b")
        let hash = try makeMap(emulator, vm, .hash, key: 4, value: 8, max: 4, name: "h")
        #expect(hash.update(key: le32(2), value: le64(7), flags: .any, cpu: 0) == nil)
        for map in [a, hash] {
            let program = try load(
                vm,
                """
                stw [%r10-4], 1
                stw [%r10-8], 2
                lddw %r1, \(hex(map.handle))
                mov %r2, %r10
                add %r2, -4
                call 1
                exit
                """)
            #expect(try vm.makeProcess(for: program, vCPU: 1).run() == map.lookupAddress(key: le32(1), cpu: 1) ?? 0)
            // Resumed at the lddw (slot 2), the mov, the add and the call, with R1 and R2 as they
            // were, R1 another map (b, or the hash), R2 the key at R10 - 8, or both.
            for steps in 2...5 {
                for change in 0..<6 {
                    var outcomes: [String] = []
                    for compiled in [true, false] {
                        let process = try vm.makeProcess(for: program, vCPU: 1)
                        for _ in 0..<steps { _ = try process.step() }
                        if change == 1 || change == 3 { process.registers[1] = b.handle }
                        if change == 2 || change == 4 { process.registers[1] = hash.handle }
                        if change >= 3 { process.registers[2] = process.registers[10] &- 8 }
                        let r0: UInt64
                        if compiled {
                            r0 = try process.run()
                        } else {
                            r0 = try stepToEnd(process)
                        }
                        outcomes.append("\(r0) \(process.registers.all) \(process.instructionsExecuted)")
                    }
                    #expect(outcomes[0] == outcomes[1], "\(map.name): \(steps) steps, change \(change)")
                }
            }
        }
    }

    /// Writes `value` into element 3 through the lookup's pointer; the reader returns it.
    func writer(_ handle: UInt64, _ value: Int32) -> String {
        """
        stw [%r10-4], 3
        lddw %r1, \(hex(handle))
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        stdw [%r0], \(value)
        out:
        exit
        """
    }

    func reader(_ handle: UInt64) -> String {
        """
        stw [%r10-4], 3
        lddw %r1, \(hex(handle))
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        ldxdw %r0, [%r0]
        out:
        exit
        """
    }

    @Test func valuesWrittenByOneEngineAreReadByTheOther() throws {
        // `run()` executes compiled code, `step()` always interprets: one VM, one map, both engines.
        let (vm, emulator) = linuxVM(.jit)
        let map = try makeMap(emulator, vm, .array, key: 4, value: 8, max: 4)
        let write1 = try load(vm, writer(map.handle, 0x1122))
        let write2 = try load(vm, writer(map.handle, 0x3344))
        let read = try load(vm, reader(map.handle))
        #expect(write1.machineCode != nil)
        _ = try vm.makeProcess(for: write1).run()
        #expect(try stepToEnd(vm.makeProcess(for: read)) == 0x1122)
        #expect(map.value(forKey: le32(3)) == le64(0x1122))
        _ = try stepToEnd(vm.makeProcess(for: write2))
        #expect(try vm.makeProcess(for: read).run() == 0x3344)
        #expect(map.value(forKey: le32(3)) == le64(0x3344))
    }

    @Test(arguments: engines)
    func aCallSiteReachedWithAnotherMapUsesThatMap(engine: ExecutionEngine) throws {
        // The JIT guesses the map from the `lddw` before the call (B) and checks R1 at run time:
        // the first pass arrives with A by a jump.
        let (vm, emulator) = linuxVM(engine)
        let a = try #require(try makeMap(emulator, vm, .array, key: 4, value: 8, max: 4, name: "a") as? ArrayMap)
        let b = try #require(try makeMap(emulator, vm, .array, key: 4, value: 8, max: 2, name: "b") as? ArrayMap)
        let program = try load(
            vm,
            """
            mov %r6, 0
            loop:
            stw [%r10-4], 1
            lddw %r1, \(hex(a.handle))
            jeq %r6, 0, call
            lddw %r1, \(hex(b.handle))
            call:
            mov %r2, %r10
            add %r2, -4
            call 1
            jeq %r6, 0, first
            mov %r8, %r0
            exit
            first:
            mov %r7, %r0
            mov %r6, 1
            ja loop
            """)
        let process = try vm.makeProcess(for: program)
        _ = try process.run()
        #expect(process.registers[7] == a.baseAddress + 8)
        #expect(process.registers[8] == b.baseAddress + 8)
    }

    @Test func lookupsWhileAMapRecordsTouchesGoThroughTheHelper() throws {
        let (vm, emulator) = linuxVM(.jit)
        let map = try #require(try makeMap(emulator, vm, .array, key: 4, value: 8, max: 8) as? ArrayMap)
        let program = try load(vm, lookupProgram(map.handle, key: 5))
        #expect(try vm.makeProcess(for: program).run() == map.baseAddress + 40)
        #expect(map.touchedIndices.isEmpty)
        map.trackTouches()
        #expect(try vm.makeProcess(for: program).run() == map.baseAddress + 40)
        #expect(map.touchedIndices == [5])
    }

    /// Hash-map lookups: compiled code calls the map's search directly (`InlineHashLookup`, the
    /// kernel's `htab_map_gen_lookup`), and gives the helper's answers — the value's address (the
    /// vCPU's, for per-CPU maps) or NULL, R1–R5 kept — and an LRU lookup still counts as a use.
    @Test(arguments: engines)
    func hashLookupsGiveTheHelpersAnswers(engine: ExecutionEngine) throws {
        for type in [MapType.hash, .perCPUHash, .lruHash, .lruPerCPUHash] {
            for keySize in [4, 13] {
                let (vm, emulator) = linuxVM(engine, cpus: 2)
                let map = try makeMap(emulator, vm, type, key: keySize, value: 8, max: 3)
                func key(_ n: UInt8) -> [UInt8] { [UInt8](repeating: n, count: keySize) }
                for n: UInt8 in 1...3 {
                    #expect(map.update(key: key(n), value: le64(UInt64(n)), flags: .any, cpu: 0) == nil)
                }
                // Looked up from the host in insertion order: the LRU order stays 1, 2, 3.
                let expected = (0..<2).map { cpu in (1...3).map { map.lookupAddress(key: key($0), cpu: cpu) } }
                for (n, cpu) in [(1, 1), (9, 0), (1, 0)] {
                    let stores = (0..<keySize).map { "stb [%r10-\(16 - $0)], \(n)" }.joined(separator: "\n")
                    let program = try load(
                        vm,
                        """
                        \(stores)
                        mov %r3, 3
                        mov %r4, 4
                        mov %r5, 5
                        lddw %r1, \(hex(map.handle))
                        mov %r2, %r10
                        add %r2, -16
                        call 1
                        exit
                        """)
                    let process = try vm.makeProcess(for: program, vCPU: cpu)
                    let r0 = try process.run()
                    #expect(r0 == (n == 1 ? expected[cpu][0] ?? 1 : 0), "\(type.cName) key size \(keySize) key \(n)")
                    let registers = process.registers.all
                    #expect(registers[1] == map.handle && registers[2] == registers[10] &- 16)
                    #expect(Array(registers[3...5]) == [3, 4, 5])
                    if engine == .jit {
                        let code = try #require(program.machineCode)
                        if type == .hash && keySize == 4 {
                            // A plain map with 4-byte keys: the code searches its table itself
                            // (`InlineHashProbe`: the hash's first multiplier is in the code).
                            #expect(contains(code, littleEndian(0x9E37_79B9_7F4A_7C15)))
                        } else {
                            // The compiled code carries the map's address: it calls the search directly.
                            let address = UInt64(UInt(bitPattern: Unmanaged.passUnretained(map as AnyObject).toOpaque()))
                            #expect(contains(code, littleEndian(address)))
                        }
                    }
                }
                if type == .lruHash || type == .lruPerCPUHash {
                    // Key 1 was used last: a fourth key evicts key 2, the least recently used.
                    #expect(map.update(key: key(4), value: le64(4), flags: .any, cpu: 0) == nil)
                    #expect(Set(map.keys) == [key(1), key(3), key(4)])
                }
            }
        }
    }

    /// The inline search of plain hash maps (`InlineHashProbe`) over a table with probe chains,
    /// removed keys (tombstones), reused slots and a grown table, for 4- and 8-byte keys, from a
    /// key in the frame and from a key in a map value (translated): R0 is the helper's answer for
    /// every key, present or not, and R1–R5 are kept.
    @Test func hashProbesGiveTheHelpersAnswers() throws {
        for keySize in [4, 8] {
            let (vm, emulator) = linuxVM(.jit)
            let map = try makeMap(emulator, vm, .hash, key: keySize, value: 8, max: 200, name: "h")
            let keys = try makeMap(emulator, vm, .array, key: 4, value: 8, max: 1, name: "k")
            func key(_ n: UInt64) -> [UInt8] { Array(le64(n &* 0x0101_0001_0003)[0..<keySize]) }
            for n in UInt64(0)..<150 {
                #expect(map.update(key: key(n), value: le64(n), flags: .any, cpu: 0) == nil)
            }
            for n in stride(from: UInt64(0), to: 150, by: 3) { #expect(map.delete(key: key(n)) == nil) }
            for n in UInt64(150)..<170 { #expect(map.update(key: key(n), value: le64(n), flags: .any, cpu: 0) == nil) }
            let loadKey = keySize == 8 ? "ldxdw" : "ldxw"
            let storeKey = keySize == 8 ? "stxdw" : "stxw"
            let fromStack = try load(
                vm,
                """
                lddw %r1, \(hex(keys.handle))
                mov %r2, %r10
                add %r2, -4
                stw [%r10-4], 0
                call 1
                \(loadKey) %r6, [%r0]
                \(storeKey) [%r10-16], %r6
                mov %r3, 3
                mov %r4, 4
                mov %r5, 5
                lddw %r1, \(hex(map.handle))
                mov %r2, %r10
                add %r2, -16
                call 1
                exit
                """)
            let fromValue = try load(
                vm,
                """
                lddw %r1, \(hex(keys.handle))
                mov %r2, %r10
                add %r2, -4
                stw [%r10-4], 0
                call 1
                mov %r2, %r0
                mov %r3, 3
                mov %r4, 4
                mov %r5, 5
                lddw %r1, \(hex(map.handle))
                call 1
                exit
                """)
            for program in [fromStack, fromValue] {
                #expect(contains(try #require(program.machineCode), littleEndian(0x9E37_79B9_7F4A_7C15)))
                for n in UInt64(0)..<200 {
                    #expect(keys.update(key: le32(0), value: le64(n &* 0x0101_0001_0003), flags: .any, cpu: 0) == nil)
                    let process = try vm.makeProcess(for: program)
                    let r0 = try process.run()
                    #expect(r0 == (map.lookupAddress(key: key(n), cpu: 0) ?? 0), "key size \(keySize) key \(n)")
                    #expect((n < 170 && !(n < 150 && n % 3 == 0)) == (r0 != 0))
                    #expect(Array(process.registers.all[3...5]) == [3, 4, 5])
                    #expect(process.registers[1] == map.handle)
                }
            }
        }
    }

    @Test func aBadKeyPointerFaultsAlikeUnderBothEngines() throws {
        var descriptions: [String] = []
        for engine in Self.engines {
            let (vm, emulator) = linuxVM(engine)
            let array = try makeMap(emulator, vm, .array, key: 4, value: 8, max: 4, name: "array")
            let hash = try makeMap(emulator, vm, .hash, key: 4, value: 8, max: 4, name: "hash")
            for (map, helper) in [(array, 1), (hash, 1), (hash, 2), (hash, 3), (array, 3)] {
                let program = try load(
                    vm, "lddw %r1, \(hex(map.handle))\nmov %r2, 16\nmov %r3, %r10\ncall \(helper)\nexit")
                let error = try #require(throws: ExecutionError.self) { try vm.makeProcess(for: program).run() }
                #expect(error.code == .helperFailed && error.kind.failure?.fault?.address == 16, "\(error)")
                descriptions.append("\(map.name) \(helper): \(error.pc) \(error)")
            }
        }
        #expect(Array(descriptions.prefix(5)) == Array(descriptions.suffix(5)))
    }

    /// A run of lookups, updates and deletes on a hash, an array and a per-CPU array: R0 of each
    /// step and the maps' contents after, equal under both engines.
    @Test func mapHelperResultsAgreeUnderBothEngines() throws {
        var outcomes: [[String]] = []
        for engine in Self.engines {
            let (vm, emulator) = linuxVM(engine)
            let hash = try makeMap(emulator, vm, .hash, key: 4, value: 8, max: 2, name: "hash")
            let array = try makeMap(emulator, vm, .array, key: 4, value: 8, max: 2, name: "array")
            let perCPU = try makeMap(emulator, vm, .perCPUArray, key: 4, value: 8, max: 2, name: "pcpu")
            var outcome: [String] = []
            func call(_ map: any BPFMap, _ helper: Int, key: Int32, value: Int32 = 7, flags: Int32 = 0) throws {
                let program = try load(
                    vm,
                    """
                    stw [%r10-4], \(key)
                    stdw [%r10-16], \(value)
                    lddw %r1, \(hex(map.handle))
                    mov %r2, %r10
                    add %r2, -4
                    mov %r3, %r10
                    add %r3, -16
                    mov %r4, \(flags)
                    call \(helper)
                    jne %r0, 0, nonzero
                    exit
                    nonzero:
                    jsgt %r0, 0xffff, pointer
                    exit
                    pointer:
                    ldxdw %r0, [%r0]
                    exit
                    """)
                let process = try vm.makeProcess(for: program, vCPU: 1)
                let r0 = try process.run()
                outcome.append("\(map.name) \(helper) \(key): \(Int64(bitPattern: r0)) \(process.registers.all[1...9])")
            }
            for map in [hash, array, perCPU] {
                try call(map, 1, key: 1)
                try call(map, 2, key: 1, value: 11, flags: 1) // BPF_NOEXIST
                try call(map, 2, key: 1, value: 12)
                try call(map, 1, key: 1)
                try call(map, 2, key: 2, value: 13, flags: 2) // BPF_EXIST
                try call(map, 2, key: 0, value: 14)
                try call(map, 2, key: 5, value: 15)
                try call(map, 3, key: 1)
                try call(map, 3, key: 1)
                try call(map, 1, key: 1)
                try call(map, 1, key: 0)
            }
            outcome.append(
                "\(hash.keys) \(array.perCPUValues(forKey: le32(0)) ?? []) \(perCPU.perCPUValues(forKey: le32(1)) ?? [])"
            )
            outcomes.append(outcome)
        }
        #expect(outcomes[0] == outcomes[1])
    }

    /// `bpf_get_smp_processor_id` is computed inline by compiled code (`InlineHelper`): the
    /// vCPU, for every vCPU; a replayed capture makes the code call the helper, which replays, and
    /// a reset without the capture lets the inline code answer again.
    @Test func processorIDIsInlineInCompiledCode() throws {
        let (vm, _) = linuxVM(.jit, cpus: 4)
        let program = try load(vm, "call 8\nmov %r6, %r0\ncall 8\nlsh %r0, 8\nor %r0, %r6\nexit")
        for cpu in 0..<4 {
            #expect(try vm.makeProcess(for: program, vCPU: cpu).run() == UInt64(cpu << 8 | cpu))
        }
        // `mov eax, [r12 + 8 × 15]`: the vCPU's context word, loaded where the call was.
        #expect(contains(try #require(program.machineCode), [0x41, 0x8B, 0x44, 0x24, 0x78]))
        let captured = CapturedContext(
            subContext: GenericContext(),
            helperCalls: [8: [HelperCallRecord(helper: 8, results: [(0, .number(42))])]])
        let process = try vm.makeProcess(for: program, context: captured, vCPU: 3)
        #expect(process.inlineHelpersBypassed)
        #expect(try process.run() == 3 << 8 | 42)
        try process.reset()
        #expect(!process.inlineHelpersBypassed)
        #expect(try process.run() == 3 << 8 | 3)
    }

    @Test(arguments: engines)
    func directHelpersGiveWayToAReplayedCapture(engine: ExecutionEngine) throws {
        let (vm, _) = linuxVM(engine)
        let program = try load(vm, "call 8\nmov %r6, %r0\ncall 8\nlsh %r0, 8\nor %r0, %r6\nexit")
        let captured = CapturedContext(
            subContext: GenericContext(),
            helperCalls: [8: [HelperCallRecord(helper: 8, results: [(0, .number(42))])]])
        // The first call replays the record; the second emulates (vCPU 1).
        let process = try vm.makeProcess(for: program, context: captured, vCPU: 1)
        #expect(try process.run() == 1 << 8 | 42)
        // Without a capture, the direct entry answers: the vCPU.
        #expect(try vm.makeProcess(for: program, vCPU: 1).run() == 1 << 8 | 1)
    }

    /// A lookup whose direct entry declines (R1 names no map, or the key pointer is not
    /// readable) and whose helper then fails leaves R0 as it was, under both engines (the JIT's
    /// direct call once returned the decline's 0 in R0: found by the fuzzer's map mode).
    @Test(arguments: engines)
    func aFailedLookupAfterADeclineKeepsR0(engine: ExecutionEngine) throws {
        let (vm, emulator) = linuxVM(engine)
        let map = try makeMap(emulator, vm, .hash, key: 4, value: 8, max: 4)
        for (r1, r2) in [("mov %r1, %r9", "mov %r2, %r10\nadd %r2, -8"), ("mov %r1, %r8", "mov %r2, 8")] {
            let program = try load(
                vm,
                """
                mov %r0, 255
                mov %r9, -8
                lddw %r8, \(hex(map.handle))
                \(r1)
                \(r2)
                call 1
                exit
                """)
            let process = try vm.makeProcess(for: program)
            #expect(throws: ExecutionError.self) { _ = try process.run() }
            #expect(process.registers[0] == 255, "\(engine) \(r1)")
        }
    }
}
