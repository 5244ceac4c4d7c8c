import Testing
import MimicCore
@testable import MimicKernel
@testable import MimicLinux

/// Issue 13, checked against the running kernel (`BPF_PROG_TEST_RUN`): `pkt_type` and where an
/// sk_buff's data starts, and `bpf_perf_event_output` from XDP.
@Suite(
    "Kernel: sk_buff pkt_type and data start, perf output from XDP", .serialized,
    .enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct SemanticDefectKernelTests {
    /// IPv4/UDP frames to: the loopback's address (zeros), broadcast, an IPv4 multicast MAC, and
    /// another host.
    static let destinations: [[UInt8]] = [
        [0, 0, 0, 0, 0, 0], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], [0x01, 0x00, 0x5E, 0x00, 0x00, 0x01],
        [0x02, 0x00, 0x00, 0x00, 0x00, 0x02],
    ]

    static func frame(to destination: [UInt8]) -> [UInt8] {
        let udp: [UInt8] = [0x04, 0xD2, 0x00, 0x35, 0x00, 0x0C, 0x00, 0x00, 0x61, 0x62, 0x63, 0x64]
        let ip: [UInt8] = [0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]
        return destination + [0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00] + ip + udp
    }

    /// Runs `text` as a `type` program on `packet` in the kernel and in Mimic (default context,
    /// fitted to the type as `mimic run` does): (kernel, Mimic's low 32 bits).
    static func both(_ text: String, type: ProgramType, packet: [UInt8]) throws -> (kernel: UInt32, mimic: UInt32) {
        let code = try Assembler.assemble(text)
        let kernel = try KernelBPF.loadProgram(code, type: type, name: "t").testRun(data: packet)
        let vm = VM(emulator: LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1)))
        let context = try ContextFit.fit(SKBContext(packet: packet), type: type, describing: "t")
        let process = try vm.makeProcess(for: try vm.load(code), context: context)
        return (kernel.returnValue, UInt32(truncatingIfNeeded: try process.run()))
    }

    @Test(
        "pkt_type, len, protocol and the first data byte agree for socket filters and tc",
        arguments: [ProgramType.socketFilter, .schedCls])
    func packetTypeAndDataStart(type: ProgramType) throws {
        // pkt_type | len << 4 | protocol << 16 ... packed into one 32-bit result.
        let fields = """
            ldxw %r2, [%r1+4]
            ldxw %r3, [%r1+0]
            lsh %r3, 4
            or %r2, %r3
            ldxw %r3, [%r1+16]
            lsh %r3, 16
            xor %r2, %r3
            mov %r0, %r2
            exit
            """
        // The first byte at `data` through a legacy packet load (0x45 at the IP header).
        let firstByte = """
            mov %r6, %r1
            ldabsb 0
            exit
            """
        var packetTypes: [UInt32] = []
        for destination in Self.destinations {
            let packet = Self.frame(to: destination)
            let result = try Self.both(fields, type: type, packet: packet)
            #expect(
                result.mimic == result.kernel,
                "\(type) to \(destination): kernel 0x\(String(result.kernel, radix: 16)), Mimic 0x\(String(result.mimic, radix: 16))"
            )
            packetTypes.append(result.kernel & 0xF)
            let byte = try Self.both(firstByte, type: type, packet: packet)
            #expect(
                byte.mimic == byte.kernel,
                "\(type): first data byte kernel 0x\(String(byte.kernel, radix: 16)), Mimic 0x\(String(byte.mimic, radix: 16))"
            )
            #expect(byte.kernel == (type == .socketFilter ? 0x45 : UInt32(destination[0])))
        }
        // The test run receives on the loopback device, whose address and broadcast address are
        // both zero: ff:ff:ff:ff:ff:ff is a group address other than its broadcast, so multicast.
        #expect(packetTypes == [0, 2, 2, 3], "PACKET_HOST, _MULTICAST, _MULTICAST, _OTHERHOST")
    }

    @Test("bpf_perf_event_output from XDP: ctx length accepted, no event attached is -ENOENT")
    func perfOutputFromXDP() throws {
        let kernelMap = try KernelBPF.createMap(
            MapAttributes(
                name: "events", type: .perfEventArray, keySize: 4, valueSize: 4,
                maxEntries: KernelBPF.possibleCPUs))
        // BPF_F_CURRENT_CPU with 14 bytes of packet; then the same with 4096 (longer than the packet).
        func source(_ flags: UInt64) -> String {
            """
            stdw [%r10-8], 0x77
            lddw %r2, 0
            lddw %r3, \(flags)
            mov %r4, %r10
            add %r4, -8
            mov %r5, 8
            call 25
            exit
            """
        }
        let packet = Self.frame(to: [0, 0, 0, 0, 0, 0])
        for flags: UInt64 in [14 << 32 | 0xFFFF_FFFF, 4096 << 32 | 0xFFFF_FFFF, 1 << 52 | 0xFFFF_FFFF, 0xFFFF_FFFF] {
            var code = try Assembler.assemble(source(flags))
            code[1].source = 1
            code[1].imm = kernelMap.fd
            let kernel = try KernelBPF.loadProgram(code, type: .xdp, name: "t", maps: [kernelMap]).testRun(data: packet)

            let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1))
            let vm = VM(emulator: emulator)
            let map = try emulator.createMap(
                MapAttributes(name: "events", type: .perfEventArray, keySize: 4, valueSize: 4, maxEntries: 1), in: vm)
            var mimicCode = code
            mimicCode[1].source = 0
            mimicCode[1].imm = Int32(truncatingIfNeeded: map.handle)
            mimicCode[2].imm = Int32(truncatingIfNeeded: map.handle >> 32)
            let process = try vm.makeProcess(for: try vm.load(mimicCode), context: XDPContext(packet: packet))
            let mimic = UInt32(truncatingIfNeeded: try process.run())
            #expect(
                mimic == kernel.returnValue,
                "flags 0x\(String(flags, radix: 16)): kernel \(Int32(bitPattern: kernel.returnValue)), Mimic \(Int32(bitPattern: mimic))"
            )
        }
    }
}
