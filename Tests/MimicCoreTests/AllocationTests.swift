import CMallocCounter
import Testing
import MimicCore

/// The interpreter must not allocate per instruction: the number of `malloc` calls during a run
/// may not grow with the number of instructions executed (swift-nio's allocation-counter tests
/// are the model). Each program loops `rounds` times over the instructions under test.
@Suite(
    "Interpreter: no allocation per instruction",
    .enabled(if: mimic_malloc_counter_available(), "malloc cannot be counted here (needs glibc, no sanitizer)"))
struct AllocationTests {
    /// Mallocs during one `run()` of a fresh process running `body` `rounds` times.
    func allocations(
        rounds: Int32, emulator: (any Emulator)? = nil, memory: [UInt8] = [],
        @CodeBuilder body: () -> [RawInstruction]
    ) throws -> (mallocs: UInt64, instructions: UInt64) {
        let loop = body()
        let code = Asm.program {
            Asm.mov64(6, imm: 0)
            Asm.mov64(9, src: 1) // the memory's address, kept for the body
            loop
            Asm.add64(6, imm: 1)
            Asm.jump(.jumpLess64Imm, 6, imm: rounds, Int16(-(loop.count + 2)))
            Asm.mov64(0, imm: 0)
            Asm.exit()
            // A local function for the body to call: r0 = r1 + 1.
            Asm.mov64(0, src: 1)
            Asm.add64(0, imm: 1)
            Asm.exit()
        }
        let vm = VM(emulator: emulator)
        let program = try vm.load(code)
        // The first run compiles the program (the JIT's engines): not counted.
        _ = try vm.makeProcess(for: program, context: MemoryContext(memory)).run()
        let process = try vm.makeProcess(for: program, context: MemoryContext(memory))
        mimic_malloc_counter_start()
        let result = try process.run()
        let mallocs = mimic_malloc_counter_stop()
        #expect(result == 0)
        return (mallocs, process.instructionsExecuted)
    }

    /// Runs the body 10 and 10,000 times; the second run may not allocate more.
    func expectNoGrowth(
        _ what: String, emulator: (any Emulator)? = nil, memory: [UInt8] = [],
        @CodeBuilder body: () -> [RawInstruction]
    ) throws {
        _ = try allocations(rounds: 10, emulator: emulator, memory: memory, body: body) // warm-up
        let short = try allocations(rounds: 10, emulator: emulator, memory: memory, body: body)
        let long = try allocations(rounds: 10_000, emulator: emulator, memory: memory, body: body)
        #expect(long.instructions > 500 * short.instructions, "\(what): the long run is long")
        #expect(
            long.mallocs <= short.mallocs,
            "\(what): \(long.mallocs) mallocs for \(long.instructions) instructions, \(short.mallocs) for \(short.instructions)"
        )
    }

    @Test func counterCountsAllocations() {
        mimic_malloc_counter_start()
        let array = [Int](repeating: 1, count: Int.random(in: 10...20))
        let mallocs = mimic_malloc_counter_stop()
        #expect(array.count >= 10)
        #expect(mallocs >= 1, "an array allocation was not counted")
    }

    @Test func loadsAndStores() throws {
        try expectNoGrowth("loads and stores", memory: [UInt8](repeating: 7, count: 64)) {
            Asm.store(.store64Reg, 10, off: -8, src: 6)
            Asm.load(.load64, 2, 10, off: -8)
            Asm.store(.store32Imm, 10, off: -16, imm: 5)
            Asm.load(.loadSigned16, 3, 10, off: -16)
            Asm.load(.load8, 4, 9, off: 3) // the context memory
            Asm.store(.store16Reg, 9, off: 8, src: 4)
            Asm.atomic(.atomicFetchAdd64, 10, off: -8, src: 2)
        }
    }

    @Test func legacyPacketLoads() throws {
        try expectNoGrowth("ld_abs / ld_ind", memory: [UInt8](repeating: 0xAB, count: 64)) {
            Asm.mov64(7, imm: 4)
            Asm.loadAbsolute(.loadPacketAbsolute32, imm: 8)
            Asm.loadAbsolute(.loadPacketAbsolute16, imm: 2)
            Asm.loadIndirect(.loadPacketIndirect8, 7, imm: 10)
            Asm.loadIndirect(.loadPacketIndirect32, 7, imm: 0)
        }
    }

    @Test func helperCalls() throws {
        try expectNoGrowth("helper calls", emulator: ConformanceEmulator()) {
            Asm.call(2) // no_op
            Asm.mov64(1, imm: 1)
            Asm.mov64(2, imm: 2)
            Asm.call(0) // gather_bytes
            Asm.mov64(1, imm: 2)
            Asm.callx(1) // no_op by id in a register
        }
    }

    @Test func localCalls() throws {
        // Slots 2-5; the loop ends at 7 and the program at 9, the local function starts at 10.
        try expectNoGrowth("local calls") {
            Asm.mov64(1, src: 6)
            Asm.callLocal(6) // 3 -> 10, the function after the loop
            Asm.mov64(1, src: 0)
            Asm.callLocal(4) // 5 -> 10
        }
    }
}
