import Testing
import MimicCore
import MimicJSON
@testable import MimicLinux

/// The sock_ops header-option callbacks and helpers (`bpf_load_hdr_opt`, `bpf_store_hdr_opt`,
/// `bpf_reserve_hdr_opt`) against `net/core/filter.c`: the kernel's test run does not run
/// sock_ops programs, so `netprog_hdr_opt.o` runs in Mimic with the answers the kernel's source
/// gives (its verifier loads it: TCPHeaderOptionKernelTests).
@Suite struct TCPHeaderOptionTests {
    static func results(_ loaded: Fixture.Loaded) throws -> [Int: Int64] {
        let map = try loaded.map("results", as: ArrayMap.self)
        var values: [Int: Int64] = [:]
        for i in 0..<48 {
            let key = (0..<4).map { UInt8(truncatingIfNeeded: i >> (8 * $0)) }
            let bytes = map.value(forKey: key) ?? []
            values[i] = Int64(bitPattern: bytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        }
        return values
    }

    /// A TCP header (ports 40000 -> 443) with `options`, padded to whole words, then `payload`.
    static func segment(_ options: [UInt8], flags: UInt8 = 0x10, payload: [UInt8] = []) -> [UInt8] {
        let padded = options + [UInt8](repeating: 1, count: (4 - options.count % 4) % 4)
        var header: [UInt8] = [0x9C, 0x40, 0x01, 0xBB, 0, 0, 0, 1, 0, 0, 0, 1, 0, flags, 0xFF, 0xFF, 0, 0, 0, 0]
        header[12] = UInt8((20 + padded.count) / 4) << 4
        return header + padded + payload
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: " ")
    }

    static let mss: [UInt8] = [2, 4, 0x05, 0xB4]
    static let experimental: [UInt8] = [254, 8, 0xEB, 0x9F, 1, 2, 3, 4]

    static func context(_ json: String) throws -> any Context {
        try ContextFile.load(data: Array(json.utf8))
    }

    @Test(arguments: Fixture.engines)
    func lengthCallbackReserves(engine: ExecutionEngine) throws {
        let loaded = try Fixture.load("netprog_hdr_opt", engine: engine)
        let json =
            #"{"type": "bpf_sock_ops", "ctx": {"op": "HDR_OPT_LEN_CB", "skb": {"hex": "\#(Self.hex(Self.segment(Self.mss, payload: [9, 9])))"}}}"#
        let process = try loaded.run("hdr_opt", context: try Self.context(json))
        let r = try Self.results(loaded)
        #expect([r[0], r[1], r[2], r[3], r[4], r[5], r[6]] == [-22, -22, -28, 0, -1, -1, 1])
        let out = try #require(SockOpsContext.headerOptions(of: process, returnValue: 1))
        #expect(out.remainingOptionLength == 30, "40 - 4 bytes of MSS - 6 reserved")
        #expect(out.reserved == 8, "6 rounded up to a word")
        #expect(SockOpsContext.headerOptions(of: process, returnValue: 0)?.reserved == 0, "a program returning 0 fails")
        let effects = LinuxProcessState.of(process)?.socketEffects.map(\.description) ?? []
        #expect(effects.contains("bpf_reserve_hdr_opt(6 bytes) = 0"))
        #expect(effects.contains("bpf_reserve_hdr_opt(41 bytes) = -28"))
    }

    @Test(arguments: Fixture.engines)
    func writeCallbackStoresOptions(engine: ExecutionEngine) throws {
        let loaded = try Fixture.load("netprog_hdr_opt", engine: engine)
        // The header holds the kernel's MSS option, then the 12 bytes reserved for BPF.
        let header = Self.segment(Self.mss + [UInt8](repeating: 0, count: 12))
        let json =
            #"{"type": "bpf_sock_ops", "ctx": {"op": "WRITE_HDR_OPT_CB", "skb": {"hex": "\#(Self.hex(header))"}, "remaining_opt_len": 12}}"#
        let process = try loaded.run("hdr_opt", context: try Self.context(json))
        let r = try Self.results(loaded)
        // 16: only 4 bytes remain, and the space is checked before the header is searched.
        #expect((10...20).map { r[$0] } == [-1, -22, -22, -22, -17, 0, -28, -28, 0, 1, 8])
        #expect(r[21] == Int64(bitPattern: 0x0403_0201_9FEB_08FE), "the option read back")
        #expect(r[22] == -17, "kind 254 with magic eb9f is there")
        #expect(r[23] == 1, "skb_data_end started where the reserved space starts")
        let out = try #require(SockOpsContext.headerOptions(of: process, returnValue: 1))
        #expect(out.written == 12 && out.remainingOptionLength == 0)
        #expect(Array(out.segment[24..<36]) == Self.experimental + [253, 4, 0xEB, 0x9E])
        // The program failing: the kernel fills the whole reserved space with NOPs.
        let failed = try #require(SockOpsContext.headerOptions(of: process, returnValue: 0))
        #expect(failed.written == 0 && Array(failed.segment[24..<36]) == [UInt8](repeating: 1, count: 12))
        let fields = Dictionary(
            uniqueKeysWithValues: (TestRunContext.output(of: process) ?? []).map { ($0.name, $0.value) })
        #expect(fields["replylong[1]"] == 12, "args[1] is the reserved space")
    }

    @Test func writeCallbackPadsWhatIsNotWritten() throws {
        // Only a NOP-padded 4-byte store in 8 reserved bytes: the rest becomes NOPs.
        let program = """
            mov %r6, %r1
            stw [%r10-8], 0x020104fd
            mov %r2, %r10
            add %r2, -8
            mov %r3, 4
            mov %r4, 0
            call 143
            mov %r0, 1
            exit
            """
        let header = Self.segment([UInt8](repeating: 0xAA, count: 8))
        let context = SockOpsContext(fields: ["op": 15, "is_fullsock": 1], segment: header, remainingOptionLength: 8)
        let (r0, process) = try ContextTestSupport.run(program, context: context)
        let out = try #require(SockOpsContext.headerOptions(of: process, returnValue: r0))
        #expect(Array(out.segment[20..<28]) == [253, 4, 1, 2, 1, 1, 1, 1])
        #expect(
            LinuxProcessState.of(process)?.socketEffects.first?.description
                == "bpf_store_hdr_opt(kind 253, length 4, 0102) = 0")
    }

    @Test(arguments: Fixture.engines)
    func parseCallbackLoadsOptions(engine: ExecutionEngine) throws {
        let loaded = try Fixture.load("netprog_hdr_opt", engine: engine)
        let received = Self.segment(Self.mss + Self.experimental, payload: Array("data".utf8))
        let syn = Self.segment([2, 4, 0x05, 0x78], flags: 2)
        let json =
            #"{"type": "bpf_sock_ops", "ctx": {"op": "PARSE_HDR_OPT_CB", "skb": {"hex": "\#(Self.hex(received))"}, "syn": {"hex": "\#(Self.hex(syn))"}}}"#
        let process = try loaded.run("hdr_opt", context: try Self.context(json))
        let r = try Self.results(loaded)
        #expect((30...39).map { r[$0] } == [8, 0x0403_0201_9FEB_08FE, -28, 8, -42, 4, -22, 4, -22, -42])
        #expect(r[40] == 0x7805_0402, "the SYN's MSS option, 1400")
        let fields = Dictionary(
            uniqueKeysWithValues: (TestRunContext.output(of: process) ?? []).map { ($0.name, $0.value) })
        #expect(fields["skb_len"] == 36 && fields["skb_tcp_flags"] == 0x10)
    }

    @Test func withoutASegmentOrSYN() throws {
        let loaded = try Fixture.load("netprog_hdr_opt")
        _ = try loaded.run("hdr_opt", context: SockOpsContext(fields: ["op": 13, "is_fullsock": 1]))
        let r = try Self.results(loaded)
        #expect(r[30] == -1 && r[37] == -2, "-EPERM without a segment, -ENOENT without a saved SYN")
        // A callback past WRITE_HDR_OPT_CB (a timestamping one) may not load: -EOPNOTSUPP.
        let program = """
            stw [%r10-8], 2
            mov %r2, %r10
            add %r2, -8
            mov %r3, 8
            mov %r4, 0
            call 142
            exit
            """
        let (r0, _) = try ContextTestSupport.run(
            program, context: SockOpsContext(fields: ["op": 16], segment: Self.segment(Self.mss)))
        #expect(Int64(bitPattern: r0) == -95)
    }

    /// `bpf_tcp_send_ack` (tcp_congestion_ops struct_ops) sends an ACK outside the program: recorded.
    @Test func sendAckIsAnEffect() throws {
        let (r0, process) = try ContextTestSupport.run(
            "mov %r1, %r10\nadd %r1, -8\nmov %r2, 1001\ncall 116\nexit", context: GenericContext())
        #expect(r0 == 0)
        #expect(
            LinuxProcessState.of(process)?.socketEffects.map(\.description) == ["bpf_tcp_send_ack(rcv_nxt 1001) = 0"])
        #expect(throws: (any Error).self) {
            try ContextTestSupport.run("mov %r1, 0\nmov %r2, 1\ncall 116\nexit", context: GenericContext())
        }
    }

    /// `bpf_getsockopt(SOL_TCP, TCP_BPF_SYN)` gives the SYN's TCP header.
    @Test func getsockoptGivesTheSYN() throws {
        func run(_ name: Int, length: Int, syn: [UInt8]?) throws -> (Int64, [UInt8]) {
            let program = """
                mov %r2, 6
                mov %r3, \(name)
                mov %r4, %r10
                add %r4, -64
                mov %r5, \(length)
                call 57
                exit
                """
            let context = SockOpsContext(fields: ["op": 5, "is_fullsock": 1], syn: syn)
            let (r0, process) = try ContextTestSupport.run(program, context: context)
            let buffer = try process.memory.read(process.stackBase + UInt64(process.stackSize) - 64, count: length)
            return (Int64(bitPattern: r0), buffer)
        }
        let syn = Self.segment(Self.mss, flags: 2)
        #expect(try run(1005, length: 32, syn: syn) == (24, syn + [UInt8](repeating: 0, count: 8)))
        #expect(try run(1005, length: 8, syn: syn) == (-28, Array(syn.prefix(8))))
        #expect(try run(1005, length: 8, syn: nil) == (-2, [UInt8](repeating: 0, count: 8)))
        #expect(throws: (any Error).self) { try run(1006, length: 8, syn: syn) }
    }

    /// Past `WRITE_HDR_OPT_CB` (the timestamping callbacks) the socket is not locked: both
    /// socket-option helpers are `-EOPNOTSUPP` before any other check, and `bpf_getsockopt`
    /// leaves the buffer as it was (`is_locked_tcp_sock_ops` in bpf_sock_ops_getsockopt).
    @Test func socketOptionsNeedALockedCallback() throws {
        func run(helper: Int, name: Int, op: UInt64) throws -> (Int64, [UInt8]) {
            let program = """
                stdw [%r10-8], 0x7777
                mov %r2, 6
                mov %r3, \(name)
                mov %r4, %r10
                add %r4, -8
                mov %r5, 4
                call \(helper)
                exit
                """
            let context = SockOpsContext(fields: ["op": op, "is_fullsock": 1], syn: Self.segment(Self.mss, flags: 2))
            let (r0, process) = try ContextTestSupport.run(program, context: context)
            let buffer = try process.memory.read(process.stackBase + UInt64(process.stackSize) - 8, count: 4)
            return (Int64(bitPattern: r0), buffer)
        }
        let untouched: [UInt8] = [0x77, 0x77, 0, 0]
        for op: UInt64 in [16, 20] {
            #expect(try run(helper: 57, name: 1, op: op) == (-95, untouched), "getsockopt TCP_NODELAY, op \(op)")
            #expect(try run(helper: 57, name: 1005, op: op) == (-95, untouched), "getsockopt TCP_BPF_SYN, op \(op)")
            #expect(try run(helper: 49, name: 1, op: op).0 == -95, "setsockopt TCP_NODELAY, op \(op)")
        }
        #expect(try run(helper: 57, name: 1, op: 15).0 == 0, "WRITE_HDR_OPT_CB is locked")
        #expect(try run(helper: 49, name: 1, op: 4).0 == 0)
    }

    @Test func theSearchFollowsTheKernels() {
        func search(_ options: [UInt8], _ kind: UInt8, _ magic: [UInt8] = []) -> TCPHeaderOptionHelpers.Search {
            TCPHeaderOptionHelpers.searchOption(options[...], kind: kind, magic: magic)
        }
        #expect(search([1, 1, 2, 4, 5, 0xB4], 2) == .found([2, 4, 5, 0xB4][...]))
        #expect(search([0, 2, 4, 5, 0xB4], 2) == .failed(TCPHeaderOptionHelpers.noMessage, endOfList: true))
        #expect(
            search([3, 1, 2, 4, 5, 0xB4], 2) == .failed(TCPHeaderOptionHelpers.fault, endOfList: false), "length 1")
        #expect(search([3, 9, 1], 2) == .failed(TCPHeaderOptionHelpers.fault, endOfList: false), "past the end")
        #expect(
            search([254, 4, 0xEB, 0x9F], 254, [0xEB, 0x9F, 0, 0])
                == .failed(TCPHeaderOptionHelpers.noMessage, endOfList: false),
            "too short for a 4-byte magic")
        #expect(
            search([254, 4, 0xEB, 0x9E, 254, 4, 0xEB, 0x9F], 254, [0xEB, 0x9F]) == .found([254, 4, 0xEB, 0x9F][...]))
    }

    @Test func contextFileErrors() {
        func message(_ ctx: String) -> String {
            do {
                _ = try ContextFile.load(data: Array(#"{"type": "bpf_sock_ops", "ctx": \#(ctx)}"#.utf8))
                return ""
            } catch { return "\(error)" }
        }
        #expect(message(#"{"op": 13, "skb": {"hex": "00 01"}}"#).contains("ctx.skb: expected a TCP header"))
        #expect(
            message(#"{"op": 13, "syn": {"hex": "\#(Self.hex(Self.segment([]) .prefix(19).map { $0 }))"}}"#).contains(
                "ctx.syn"))
        #expect(message(#"{"op": 13, "remaining_opt_len": -1}"#).contains("ctx.remaining_opt_len"))
        #expect(message(#"{"op": 13, "skb_opts": 1}"#).contains("unknown field \"skb_opts\""))
        // Reserved space larger than the header's options is refused when the run starts.
        let context = SockOpsContext(fields: ["op": 15], segment: Self.segment(Self.mss), remainingOptionLength: 8)
        #expect(throws: (any Error).self) { try ContextTestSupport.run("mov %r0, 1\nexit", context: context) }
    }
}
