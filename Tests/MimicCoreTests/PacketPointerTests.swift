import Testing
import MimicMemory
@testable import MimicCore

/// Clang-compiled programs read packet pointers from 32-bit context fields and zero-extend them
/// (`void *data = (void *)(long)ctx->data;`). The packet region lives in the 32-bit window so
/// those pointers work.
@Suite struct PacketPointerTests {
    /// An `xdp_md`-like context: `u32 data; u32 data_end;` pointing into a packet in the window.
    struct MiniXDPContext: Context {
        var packet: [UInt8]

        func attach(to process: MimicCore.Process) throws(SetupError) {
            do {
                let data = try process.memory.map(RegionStorage(bytes: packet), name: "packet", placement: .low32)
                #expect(data < 1 << 32)
                var fields: [UInt8] = []
                for value in [UInt32(data), UInt32(data) + UInt32(packet.count)] {
                    fields += (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
                }
                process.registers[1] = try process.memory.map(RegionStorage(bytes: fields), name: "ctx")
            } catch {
                throw .message("\(error)")
            }
        }
    }

    /// The program a compiler emits for: if (data + 14 > data_end) return 0; return eth->h_proto;
    static let source = """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 14
        mov %r0, 0
        jgt %r4, %r3, out
        ldxh %r0, [%r2+12]
        be16 %r0
        out:
        exit
        """

    @Test func pointersFromThirtyTwoBitFieldsDereference() throws {
        let vm = VM()
        let program = try vm.load(Assembler.assemble(Self.source))
        var packet = [UInt8](repeating: 0, count: 60)
        packet[12] = 0x86
        packet[13] = 0xdd
        #expect(try vm.run(program, context: MiniXDPContext(packet: packet)) == 0x86dd)
        // A short packet takes the bounds-check branch, as in the kernel.
        #expect(try vm.run(program, context: MiniXDPContext(packet: [1, 2, 3])) == 0)
    }

    @Test func readingPastDataEndFaultsWithTheRegion() throws {
        let vm = VM()
        let program = try vm.load(
            Assembler.assemble(
                """
                ldxw %r2, [%r1+4]
                ldxb %r0, [%r2+0]
                exit
                """))
        let error = try #require(throws: ExecutionError.self) {
            try vm.run(program, context: MiniXDPContext(packet: [1, 2, 3]))
        }
        guard error.code == .memory, let fault = error.kind.fault else {
            Issue.record("expected a memory fault, got \(error)")
            return
        }
        #expect(fault.reason == .outOfBounds)
        #expect(fault.region?.name == "packet")
        #expect(error.pc == 1)
        #expect(error.description.contains("packet"))
    }
}
