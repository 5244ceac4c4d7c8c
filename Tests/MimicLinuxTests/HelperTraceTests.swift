import Testing
import MimicCore
import MimicMemory
@testable import MimicLinux

/// bpf_trace_printk, bpf_trace_vprintk, bpf_snprintf and the kernel's format rules.
@Suite struct HelperTraceTests {
    static func format(_ text: String, _ args: [UInt64], maxArgs: Int = 3, memory: AddressSpace = AddressSpace())
        -> Result<String, Errno>
    {
        PrintfFormatter.format(Array(text.utf8) + [0], args: args, maxArgs: maxArgs, memory: memory)
            .map { String(decoding: $0, as: UTF8.self) }
    }

    @Test(
        arguments: [
            ("x=%d y=%u z=%x", [UInt64(bitPattern: -5), 7, 255], "x=-5 y=7 z=ff"),
            ("%i|%X", [UInt64(bitPattern: -1), 0xabc], "-1|ABC"),
            // %d/%u/%x take an int: the high half of the u64 is dropped.
            ("%d %u", [0x1_0000_0005, 0xFFFF_FFFF_FFFF_FFFF], "5 4294967295"),
            (
                "%ld %lld %lu %llu", [UInt64(bitPattern: -2), UInt64(bitPattern: -3), UInt64.max, 1 << 40],
                "-2 -3 18446744073709551615 1099511627776"
            ),
            ("%lx %llx", [0xdead_beef_cafe, 0x1], "deadbeefcafe 1"),
            ("100%% %c%c", [UInt64(UInt8(ascii: "o")), UInt64(UInt8(ascii: "k"))], "100% ok"),
            ("[%5d][%-5d][%05d][%+d]", [42, 42, UInt64(bitPattern: -42), 0], "[   42][42   ][-0042][+0]"),
            ("%p", [0x1234], "0000000000001234"),
            ("%px %pK", [0xff, 0x10], "00000000000000ff 0000000000000010"),
        ] as [(String, [UInt64], String)])
    func formats(format: String, args: [UInt64], expected: String) {
        #expect(Self.format(format, args, maxArgs: max(3, args.count)) == .success(expected))
    }

    @Test(arguments: [
        "%z", "%.2d", "%#x", "%lu %lu %lu %lu", "%q", "%sabc", "%hd", "%pZ",
        "tab\u{7F}", "é",
    ])
    func refusesWhatTheKernelRefuses(format: String) {
        #expect(Self.format(format, [1, 2, 3]) == .failure(.invalid))
    }

    @Test func formatNeedsItsNul() {
        #expect(
            PrintfFormatter.format(Array("abc".utf8), args: [], maxArgs: 3, memory: AddressSpace())
                == .failure(.invalid))
    }

    @Test func stringsAndAddressesComeFromMemory() throws {
        let memory = AddressSpace()
        let text = try memory.map(RegionStorage(bytes: Array("eth0".utf8) + [0]), name: "s")
        let ip = try memory.map(RegionStorage(bytes: [10, 0, 0, 1] + [UInt8](repeating: 0, count: 12)), name: "ip")
        #expect(Self.format("if=%s.", [text], memory: memory) == .success("if=eth0."))
        #expect(Self.format("%pI4 %pi4", [ip, ip], memory: memory) == .success("10.0.0.1 010.000.000.001"))
        #expect(Self.format("%pI6", [ip], memory: memory) == .success("0a00:0001:0000:0000:0000:0000:0000:0000"))
        // Unreadable strings print as empty, as the kernel does.
        #expect(Self.format("[%s]", [0x10], memory: memory) == .success("[]"))
    }

    @Test func tracePrintkCollectsLinesAndReturnsTheLength() throws {
        let source = """
            \(ContextTestSupport.storeBytes(Array("n=%d %s\n".utf8) + [0], at: 16))
            \(ContextTestSupport.storeBytes(Array("hi".utf8) + [0], at: 24))
            mov %r1, %r10
            add %r1, -16
            mov %r2, 10
            mov %r3, -7
            mov %r4, %r10
            add %r4, -24
            call 6
            exit
            """
        var environment = TaskEnvironment(pid: 42, comm: "tester")
        environment.clock = .manual(start: 3_500_000_000, step: 0)
        let (r0, process) = try ContextTestSupport.run(source, context: GenericContext(environment: environment))
        #expect(r0 == 8) // "n=-7 hi\n"
        let state = try #require(LinuxProcessState.of(process))
        #expect(state.traceOutput == ["n=-7 hi"])
        #expect(state.traceLines.count == 1)
        #expect(state.traceLines[0].hasSuffix("tester-42 [000] d....     3.500000: bpf_trace_printk: n=-7 hi"))
    }

    @Test func tracePrintkRefusesBadFormatsWithEINVAL() throws {
        let source = """
            \(ContextTestSupport.storeBytes(Array("%d %d %d %d".utf8) + [0], at: 16))
            mov %r1, %r10
            add %r1, -16
            mov %r2, 12
            call 6
            exit
            """
        let (r0, process) = try ContextTestSupport.run(source)
        #expect(r0 == Errno.invalid.helperReturnValue)
        #expect(LinuxProcessState.of(process)?.traceOutput == [])
    }

    @Test func tracePrintkWithABadFormatPointerStops() throws {
        let (vm, program) = try ContextTestSupport.load("mov %r1, 0x1000\nmov %r2, 4\ncall 6\nexit")
        let error = try #require(throws: ExecutionError.self) { try vm.run(program) }
        guard error.code == .helperFailed, error.kind.helperID == 6, error.kind.helperName == "bpf_trace_printk",
            error.kind.failure?.code == .memory
        else {
            Issue.record("unexpected \(error)")
            return
        }
    }

    @Test func vprintkTakesAnArray() throws {
        let source = """
            \(ContextTestSupport.storeBytes(Array("%d-%d-%d-%d".utf8) + [0], at: 16))
            stdw [%r10-48], 1
            stdw [%r10-40], 2
            stdw [%r10-32], 3
            stdw [%r10-24], 4
            mov %r1, %r10
            add %r1, -16
            mov %r2, 12
            mov %r3, %r10
            add %r3, -48
            mov %r4, 32
            call 177
            mov %r6, %r0
            mov %r1, %r10
            add %r1, -16
            mov %r2, 12
            mov %r3, %r10
            add %r3, -48
            mov %r4, 12
            call 177
            lsh %r0, 32
            or %r0, %r6
            exit
            """
        let (r0, process) = try ContextTestSupport.run(source)
        #expect(UInt32(truncatingIfNeeded: r0) == 7)
        #expect(Int32(truncatingIfNeeded: r0 >> 32) == -22) // data_len not a multiple of 8
        #expect(LinuxProcessState.of(process)?.traceOutput == ["1-2-3-4"])
    }

    @Test func snprintfTruncatesAndReturnsTheFullLength() throws {
        let source = """
            \(ContextTestSupport.storeBytes(Array("v=%u".utf8) + [0], at: 8))
            stdw [%r10-16], 12345
            stdw [%r10-32], -1
            mov %r1, %r10
            add %r1, -32
            mov %r2, 5
            mov %r3, %r10
            add %r3, -8
            mov %r4, %r10
            add %r4, -16
            mov %r5, 8
            call 165
            exit
            """
        let (r0, process) = try ContextTestSupport.run(source)
        #expect(r0 == 8) // "v=12345" + NUL
        let out = try process.memory.read(process.stackBase + UInt64(process.stackSize) - 32, count: 8)
        #expect(out == Array("v=12".utf8) + [0, 0xFF, 0xFF, 0xFF])
    }
}
