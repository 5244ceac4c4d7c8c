import Testing
import MimicCore
import MimicJSON
@testable import MimicLinux

/// `Fixtures/timers.c` and `Fixtures/dynptr.c`: bpf_timer on the virtual clock, and dynptrs.
struct TimerDynptrTests {
    static let EINVAL: Int64 = -22
    static let EBUSY: Int64 = -16
    static let E2BIG: Int64 = -7
    static let EDEADLK: Int64 = -35
    static let ERANGE: Int64 = -34

    static func longs(_ loaded: Fixture.Loaded, _ name: String) throws -> [Int64] {
        let bytes = try ExternTests.variable(loaded, name)
        return stride(from: 0, to: bytes.count, by: 8).map {
            Int64(bitPattern: ExternTests.integer(bytes[$0..<$0 + 8]))
        }
    }

    @Test func timerHelpersReturnTheKernelsErrors() throws {
        let loaded = try Fixture.load("timers")
        try loaded.run("timer_errors")
        let results = try Self.longs(loaded, "results")
        #expect(
            Array(results[0...11]) == [
                Self.EINVAL, Self.EINVAL, 0, Self.EBUSY, Self.EINVAL, 0, Self.EINVAL, 0, Self.EINVAL, 0, 0, 1,
            ])
        #expect(loaded.emulator.pendingTimers.isEmpty)
    }

    @Test func callbacksRunWhenTheVirtualClockPassesTheirTime() throws {
        let loaded = try Fixture.load("timers")
        let process = try loaded.run("timer_arm")
        #expect(process.state == .exited(0))
        let map = try loaded.map("timers")
        let key: [UInt8] = [7, 0, 0, 0]
        func fired() -> (UInt64, UInt64) {
            let value = map.value(forKey: key) ?? []
            return (ExternTests.integer(value[16..<24]), ExternTests.integer(value[24..<32]))
        }
        #expect(loaded.emulator.pendingTimers.map(\.expiry) == [1_000_000])
        // Not yet due.
        #expect(loaded.emulator.advanceClock(to: 999_999).isEmpty)
        #expect(fired().0 == 0)
        // Due once: the callback re-arms for 2 ms.
        let first = loaded.emulator.advanceClock(to: 1_500_000)
        #expect(first.map(\.time) == [1_000_000])
        #expect(first.first?.key == key)
        #expect(first.first.map { (try? $0.result.get()) == 0 } == true)
        #expect(fired() == (1, 1_000_000))
        // The two remaining runs happen in one advance, each at its own time; the third
        // cannot cancel its own timer.
        let rest = loaded.emulator.advanceClock(by: 10_000_000)
        #expect(rest.map(\.time) == [2_000_000, 3_000_000])
        #expect(fired() == (3, 3_000_000))
        #expect(try Self.longs(loaded, "self_cancel") == [Self.EDEADLK])
        #expect(try Self.longs(loaded, "callback_key") == [7])
        #expect(loaded.emulator.clock.now == 11_500_000)
        #expect(loaded.emulator.pendingTimers.isEmpty)
    }

    @Test func deletingTheElementCancelsItsTimer() throws {
        let loaded = try Fixture.load("timers")
        try loaded.run("timer_arm")
        try loaded.run("timer_delete")
        #expect(loaded.emulator.advanceClock(by: 5_000_000).isEmpty)
        // Re-created, the element's timer is a new, uninitialised one: it can be armed again.
        let again = try loaded.run("timer_arm")
        #expect(again.state == .exited(0))
        #expect(loaded.emulator.advanceClock(by: 1_000_000).count == 1)
    }

    @Test func ktimeHelpersReadTheVirtualClock() throws {
        let loaded = try Fixture.load("timers")
        loaded.emulator.advanceClock(to: 123_456_789)
        try loaded.run("timer_arm")
        let firings = loaded.emulator.advanceClock(by: 1_000_000)
        #expect(firings.map(\.time) == [124_456_789])
        let value = try loaded.map("timers").value(forKey: [7, 0, 0, 0]) ?? []
        #expect(ExternTests.integer(value[24..<32]) == 124_456_789)
    }

    @Test func contextsAskForTheVirtualClock() throws {
        func environment(_ text: String) throws -> TaskEnvironment {
            try TaskEnvironment(emulatorData: JSONField(try JSONValue.parse(text), path: "emulator"))
        }
        #expect(try environment(#"{"virtual_clock": true}"#).clock == .virtual)
        #expect(try environment(#"{"virtual_clock": false, "ktime_ns": 5}"#).clock == .manual(start: 5, step: 0))
        #expect(throws: (any Error).self) { try environment(#"{"virtual_clock": 1}"#) }
        // A process on the virtual clock reads the emulator's clock, coarse time by ticks of CONFIG_HZ (250).
        let (vm, emulator) = makeLinuxVM()
        emulator.advanceClock(to: 9_000_001)
        let program = try vm.load(
            Assembler.assemble("call 5\nmov %r6, %r0\ncall 160\nsub %r6, %r0\nmov %r0, %r6\nexit"))
        let process = try vm.makeProcess(
            for: program, context: GenericContext(environment: TaskEnvironment(clock: .virtual)))
        #expect(try process.run() == 9_000_001 - 8_000_000)
    }

    @Test func localDynptrsFollowTheKernel() throws {
        let loaded = try Fixture.load("dynptr")
        try loaded.run("local_dynptr")
        let results = try Self.longs(loaded, "results")
        #expect(
            Array(results[0...18]) == [
                0, 0, Self.E2BIG, Self.EINVAL, 0, Self.E2BIG, 1, Int64(UInt8(ascii: "i")), 1, 0, 4, Self.EINVAL,
                Self.ERANGE, 0, 0, Int64(UInt8(ascii: "m")), Self.EINVAL, 1, Self.EINVAL,
            ])
        #expect(try ExternTests.variable(loaded, "copied") == [0, 0, 109, 105, 109, 99, 0, 0])
        #expect(try ExternTests.variable(loaded, "sliced") == Array("mimc".utf8))
    }

    @Test func ringBufferDynptrsReserveAndSubmit() throws {
        let loaded = try Fixture.load("dynptr")
        try loaded.run("ring_dynptr")
        #expect(try Self.longs(loaded, "ring_results") == [0, 0, Self.EINVAL, Self.EINVAL])
        let ring = try loaded.map("events", as: RingBufferMap.self)
        #expect(ring.drainRecords() == [[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]])
    }
}
