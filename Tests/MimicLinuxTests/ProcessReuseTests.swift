import Testing
import MimicCore
import MimicMemory
@testable import MimicLinux

/// A process reset for each packet recycles its Linux state and packet buffer
/// (`Process.takeRecycledEmulatorState`, `LinuxProcessState.clearForReuse`): each run must
/// still see exactly what a new process would.
@Suite struct ProcessReuseTests {
    /// Returns `data_end - data` after writing 0xAA at `data`.
    static let source = """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        stb [%r2+0], 0xAA
        mov %r0, %r3
        sub %r0, %r2
        exit
        """

    @Test func resetRecyclesStateButNotAddresses() throws {
        let (vm, program) = try ContextTestSupport.load(Self.source)
        let big = [UInt8](repeating: 7, count: 90)
        let small = [UInt8](repeating: 9, count: 60)
        let process = try vm.makeProcess(for: program, context: XDPContext(packet: big, tailroom: 16))
        #expect(try process.run() == 90)
        let firstData = try #require(LinuxProcessState.of(process)?.packet).dataAddress
        // Dirty the headroom and tailroom from the host: a reused buffer must clear them.
        if let storage = LinuxProcessState.of(process)?.packet?.storage {
            storage.pointer.initializeMemory(as: UInt8.self, repeating: 0xEE, count: storage.count)
        }
        for packet in [small, big, small] {
            try process.reset(context: XDPContext(packet: packet, tailroom: 16))
            #expect(try process.run() == UInt64(packet.count))
            let state = try #require(LinuxProcessState.of(process))
            let buffer = try #require(state.packet)
            #expect(buffer.data == [0xAA] + packet.dropFirst())
            #expect(buffer.headroom == 256 && buffer.tailroom == 16)
            #expect(buffer.storage.bytes(in: 0..<256) == [UInt8](repeating: 0, count: 256))
            #expect(
                buffer.storage.bytes(in: buffer.dataEndOffset..<buffer.storage.count)
                    == [UInt8](repeating: 0, count: 16))
            #expect(state.sparePacket == nil)
            // The first packet's address reaches nothing.
            #expect(throws: (any Error).self) { try process.memory.load(firstData, size: 1) }
        }
    }

    /// The packet and `xdp_md` regions are not unmapped and mapped again per packet but moved
    /// (`AddressSpace.retireAll`): every address of the previous packet and context must fault,
    /// through the interpreter's table and the checked path alike, and the process must hold
    /// exactly the regions a new one does.
    @Test func addressesOfThePreviousPacketAndContextFault() throws {
        let (vm, program) = try ContextTestSupport.load(Self.source)
        let process = try vm.makeProcess(for: program, context: XDPContext(packet: [1, 2, 3, 4]))
        let fresh = process.memory.regions.map(\.name)
        var previous: [UInt64] = []
        for round in 0..<5 {
            #expect(try process.run() == UInt64(4 + round))
            let buffer = try #require(LinuxProcessState.of(process)?.packet)
            #expect(process.memory.regions.map(\.name) == fresh)
            for address in previous {
                #expect(process.memory.table.pointer(forReading: address, size: 1) == nil)
                #expect(throws: (any Error).self) { try process.memory.load(address, size: 1) }
            }
            let current = [buffer.contextAddress, buffer.dataAddress, buffer.base, buffer.dataEndAddress - 1]
            for address in current { #expect(process.memory.table.pointer(forReading: address, size: 1) != nil) }
            #expect(Set(current).isDisjoint(with: previous))
            previous += current
            try process.reset(context: XDPContext(packet: [UInt8](repeating: 5, count: 5 + round)))
        }
    }

    /// A program given a pointer of the previous packet or context (in R2, as if it had kept
    /// it) faults on it after the reset, with the fault's address and the region its slot holds
    /// now: the new packet for an old packet address (the window moved on: outside it), none for
    /// an old context address (its slot's generation moved on). Refilled buffers (the regions
    /// mapped again in their slots) and the JIT give the same faults as the interpreter.
    @Test(arguments: Fixture.engines) func keptPointersFaultAfterReset(engine: ExecutionEngine) throws {
        let vm = VM(emulator: LinuxEmulator(), configuration: VMConfiguration(engine: engine))
        let program = try vm.load(Assembler.assemble("ldxb %r0, [%r2+0]\nexit"))
        let process = try vm.makeProcess(for: program, context: XDPContext(packet: [1, 2, 3, 4]))
        var previous: PacketBuffer?
        for round in 0..<4 {
            let buffer = try #require(LinuxProcessState.of(process)?.packet)
            if let previous {
                for (address, region) in [
                    (previous.dataAddress, Optional(XDPContext.defaultRegionName)),
                    (previous.contextAddress, nil),
                ] {
                    process.registers[2] = address
                    let error = try #require(throws: ExecutionError.self) { try process.run() }
                    let fault = try #require(error.kind.fault, "round \(round): \(error)")
                    #expect(fault.address == address && fault.access == .read && fault.size == 1)
                    #expect(fault.region?.name == region)
                    #expect(fault.reason == (region == nil ? .unmapped : .outOfBounds))
                    if let region = fault.region { #expect(region.base == buffer.base) }
                    try process.reset(context: XDPContext(packet: [UInt8](repeating: 9, count: 4 + round)))
                }
            }
            let current = try #require(LinuxProcessState.of(process)?.packet)
            process.registers[2] = current.dataAddress
            #expect(try process.run() == (round == 0 ? 1 : 9))
            previous = current
            try process.reset(context: XDPContext(packet: [UInt8](repeating: 9, count: 5 + round)))
        }
    }

    /// An XDP context behind a reference, as the CLI's slot holds it.
    final class ContextHolder: Context {
        let context: XDPContext
        init(_ context: XDPContext) { self.context = context }
        func attach(to process: MimicCore.Process) throws(SetupError) { try context.attach(to: process) }
    }

    /// `reset(context:)` with an optional existential (a pool's and the CLI's form), which opens
    /// the context where it lies instead of copying it out of the optional: a struct context
    /// (boxed in the existential), a class context and nil behave as through the generic form.
    @Test func resetThroughAnOptionalExistential() throws {
        let (vm, program) = try ContextTestSupport.load(Self.source)
        let process = try vm.makeProcess(for: program, context: XDPContext(packet: [1, 2, 3]))
        #expect(try process.run() == 3)
        let contexts: [(any Context)?] = [
            XDPContext(packet: [1, 2, 3, 4, 5], name: "boxed"), ContextHolder(XDPContext(packet: [7, 7])), nil,
            XDPContext(packet: [9]),
        ]
        for context in contexts {
            try process.reset(context: context)
            let packet = LinuxProcessState.of(process)?.packet
            guard let expected = (context as? XDPContext) ?? (context as? ContextHolder)?.context else {
                #expect(packet == nil && process.registers[1] == 0)
                continue
            }
            #expect(try process.run() == UInt64(expected.packet.count))
            #expect(packet?.data == [0xAA] + expected.packet.dropFirst())
            #expect(process.memory.region(containing: packet?.base ?? 0)?.name == (expected.name == "boxed" ? "boxed packet" : "xdp_md packet"))
        }
    }

    /// The packet and context storages are renewed in place (the reset's retired slots keep
    /// them, so no reference count changes) and refilled while nothing else can reach them; a
    /// storage host code took from the address space (`storage(containing:)`, which marks it
    /// lent) is never refilled: it keeps the previous packet's bytes, and the new packet gets
    /// other storage.
    @Test func storageTheHostKeepsIsNotRefilled() throws {
        let (vm, program) = try ContextTestSupport.load(Self.source)
        let process = try vm.makeProcess(for: program, context: XDPContext(packet: [1, 2, 3, 4]))
        #expect(try process.run() == 4)
        // The storages only, never the buffer: a buffer the test held would not be reused.
        func storages() throws -> (packet: RegionStorage, context: RegionStorage) {
            let buffer = try #require(LinuxProcessState.of(process)?.packet)
            return (buffer.storage, buffer.contextStorage)
        }
        let first = try storages()
        #expect(!first.packet.isLent && !first.context.isLent)
        try process.reset(context: XDPContext(packet: [5, 6, 7]))
        #expect(try process.run() == 3)
        let second = try storages()
        #expect(second.packet === first.packet && second.context === first.context)
        // The host keeps the packet's storage and the context's, as any caller of the public
        // address space API may.
        let data = try #require(LinuxProcessState.of(process)?.packet).dataAddress
        let contextAddress = try #require(LinuxProcessState.of(process)?.packet).contextAddress
        let (kept, offset) = try #require(process.memory.storage(containing: data))
        let (keptContext, _) = try #require(process.memory.storage(containing: contextAddress))
        #expect(kept === second.packet && kept.isLent && keptContext === second.context && keptContext.isLent)
        let keptBytes = kept.bytes
        let keptContextBytes = keptContext.bytes
        let names = process.memory.regions.map(\.name)
        var previous: (packet: RegionStorage, context: RegionStorage)?
        for (round, packet) in [[UInt8](repeating: 8, count: 5), [9, 9], [4]].enumerated() {
            try process.reset(context: XDPContext(packet: packet))
            #expect(try process.run() == UInt64(packet.count))
            #expect(LinuxProcessState.of(process)?.packet?.data == [0xAA] + packet.dropFirst())
            let current = try storages()
            #expect(current.packet !== kept && current.context !== keptContext)
            // Other storage, not lent, is refilled again from the next packet on.
            if round > 0, let previous {
                #expect(current.packet === previous.packet && current.context === previous.context)
            }
            previous = current
            #expect(kept.bytes == keptBytes && keptContext.bytes == keptContextBytes)
            #expect(Array(kept.bytes[offset..<offset + 3]) == [0xAA, 6, 7])
            #expect(process.memory.regions.map(\.name) == names)
        }
    }

    @Test func stateTheHostKeepsIsNotReused() throws {
        let (vm, program) = try ContextTestSupport.load(Self.source)
        let process = try vm.makeProcess(for: program, context: XDPContext(packet: [1, 2, 3, 4]))
        #expect(try process.run() == 4)
        let kept = try #require(LinuxProcessState.of(process))
        try process.reset(context: XDPContext(packet: [5, 6]))
        #expect(try process.run() == 2)
        #expect(LinuxProcessState.of(process) !== kept)
        #expect(kept.packet?.data == [0xAA, 2, 3, 4])
        #expect(LinuxProcessState.of(process)?.packet?.data == [0xAA, 6])
    }

    @Test func clearedStateIsLikeANewOne() throws {
        let state = LinuxProcessState()
        state.traceOutput = ["x"]
        state.warnings = ["w"]
        state.environment.pid = 42
        state.clockReads = 3
        state.randomState = 5
        state.clearForReuse()
        #expect(state.traceOutput.isEmpty && state.warnings.isEmpty && state.packet == nil)
        #expect(state.environment == TaskEnvironment() && state.clockReads == 0 && state.randomState == nil)
    }
}
