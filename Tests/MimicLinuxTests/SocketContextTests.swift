import Foundation
import MimicCore
import MimicLinux
import Testing

/// The socket and cgroup contexts (`bpf_sock_addr`, `bpf_sock_ops`, `bpf_sock`, `bpf_sk_lookup`,
/// `bpf_flow_dissector`) on `Fixtures/netprog_sock.c` and hand-written context files.
/// (NetProgramKernelTests compares the types the kernel can test-run.)
struct SocketContextTests {
    static func results(_ loaded: Fixture.Loaded) throws -> [UInt64] {
        let map = try loaded.map("results")
        return (0..<8).map { index -> UInt64 in
            let key: [UInt8] = [UInt8(index), 0, 0, 0]
            let value = map.perCPUValues(forKey: key)?.first ?? []
            return value.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) }
        }
    }

    static func fit(_ context: any Context, _ loaded: Fixture.Loaded, _ program: String) throws -> any Context {
        let source = try #require(loaded.object.object.programs.first { $0.name == program })
        return try ContextFit.fit(context, to: source)
    }

    @Test("connect4 rewrites the address, binds and sets SO_MARK; the changes and effects are reported")
    func connectRewrite() throws {
        let loaded = try Fixture.load("netprog_sock")
        let context = try Self.fit(
            SockAddrContext(userAddress: [10, 0, 0, 1], userPort: 80), loaded, "connect_redirect")
        let process = try loaded.run("connect_redirect", context: context)
        guard case .exited(let r0) = process.state else {
            Issue.record("not exited")
            return
        }
        #expect(r0 == 1)
        let state = try #require(LinuxProcessState.of(process))
        let fields = Dictionary(
            uniqueKeysWithValues: (TestRunContext.output(of: process) ?? []).map { ($0.name, $0.value) })
        #expect(fields["user_ip4"] == 0x0100_007F, "127.0.0.1 in network order")
        #expect(fields["user_port"] == UInt64(UInt16(8080).bigEndian))
        #expect(fields["user_family"] == 2 && fields["type"] == 1 && fields["protocol"] == 6)
        #expect(state.contextRecord?.forbiddenWrites == [])
        let results = try Self.results(loaded)
        #expect(results[0] == 0, "bpf_bind of a sockaddr_in")
        #expect(results[1] == 0 && results[2] == 0 && results[3] == 42, "SO_MARK set and read back")
        #expect(Int64(bitPattern: results[4]) == -22, "bpf_bind with a 4-byte address: -EINVAL")
        #expect(state.socketEffects.map(\.description).first == "bpf_bind(AF_INET 10.0.0.5:0) = 0")
        #expect(state.socketEffects.contains { $0.description == "bpf_setsockopt(SOL_SOCKET, 36, 42) = 0" })
    }

    @Test("connect4 refuses port 25; sendmsg4 sets msg_src_ip4 on a UDP socket")
    func denyAndSendmsg() throws {
        let loaded = try Fixture.load("netprog_sock")
        let deny = try Self.fit(SockAddrContext(userAddress: [10, 0, 0, 9], userPort: 25), loaded, "connect_redirect")
        guard case .exited(let r0) = try loaded.run("connect_redirect", context: deny).state else { return }
        #expect(r0 == 0)
        let send = try Self.fit(SockAddrContext(userAddress: [10, 0, 0, 53], userPort: 53), loaded, "sendmsg_source")
        let process = try loaded.run("sendmsg_source", context: send)
        let fields = Dictionary(
            uniqueKeysWithValues: (TestRunContext.output(of: process) ?? []).map { ($0.name, $0.value) })
        #expect(fields["msg_src_ip4"] == 0x0200_000A, "10.0.0.2")
        #expect(try Self.results(loaded)[5] == 2 | 17 << 8 | 2 << 16, "SOCK_DGRAM, UDP, AF_INET")
    }

    @Test("a write the hook may not make is reported (the kernel's verifier refuses it)")
    func forbiddenWrite() throws {
        let loaded = try Fixture.load("netprog_sock")
        let context = try Self.fit(SockAddrContext(userAddress: [0, 0, 0, 0], userPort: 0), loaded, "bind_forbidden")
        let process = try loaded.run("bind_forbidden", context: context)
        #expect(LinuxProcessState.of(process)?.contextRecord?.forbiddenWrites == ["msg_src_ip4"])
        #expect(SockAddrContext.layout(for: .cgroupUdp4Sendmsg).field(named: "msg_src_ip4")?.writable == true)
        #expect(SockAddrContext.layout(for: .cgroupInet6Connect).field(named: "user_ip4")?.writable == false)
    }

    @Test("sock_ops: cb flags, TCP_CONGESTION set and read back, an unknown level refused, reply")
    func sockOps() throws {
        let loaded = try Fixture.load("netprog_sock")
        let connect = try ContextFile.load(
            data: Array(
                #"{"type": "bpf_sock_ops", "ctx": {"op": "TCP_CONNECT_CB", "remote_ip": "10.0.0.1", "remote_port": 443, "local_ip": "10.0.0.2", "local_port": 40000}}"#
                    .utf8))
        let process = try loaded.run("sock_ops", context: try Self.fit(connect, loaded, "sock_ops"))
        let results = try Self.results(loaded)
        #expect(results[0] == 0x80, "the unknown bit is returned")
        #expect(results[1] == 0x0C, "RTT and STATE callbacks set")
        #expect(results[2] == 0 && results[3] == 0)
        #expect(results[4] == UInt64(0x6F6E_6572), "\"reno\" read back")
        #expect(Int64(bitPattern: results[5]) == -22)
        let effects = LinuxProcessState.of(process)?.socketEffects.map(\.description) ?? []
        #expect(effects.first == "bpf_sock_ops_cb_flags_set(0x8c) = 128")
        #expect(
            LinuxProcessState.of(process)?.contextRecord?.forbiddenWrites == [],
            "the helper's change is not the program's")
        #expect(effects.contains("bpf_setsockopt(SOL_TCP, 13, \"reno\") = 0"))

        let timeout = SockOpsContext(fields: ["op": 1, "family": 2, "is_fullsock": 1])
        let second = try loaded.run("sock_ops", context: timeout)
        let fields = Dictionary(
            uniqueKeysWithValues: (TestRunContext.output(of: second) ?? []).map { ($0.name, $0.value) })
        #expect(fields["reply"] == 10)

        let established = try ContextFile.load(
            data: Array(
                #"{"type": "bpf_sock_ops", "ctx": {"op": 4, "remote_port": 443, "local_port": 40000, "snd_cwnd": 10, "bytes_acked": 5}}"#
                    .utf8))
        let third = try loaded.run("sock_ops", context: established)
        #expect(try Self.results(loaded)[6] == 443 | 40000 << 32, "bpf_ntohl(remote_port), local_port in host order")
        #expect(try Self.results(loaded)[7] == 15)
        #expect(LinuxProcessState.of(third)?.contextRecord?.forbiddenWrites == [], "sk_txhash is writable")
    }

    @Test("cgroup_sock sock_create sets mark and priority, refuses raw sockets")
    func sockCreate() throws {
        let loaded = try Fixture.load("netprog_sock")
        let context = try ContextFile.load(
            data: Array(#"{"type": "bpf_sock", "ctx": {"sock": {"family": 2, "sockType": 1, "protocol": 6}}}"#.utf8))
        let process = try loaded.run("sock_create", context: try Self.fit(context, loaded, "sock_create"))
        let fields = Dictionary(
            uniqueKeysWithValues: (TestRunContext.output(of: process) ?? []).map { ($0.name, $0.value) })
        #expect(fields["mark"] == 0x77 && fields["priority"] == 2)
        #expect(LinuxProcessState.of(process)?.contextRecord?.forbiddenWrites == [])
        var raw = SocketInfo()
        raw.type = 3
        let refused = try loaded.run(
            "sock_create", context: SockContext(socket: raw, attachType: .cgroupInetSockCreate))
        #expect(refused.state == .exited(0))
    }

    @Test("context files: unknown members, bad addresses, hooks and pairings are errors naming the field")
    func errors() throws {
        func message(_ json: String) -> String? {
            do {
                _ = try ContextFile.load(data: Array(json.utf8))
                return nil
            } catch { return "\(error)" }
        }
        #expect(
            message(#"{"type": "bpf_sock_addr", "ctx": {"user_ipp": "1.2.3.4"}}"#)?.contains("unknown field") == true)
        #expect(
            message(#"{"type": "bpf_sock_addr", "ctx": {"attach_type": "connect9"}}"#)?.contains("unknown attach type")
                == true)
        #expect(
            message(#"{"type": "bpf_sock_addr", "ctx": {"attach_type": "connect4", "user_ip": "fd00::1"}}"#)?
                .contains("IPv4 user_ip") == true)
        #expect(message(#"{"type": "bpf_sk_lookup", "ctx": {"family": 2, "local_ip6": "fd00::1"}}"#) != nil)
        #expect(
            message(#"{"type": "bpf_sock_ops", "ctx": {"op": "NOPE"}}"#)?.contains("unknown sock_ops operation") == true
        )
        #expect(
            message(#"{"type": "bpf_flow_dissector", "ctx": {"packet": {"hex": "00"}}}"#)?.contains("14 bytes") == true)
        let loaded = try Fixture.load("netprog_sock")
        #expect(throws: ContextError.self) { try Self.fit(SKLookupContext(), loaded, "sock_create") }
        // No hook given and none from the program: a clear setup error.
        #expect(throws: SetupError.self) { try loaded.run("sock_create", context: SockContext(socket: SocketInfo())) }
    }

    @Test("the context layouts match the UAPI offsets (checked with offsetof against linux/bpf.h)")
    func layouts() {
        #expect(SockAddrContext.layout(for: .cgroupInet4Connect).size == 72)
        #expect(SockAddrContext.layout(for: .cgroupInet4Connect).field(named: "msg_src_ip6[0]")?.offset == 44)
        #expect(SockOpsContext.layout.size == 216)
        #expect(SockOpsContext.layout.field(named: "bpf_sock_ops_cb_flags")?.offset == 84)
        #expect(SockOpsContext.layout.field(named: "sk_txhash")?.offset == 164)
        #expect(SockOpsContext.layout.field(named: "skb_tcp_flags")?.offset == 212)
        #expect(SKLookupContext.layout.field(named: "ingress_ifindex")?.offset == 64)
        #expect(SKLookupContext.layout.field(named: "remote_port")?.offset == 36)
        #expect(FlowDissectorContext.keysLayout.field(named: "flags")?.offset == 48)
        #expect(SockContext.layout(for: .cgroupInetSockCreate).field(named: "rx_queue_mapping")?.offset == 76)
    }

    @Test("sk_msg: data covers the first segment; pull linearises, push / pop reshape, apply and cork recorded")
    func skMsg() throws {
        let loaded = try Fixture.load("netprog_msg")
        var socket = SocketInfo()
        socket.family = 2
        socket.sourcePort = 40000
        socket.destinationPort = 80
        let context = SKMsgContext(segments: [Array("GET /".utf8), Array("index.html\r\n".utf8)], socket: socket)
        let fitted = try Self.fit(context, loaded, "msg_rewrite")
        let process = try loaded.run("msg_rewrite", context: fitted)
        let result = try #require(SKMsgContext.result(of: process))
        #expect(result.returnValue == 1)
        #expect(result.segments.flatMap { $0 } == Array("HDR:get /index.html".utf8))
        #expect(result.applyBytes == 100 && result.corkBytes == 16)
        let results = try Self.results(loaded)
        #expect(results[0] == 5 | 17 << 32, "data .. data_end is the first segment (5 bytes) of 17")
        #expect(results[1] == 2 | 80 << 16 | 40000 << 32)
        #expect(results[2] == 0 && results[3] == 0 && results[4] == 0)
        #expect(Int64(bitPattern: results[5]) == -22 && Int64(bitPattern: results[6]) == -22)
        #expect(results[7] == 19)
        let effects = LinuxProcessState.of(process)?.socketEffects.map(\.description) ?? []
        #expect(effects.first == "bpf_msg_pull_data(0, 8) = 0")
        #expect(LinuxProcessState.of(process)?.contextRecord?.forbiddenWrites == [], "size changed by push / pop")

        let short = try loaded.run("msg_rewrite", context: SKMsgContext(segments: [Array("hi".utf8)]))
        #expect(short.state == .exited(0), "short messages are dropped")
        #expect(throws: ContextError.self) {
            _ = try ContextFile.load(data: Array(#"{"type": "sk_msg_md", "ctx": {"segments": []}}"#.utf8))
        }
    }

    static func frame(protocol proto: UInt8, port: UInt16) -> [UInt8] {
        let ip: [UInt8] = [0x45, 0, 0, 28, 0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]
        let l4: [UInt8] = [0x30, 0x39, UInt8(port >> 8), UInt8(port & 0xFF), 0, 8, 0, 0]
        return [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00] + ip + l4
    }

    @Test("sk_reuseport: data at the transport header, fields, load_bytes from there, verdict by port")
    func skReuseport() throws {
        let loaded = try Fixture.load("netprog_reuseport")
        var socket = SocketInfo()
        socket.sourcePort = 53
        let context = SKReuseportContext(packet: Self.frame(protocol: 17, port: 53), bindInany: 1, socket: socket)
        let process = try loaded.run("select_group", context: try Self.fit(context, loaded, "select_group"))
        #expect(process.state == .exited(0), "UDP to port 53 is dropped")
        #expect(LinuxProcessState.of(process)?.contextRecord?.forbiddenWrites == [])
        let results = try Self.results(loaded)
        #expect(
            results[0] == 8 | UInt64(UInt16(0x0800).bigEndian) << 32,
            "len from the UDP header; eth_protocol in network order")
        #expect(results[1] == 17 | 1 << 8 | 1 << 16)
        #expect(results[2] == 53 << 32, "bpf_skb_load_bytes returned 0; the destination port read directly")
        #expect(results[3] == 53)
        let tcp = try loaded.run("select_group", context: SKReuseportContext(packet: Self.frame(protocol: 6, port: 53)))
        #expect(tcp.state == .exited(1))
        #expect(throws: ContextError.self) {
            _ = try ContextFile.load(
                data: Array(#"{"type": "sk_reuseport_md", "ctx": {"packet": {"hex": "00 01"}}}"#.utf8))
        }
    }

    @Test(
        "cgroup storage persists from run to run in Mimic, one per attach type; host updates need an existing storage")
    func cgroupStorage() throws {
        let loaded = try Fixture.load("netprog_cgstorage")
        let packet = Self.frame(protocol: 17, port: 53)
        var marks: [UInt32] = []
        for _ in 0..<3 {
            let context = try Self.fit(SKBContext(packet: packet, ifindex: 1), loaded, "count_egress")
            let process = try loaded.run("count_egress", context: context)
            marks.append(try #require(SKBContext.result(of: process)).fields.mark)
        }
        #expect(marks == [101, 102, 103])
        let totals = try loaded.map("totals", as: CgroupStorageMap.self)
        let key = totals.key(attachType: .cgroupInetIngress)
        #expect(totals.keys == [key])
        #expect(
            totals.value(forKey: key) == [3, 0, 0, 0, 0, 0, 0, 0] + [
                UInt8(3 * (packet.count - 14)), 0, 0, 0, 0, 0, 0, 0,
            ])
        #expect(totals.update(key: key, value: [UInt8](repeating: 0, count: 16), flags: .any, cpu: 0) == nil)
        var other = key
        other[8] = 9
        #expect(totals.update(key: other, value: [UInt8](repeating: 0, count: 16), flags: .any, cpu: 0) == .noEntry)
        #expect(totals.delete(key: key) == .invalid)
        let perCPU = try loaded.map("per_cpu", as: CgroupStorageMap.self)
        #expect(perCPU.perCPUValues(forKey: key)?.count == 2)
    }

    @Test("sk storage: created on first use per socket, kept across runs, deleted at TCP_CLOSE")
    func socketStorage() throws {
        let loaded = try Fixture.load("netprog_skstorage")
        func event(_ op: UInt64, args: [UInt32] = [], port: UInt16 = 40000) throws -> UInt64 {
            var fields: [String: UInt64] = ["op": op, "family": 2, "is_fullsock": 1]
            for (i, arg) in args.enumerated() { fields[i == 0 ? "reply" : "replylong[\(i)]"] = UInt64(arg) }
            let context = SockOpsContext(
                fields: fields, remoteAddress: [10, 0, 0, 1], remotePort: 443, localAddress: [10, 0, 0, 2],
                localPort: port)
            let process = try loaded.run("track", context: context)
            let values = Dictionary(
                uniqueKeysWithValues: (TestRunContext.output(of: process) ?? []).map { ($0.name, $0.value) })
            return values["reply"] ?? 0
        }
        #expect(try event(3) == 1)
        #expect(try event(4) == 2)
        #expect(try event(4, port: 40001) == 1, "another socket has its own storage")
        let map = try loaded.map("connections", as: SocketStorageMap.self)
        #expect(map.cookies.count == 2)
        #expect(try event(10, args: [1, 7]) == 0, "bpf_sk_storage_delete at TCP_CLOSE")
        #expect(
            UInt32(truncatingIfNeeded: try event(10, args: [1, 7])) == UInt32(bitPattern: -2), "-ENOENT the second time"
        )
        #expect(map.cookies.count == 1)
        #expect(
            map.update(key: [3, 0, 0, 0], value: [UInt8](repeating: 0, count: 8), flags: .any, cpu: 0) == .notSupported)
    }

    @Test("__sk_buff writes a program type may not make are reported; allowed ones are not")
    func skbForbiddenWrites() throws {
        let packet = Self.frame(protocol: 17, port: 53)
        let forbidden = try Fixture.load("netprog_skb_forbidden")
        for (program, field) in [("filter_writes_mark", "mark"), ("cgroup_writes_tc_index", "tc_index")] {
            let context = try Self.fit(SKBContext(packet: packet, ifindex: 1), forbidden, program)
            let process = try forbidden.run(program, context: context)
            #expect(SKBContext.forbiddenWrites(of: process) == [field], "\(program)")
        }
        let allowed = try Fixture.load("netprog_skb")
        for program in ["cg_ingress", "lwt_input", "lwt_transmit"] {
            let context = try Self.fit(SKBContext(packet: packet, ifindex: 1), allowed, program)
            let process = try allowed.run(program, context: context)
            #expect(SKBContext.forbiddenWrites(of: process).isEmpty, "\(program)")
        }
        #expect(SKBContext.writableFields(for: .socketFilter) == ["cb[0]", "cb[1]", "cb[2]", "cb[3]", "cb[4]"])
        #expect(SKBContext.writableFields(for: .skSkb) == ["tc_index", "priority"])
    }
}
