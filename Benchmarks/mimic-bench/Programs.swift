/// The fixed benchmark set. Each program's native twin computes the same R0, so a benchmark
/// also checks the interpreter.
extension Benchmark {
    static let all: [Benchmark] = [aluLoop, memoryLoop, packetParse, localCalls]

    /// Pure register arithmetic: a xorshift-multiply hash over 100,000 iterations.
    static let aluLoop = Benchmark(
        name: "alu-loop",
        source: """
            mov %r0, 0
            mov %r1, 100000
            lddw %r2, 0x9e3779b97f4a7c15
            loop:
            add %r0, %r1
            mov %r3, %r0
            rsh %r3, 13
            xor %r0, %r3
            mul %r0, %r2
            lsh32 %r3, 3
            add %r0, %r3
            sub %r1, 1
            jne %r1, 0, loop
            exit
            """,
        input: [],
        runs: 20,
        native: { _ in
            var r0: UInt64 = 0
            var r1: UInt64 = 100_000
            let r2: UInt64 = 0x9e37_79b9_7f4a_7c15
            repeat {
                r0 &+= r1
                var r3 = r0
                r3 >>= 13
                r0 ^= r3
                r0 &*= r2
                r3 = UInt64(UInt32(truncatingIfNeeded: r3) &<< 3)
                r0 &+= r3
                r1 &-= 1
            } while r1 != 0
            return r0
        })

    /// Bounds-checked loads and stores: each packet byte is read, mixed into a running value,
    /// and the value is stored to and reloaded from the stack; 1,500 positions, 20 passes.
    static let memoryLoop = Benchmark(
        name: "memory-loop",
        source: """
            mov %r0, 0
            mov %r6, 20
            pass:
            mov %r3, %r1
            mov %r4, %r1
            add %r4, %r2
            sub %r4, 1
            byte:
            ldxb %r5, [%r3]
            add %r0, %r5
            stxdw [%r10-8], %r0
            ldxdw %r0, [%r10-8]
            ldxh %r5, [%r3]
            stxh [%r10-16], %r5
            ldxh %r5, [%r10-16]
            xor %r0, %r5
            add %r3, 1
            jlt %r3, %r4, byte
            sub %r6, 1
            jne %r6, 0, pass
            exit
            """,
        input: (0..<1501).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) },
        runs: 20,
        native: { bytes in
            var r0: UInt64 = 0
            for _ in 0..<20 {
                for i in 0..<(bytes.count - 1) {
                    r0 &+= UInt64(bytes[i])
                    r0 ^= UInt64(UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8)
                }
            }
            return r0
        })

    /// Packet parsing as an XDP firewall does it: Ethernet, IPv4 and UDP headers, with the
    /// bounds checks a verifier demands, over 5,000 packets' worth of offsets.
    static let packetParse = Benchmark(
        name: "packet-parse",
        source: """
            mov %r0, 0
            mov %r9, 5000
            again:
            mov %r3, %r1
            add %r3, %r2
            mov %r4, %r1
            add %r4, 42
            jgt %r4, %r3, done
            ldxh %r5, [%r1+12]
            jne %r5, 0x0008, done
            ldxb %r5, [%r1+14]
            and %r5, 0x0f
            lsh %r5, 2
            jlt %r5, 20, done
            ldxb %r6, [%r1+23]
            jne %r6, 17, done
            ldxw %r7, [%r1+26]
            ldxw %r8, [%r1+30]
            be32 %r7
            be32 %r8
            mov %r6, %r1
            add %r6, %r5
            ldxh %r5, [%r6+16]
            be16 %r5
            add %r0, %r7
            add %r0, %r8
            add %r0, %r5
            sub %r9, 1
            jne %r9, 0, again
            done:
            exit
            """,
        input: {
            var packet = [UInt8](repeating: 0, count: 64)
            packet[12] = 0x08
            packet[13] = 0x00 // IPv4
            packet[14] = 0x45 // version 4, IHL 5
            packet[23] = 17 // UDP
            packet[26...29] = [10, 0, 0, 1]
            packet[30...33] = [192, 168, 1, 2]
            packet[36] = 0x00
            packet[37] = 0x35 // destination port 53
            return packet
        }(),
        runs: 50,
        native: { p in
            var r0: UInt64 = 0
            for _ in 0..<5000 {
                guard p.count >= 42, p[12] == 0x08, p[13] == 0 else { return r0 }
                let ihl = Int(p[14] & 0x0f) << 2
                guard ihl >= 20, p[23] == 17 else { return r0 }
                let source = UInt64(p[26]) << 24 | UInt64(p[27]) << 16 | UInt64(p[28]) << 8 | UInt64(p[29])
                let destination = UInt64(p[30]) << 24 | UInt64(p[31]) << 16 | UInt64(p[32]) << 8 | UInt64(p[33])
                let port = UInt64(p[ihl + 16]) << 8 | UInt64(p[ihl + 17])
                r0 &+= source &+ destination &+ port
            }
            return r0
        })

    /// BPF-to-BPF calls: 20,000 calls of a small function that mixes its arguments.
    static let localCalls = Benchmark(
        name: "local-calls",
        source: """
            mov %r6, 20000
            mov %r7, 0
            loop:
            mov %r1, %r7
            mov %r2, %r6
            call local mix
            mov %r7, %r0
            sub %r6, 1
            jne %r6, 0, loop
            mov %r0, %r7
            exit
            mix:
            mov %r0, %r1
            lsh %r0, 5
            add %r0, %r1
            xor %r0, %r2
            exit
            """,
        input: [],
        runs: 50,
        native: { _ in
            var r6: UInt64 = 20_000
            var r7: UInt64 = 0
            repeat {
                r7 = (r7 &<< 5 &+ r7) ^ r6
                r6 &-= 1
            } while r6 != 0
            return r7
        })
}
