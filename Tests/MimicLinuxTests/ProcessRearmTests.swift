import Testing
@testable import MimicCore
import MimicMemory
@testable import MimicLinux

/// `Process.reset(context:)`'s quick path (`Emulator.rearmsThroughContext`, `Context.rearm`): after a run of
/// each program of `Fixtures/rearm.c` — each leaves another trace: stack and headroom writes,
/// head/meta/tail adjusted, a ring buffer record, a helper that maps a region, `bpf_loop`
/// callbacks, a tail call, a clock read, a redirect, trace output, a spin lock taken and
/// released or held —
/// a process reset with an `XDPContext` (which may take the quick path) must read exactly as a
/// twin reset through a context that cannot (the general path): the same registers, stack,
/// counters, regions and addresses, buffer bytes, `xdp_md`, Linux state and memory budget; and,
/// addresses aside, as a new process made with the same context. Pointers into the previous
/// packet and context must fault alike on both, under both engines.
@Suite struct ProcessRearmTests {
    /// An XDP context with no `rearm` of its own (`Context`'s default declines): its resets
    /// always take the general path.
    final class GeneralOnly: Context {
        let context: XDPContext
        init(_ context: XDPContext) { self.context = context }
        func attach(to process: MimicCore.Process) throws(SetupError) { try context.attach(to: process) }
    }

    /// The programs of `rearm.c`, and whether a reset after their run may take the quick path.
    static let scenarios: [(program: String, quick: Bool)] = [
        ("plain", true), ("headroom", true), ("adjust", true), ("ring", true), ("looping", true), ("tail", true),
        ("spin", true), ("clock", true), ("for_each", false), ("redirect", false), ("traced", false), ("spin_held", false),
    ]

    static func packet(_ round: Int) -> [UInt8] {
        (0..<(40 + 7 * round)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ round) }
    }

    /// Everything a reset promises about a process, read from outside. `absolute`: addresses as
    /// they are (for a twin with the same history); otherwise as offsets in their regions (for a
    /// new process, whose window sits elsewhere).
    struct Fingerprint: Equatable {
        var registers: [UInt64] = []
        var pc = 0
        var ready = false
        var counts: [UInt64] = []
        var stack: [UInt8] = []
        var regions: [String] = []
        var buffer: [Int] = []
        var bytes: [UInt8] = []
        var xdpMD: [UInt64] = []
        var linux: [String] = []
        var budget = 0

        /// The fields that differ from `other`'s, with both values: empty when equal.
        func differences(from other: Fingerprint) -> [String] {
            zip(Mirror(reflecting: self).children, Mirror(reflecting: other).children).compactMap { mine, theirs in
                "\(mine.value)" == "\(theirs.value)" ? nil : "\(mine.label ?? ""): \(mine.value) vs \(theirs.value)"
            }
        }

        init(_ process: MimicCore.Process, absolute: Bool) throws {
            let state = try #require(LinuxProcessState.of(process))
            let packet = try #require(state.packet)
            registers = process.registers.all
            if !absolute {
                #expect(registers[1] == packet.contextAddress)
                registers[1] = 0
            }
            pc = process.pc
            ready = process.state == .ready
            counts = [process.instructionCount, UInt64(process.tailCallCount), UInt64(process.depth)]
            stack = try process.memory.read(process.stackBase, count: process.stackSize)
            // A new process's window and context slot sit elsewhere: its packet and context
            // regions are compared without their bases.
            regions = process.memory.regions.map { region in
                let moving = region.base == packet.base || region.base == packet.contextAddress
                return "\(region.name) \(region.kind) \(region.size)" + (absolute || !moving ? " \(region.base)" : "")
            }
            buffer = [
                packet.metaOffset, packet.dataOffset, packet.dataEndOffset, packet.reserved, packet.headroom,
                packet.tailroom, Int(packet.protocolType), packet.networkOffset, packet.pulledLength,
                packet.vlanTag == nil ? 0 : 1, packet.hashIsValid ? 1 : 0, packet.checksumUnnecessary ? 1 : 0,
                packet.checksumLevel,
            ]
            if absolute { buffer += [Int(packet.base), Int(packet.contextAddress)] }
            bytes = packet.storage.bytes
            let context = try process.memory.read(process.registers[1], count: 24)
            xdpMD = (0..<6).map { field in
                let value = UInt64(context[4 * field]) | UInt64(context[4 * field + 1]) << 8
                    | UInt64(context[4 * field + 2]) << 16 | UInt64(context[4 * field + 3]) << 24
                return field < 3 && !absolute ? value - packet.base : value
            }
            linux = [
                "\(state.traceOutput)", "\(state.traceLines)", "\(String(describing: state.redirect))",
                "\(state.warnings)", "\(state.environment == TaskEnvironment())", "\(state.clockReads)",
                "\(String(describing: state.xdpRxMetadata))", "\(String(describing: state.overriddenReturn))",
                "\(String(describing: state.seqFileAddress))", "\(String(describing: state.randomState))",
                "\(String(describing: state.runningTimer))", "\(state.cgroupRetval)", "\(state.sparePacket == nil)",
                "\(state.heldSpinLocks.isEmpty)", "\(process.emulatorStates.occupied)",
                "\(process.packet == nil)", "\(process.exitCheck == nil)",
            ]
            budget = absolute ? process.vm.memoryBudget.inUse : 0
        }
    }

    /// Sets `probe` in `fixture`'s .bss (0: the programs run as usual).
    static func setProbe(_ address: UInt64, in fixture: Fixture.Loaded) throws {
        let map = try fixture.map(".bss", as: ArrayMap.self)
        let spec = try #require(fixture.object.globals[".bss"]?.spec)
        let probe = try #require(spec.variables.first { $0.name == "probe" })
        var value = try #require(map.value(forKey: [0, 0, 0, 0]))
        for i in 0..<8 { value[Int(probe.offset) + i] = UInt8(truncatingIfNeeded: address >> (8 * UInt64(i))) }
        #expect(map.update(key: [0, 0, 0, 0], value: value, flags: .any, cpu: 0) == nil)
    }

    /// A run's outcome, comparable across the twins: R0, or the error (pc, fault, address).
    static func outcome(_ process: MimicCore.Process) -> String {
        do {
            return "exited \(try process.run())"
        } catch {
            return "failed: \(error)"
        }
    }

    @Test(arguments: Fixture.engines, scenarios.map(\.program))
    func resetAfterARunReadsAsTheGeneralPathAndANewProcess(engine: ExecutionEngine, program name: String) throws {
        let quickPath = try #require(Self.scenarios.first { $0.program == name }).quick
        let fixture = try Fixture.load("rearm", engine: engine)
        let twin = try Fixture.load("rearm", engine: engine)
        let fresh = try Fixture.load("rearm", engine: engine)
        func context(_ round: Int) -> XDPContext { XDPContext(packet: Self.packet(round), tailroom: 16) }
        func resetBoth(_ round: Int) throws {
            try process.reset(context: context(round))
            try general.reset(context: GeneralOnly(context(round)))
            #expect(general.rearmCount == 0)
            let differences = try Fingerprint(process, absolute: true).differences(
                from: Fingerprint(general, absolute: true))
            #expect(differences.isEmpty, "round \(round): \(differences)")
        }
        let process = try fixture.vm.makeProcess(for: fixture.object.program(named: name), context: context(0))
        let general = try twin.vm.makeProcess(
            for: twin.object.program(named: name), context: GeneralOnly(context(0)))
        for round in 1...4 {
            // The scenario's run, then a reset: quick when the run left no trace but what the
            // quick path renews (not the first reset of a made process: nothing armed it).
            #expect(Self.outcome(process) == Self.outcome(general), "round \(round)")
            // Addresses only: a reference to the buffer would keep the reset from reusing it.
            let stale = try { () throws -> [UInt64] in
                let previous = try #require(LinuxProcessState.of(process)?.packet)
                return [previous.dataAddress, previous.contextAddress, previous.base, previous.dataEndAddress]
            }()
            var count = process.rearmCount
            try resetBoth(round)
            #expect(process.rearmCount == count + (quickPath && round > 1 ? 1 : 0), "round \(round)")
            let new = try fresh.vm.makeProcess(for: fresh.object.program(named: name), context: context(round))
            let differences = try Fingerprint(process, absolute: false).differences(
                from: Fingerprint(new, absolute: false))
            #expect(differences.isEmpty, "round \(round): \(differences)")
            for address in stale {
                #expect(process.memory.table.pointer(forReading: address, size: 1) == nil)
            }

            // A pointer kept from the previous packet or context faults, alike on both twins: for
            // an old packet address outside the new packet (the window moved on), for an old
            // context address in no region (its slot's generation moved on).
            let address = stale[round % stale.count]
            try Self.setProbe(address, in: fixture)
            try Self.setProbe(address, in: twin)
            let error = try #require(throws: ExecutionError.self) { try process.run() }
            #expect(Self.outcome(general) == "failed: \(error)", "round \(round)")
            let fault = try #require(error.kind.fault, "round \(round): \(error)")
            #expect(fault.address == address && fault.access == .read && fault.size == 1)
            let currentBase = try #require(LinuxProcessState.of(process)?.packet).base
            if address == stale[1] {
                #expect(fault.region == nil && fault.reason == .unmapped)
            } else {
                #expect(fault.region?.name == XDPContext.defaultRegionName && fault.region?.base == currentBase)
                #expect(fault.reason == .outOfBounds)
            }
            try Self.setProbe(0, in: fixture)
            try Self.setProbe(0, in: twin)
            // A faulted run leaves no trace: the quick path again, reading as the general path's.
            count = process.rearmCount
            try resetBoth(round)
            #expect(process.rearmCount == count + 1, "round \(round)")
        }
    }

    /// A Linux state host code keeps (to read a run's results) is not rearmed: the reset takes the
    /// general path, which gives the process a new state, and the kept one still reads as its run
    /// left it (its packet buffer, whose uniqueness alone would not show it is held).
    @Test(arguments: Fixture.engines)
    func stateTheHostKeepsIsNotRearmed(engine: ExecutionEngine) throws {
        let fixture = try Fixture.load("rearm", engine: engine)
        let process = try fixture.vm.makeProcess(
            for: fixture.object.program(named: "plain"), context: XDPContext(packet: Self.packet(0)))
        try process.reset(context: XDPContext(packet: Self.packet(1))) // the general path arms it
        _ = try process.run()
        var count = process.rearmCount
        try process.reset(context: XDPContext(packet: Self.packet(2)))
        #expect(process.rearmCount == count + 1) // not kept: the quick path
        _ = try process.run()
        let kept = try #require(LinuxProcessState.of(process))
        let keptBytes = try #require(kept.packet).data
        count = process.rearmCount
        try process.reset(context: XDPContext(packet: Self.packet(3)))
        #expect(process.rearmCount == count)
        #expect(LinuxProcessState.of(process) !== kept)
        #expect(kept.packet?.data == keptBytes)
        #expect(LinuxProcessState.of(process)?.packet?.data == Self.packet(3))
    }

    /// The next context may differ from the last: other headroom, tailroom, indexes, name, rx
    /// metadata or environment, a packet too big for the buffer's storage. Each
    /// reset reads as the general path's, the quick path taken only where the context allows it
    /// (not after a renamed region, a grown packet, or an environment the attach set).
    @Test(arguments: Fixture.engines)
    func contextsThatChangeBetweenResets(engine: ExecutionEngine) throws {
        let fixture = try Fixture.load("rearm", engine: engine)
        let twin = try Fixture.load("rearm", engine: engine)
        var environment = TaskEnvironment()
        environment.pid = 42
        var withMetadata = XDPContext(packet: Self.packet(2), tailroom: 8)
        withMetadata.rxMetadata = XDPRxMetadata(hash: 7, hashType: 1)
        let contexts: [(XDPContext, quick: Bool)] = [
            (XDPContext(packet: Self.packet(1)), false), // the first reset: nothing armed it
            (XDPContext(packet: Self.packet(3), headroom: 128, tailroom: 32, ingressIfindex: 5), true),
            (XDPContext(packet: Self.packet(0), rxQueueIndex: 3, egressIfindex: 9), true),
            (XDPContext(packet: Self.packet(4), name: "renamed"), false),
            (XDPContext(packet: Self.packet(5), name: "renamed"), true),
            (XDPContext(packet: Self.packet(5)), false),
            (withMetadata, true),
            (XDPContext(packet: [UInt8](repeating: 3, count: 3000)), false), // past the storage
            (XDPContext(packet: Self.packet(6)), true),
            (XDPContext(packet: Self.packet(6), environment: environment), true),
            (XDPContext(packet: Self.packet(7)), false), // the attach changed the environment
            (XDPContext(packet: Self.packet(7), headroom: 0), true),
        ]
        let process = try fixture.vm.makeProcess(
            for: fixture.object.program(named: "plain"), context: XDPContext(packet: Self.packet(0)))
        let general = try twin.vm.makeProcess(
            for: twin.object.program(named: "plain"), context: GeneralOnly(XDPContext(packet: Self.packet(0))))
        for (round, (context, quick)) in contexts.enumerated() {
            #expect(Self.outcome(process) == Self.outcome(general), "round \(round)")
            let count = process.rearmCount
            try process.reset(context: context)
            try general.reset(context: GeneralOnly(context))
            #expect(process.rearmCount == count + (quick ? 1 : 0), "round \(round)")
            let differences = try Fingerprint(process, absolute: true).differences(
                from: Fingerprint(general, absolute: true))
            #expect(differences.isEmpty, "round \(round): \(differences)")
            let state = try #require(LinuxProcessState.of(process))
            #expect(state.xdpRxMetadata == context.rxMetadata && state.environment == (context.environment ?? TaskEnvironment()))
        }
    }

    /// A state stored by host code between resets (`setEmulatorState`, here the same Linux state
    /// stored again) disarms the quick path: the next reset takes the general path, whose
    /// `prepare` gives the state the emulator's clock, and the one after may take the quick path
    /// again.
    @Test(arguments: Fixture.engines)
    func storingAStateDisarmsTheQuickPath(engine: ExecutionEngine) throws {
        let fixture = try Fixture.load("rearm", engine: engine)
        let process = try fixture.vm.makeProcess(
            for: fixture.object.program(named: "plain"), context: XDPContext(packet: Self.packet(0)))
        for round in 1...4 {
            _ = Self.outcome(process)
            if round == 3 {
                let state = try #require(LinuxProcessState.of(process))
                state.virtualClock = nil
                process.setEmulatorState(state, for: LinuxProcessState.key)
            }
            let count = process.rearmCount
            try process.reset(context: XDPContext(packet: Self.packet(round)))
            #expect(process.rearmCount == count + (round == 1 || round == 3 ? 0 : 1), "round \(round)") // round 1: nothing armed it
            #expect(LinuxProcessState.of(process)?.virtualClock === fixture.emulator.clock, "round \(round)")
        }
    }
}
