import Testing
import MimicCore
@testable import MimicLinux

/// `bpf_xdp_output` and `bpf_skb_output` (issue 14): perf event records with the packet appended,
/// as the kernel's `bpf_xdp_event_output` / `bpf_skb_event_output` write them.
@Suite struct PacketOutputTests {
    /// Runs a program calling `helper` with the context in R1, a perf event array in R2, `flags`
    /// in R3 and 4 bytes "DATA" from the stack; returns R0 (nil when the run failed) and the
    /// records.
    static func run(_ helper: HelperID, context: any Context, flags: UInt64, contextPointer: Bool = true) throws
        -> (UInt64?, [PerfEventArrayMap.Record])
    {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1))
        let vm = VM(emulator: emulator)
        let map = try emulator.createMap(
            MapAttributes(name: "events", type: .perfEventArray, keySize: 4, valueSize: 4, maxEntries: 1), in: vm)
        let perf = try #require(map as? PerfEventArrayMap)
        perf.attachReaders()
        let source = """
            \(contextPointer ? "" : "mov %r1, %r10\nadd %r1, -64")
            stw [%r10-8], 0x41544144
            lddw %r2, 0x\(String(map.handle, radix: 16))
            lddw %r3, 0x\(String(flags, radix: 16))
            mov %r4, %r10
            add %r4, -8
            mov %r5, 4
            call \(helper.rawValue)
            exit
            """
        let program = try vm.load(Assembler.assemble(source))
        let process = try vm.makeProcess(for: program, context: context)
        let r0 = try? process.run()
        return (r0, perf.drainRecords())
    }

    static let packet: [UInt8] = Array(0..<64)
    static let current: UInt64 = 0xFFFF_FFFF

    @Test(arguments: [HelperID.xdpOutput, .skbOutput])
    func recordsCarryThePacket(_ helper: HelperID) throws {
        let context: any Context =
            helper == .xdpOutput ? XDPContext(packet: Self.packet) : SKBContext(packet: Self.packet)
        // 6 bytes of the packet after the 4 bytes of data.
        let (r0, records) = try Self.run(helper, context: context, flags: 6 << 32 | Self.current)
        #expect(r0 == 0)
        #expect(records.map(\.data) == [Array("DATA".utf8) + Array(Self.packet[0..<6])])
        // More than the packet holds: -EFAULT; an unknown flag bit: -EINVAL; no record either way.
        let (tooLong, none) = try Self.run(helper, context: context, flags: 65 << 32 | Self.current)
        #expect(tooLong == Errno.fault.helperReturnValue && none.isEmpty)
        let (badFlag, _) = try Self.run(helper, context: context, flags: 1 << 52 | Self.current)
        #expect(badFlag == Errno.invalid.helperReturnValue)
        // An index past the map: -E2BIG, as bpf_perf_event_output.
        let (pastEnd, _) = try Self.run(helper, context: context, flags: 3)
        #expect(pastEnd == Errno.tooBig.helperReturnValue)
        // R1 must be the packet context (the kernel's xdp_buff / sk_buff objects are not laid out).
        let (notContext, _) = try Self.run(helper, context: context, flags: Self.current, contextPointer: false)
        #expect(notContext == nil)
    }
}
