import Foundation
import Glibc
import Testing
import MimicCore
@testable import MimicKernel
@testable import MimicLinux

/// A network namespace this test process creates with `ip` (only namespace-local addresses and
/// veth pairs), enters on the calling thread (`setns`) for the kernel's test runs and sockets,
/// and deletes when done.
final class TestNamespace {
    let name: String
    static let ipTool = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    /// Why namespaces cannot be made here, or nil.
    static let unavailableReason: String? = {
        if let reason = KernelBPF.unavailableReason { return reason }
        if getuid() != 0 { return "creating a network namespace needs root" }
        if ipTool == nil { return "no `ip` command" }
        return nil
    }()

    init(_ tag: String) throws {
        name = "mimic-\(tag)-\(getpid())"
        _ = try? run(["netns", "del", name])
        try run(["netns", "add", name])
    }

    deinit { _ = try? run(["netns", "del", name]) }

    /// Runs `ip ARGS...`; a failure throws with its output.
    @discardableResult
    func run(_ arguments: [String]) throws -> String {
        guard let tool = Self.ipTool else { throw ComparisonError("no ip command") }
        let process = Foundation.Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw ComparisonError("ip \(arguments.joined(separator: " ")) failed: \(text)")
        }
        return text
    }

    /// `ip -n NAME ARGS...` for each line of `script`.
    func configure(_ script: String) throws {
        for line in script.split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            try run(["-n", name] + line.split(separator: " ").map(String.init))
        }
    }

    /// Runs a shell command inside the namespace (sysctls, /sys reads).
    @discardableResult
    func shell(_ command: String) throws -> String {
        try run(["netns", "exec", name, "sh", "-c", command])
    }

    func ifindex(_ device: String) throws -> UInt32 {
        let text = try shell("cat /sys/class/net/\(device)/ifindex").trimmingCharacters(in: .whitespacesAndNewlines)
        guard let value = UInt32(text) else { throw ComparisonError("ifindex of \(device): \(text)") }
        return value
    }

    /// `setns(2)`, which Glibc's module map leaves out (it needs `_GNU_SOURCE`).
    static let setns: (@convention(c) (Int32, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "setns") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
    }()

    /// Runs `body` with the calling thread in the namespace (and back after).
    func enter<T>(_ body: () throws -> T) throws -> T {
        guard let setns = Self.setns else { throw ComparisonError("setns is not available") }
        let own = open("/proc/thread-self/ns/net", O_RDONLY)
        let target = open("/var/run/netns/\(name)", O_RDONLY)
        defer {
            if own >= 0 { close(own) }
            if target >= 0 { close(target) }
        }
        guard own >= 0, target >= 0, setns(target, 0x4000_0000) == 0 else { // CLONE_NEWNET
            throw ComparisonError("cannot enter namespace \(name): errno \(errno)")
        }
        defer { _ = setns(own, 0x4000_0000) }
        return try body()
    }
}

/// Sockets made with the C library in the current namespace, closed with the value.
final class TestSockets {
    private(set) var descriptors: [Int32] = []
    deinit { for fd in descriptors { close(fd) } }

    static func address4(_ text: String, _ port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, text, &address.sin_addr)
        return address
    }

    static func address6(_ text: String, _ port: UInt16) -> sockaddr_in6 {
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = port.bigEndian
        inet_pton(AF_INET6, text, &address.sin6_addr)
        return address
    }

    func make(_ family: Int32, _ type: Int32) throws -> Int32 {
        let fd = socket(family, type, 0)
        guard fd >= 0 else { throw ComparisonError("socket: errno \(errno)") }
        descriptors.append(fd)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        return fd
    }

    func bind4(_ fd: Int32, _ host: String, _ port: UInt16) throws {
        var address = Self.address4(host, port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { throw ComparisonError("bind \(host):\(port): errno \(errno)") }
    }

    func bind6(_ fd: Int32, _ host: String, _ port: UInt16) throws {
        var address = Self.address6(host, port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
            }
        }
        guard rc == 0 else { throw ComparisonError("bind [\(host)]:\(port): errno \(errno)") }
    }

    func connect4(_ fd: Int32, _ host: String, _ port: UInt16) throws {
        var address = Self.address4(host, port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { throw ComparisonError("connect \(host):\(port): errno \(errno)") }
    }

    func localPort(_ fd: Int32) -> UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    /// `SO_COOKIE` (57) of a socket, or `SO_NETNS_COOKIE` (71) of its namespace.
    func cookie(_ fd: Int32, option: Int32 = 57) -> UInt64 {
        var value: UInt64 = 0
        var length = socklen_t(8)
        getsockopt(fd, SOL_SOCKET, option, &value, &length)
        return value
    }

    func accept(_ fd: Int32) throws -> Int32 {
        let client = Glibc.accept(fd, nil, nil)
        guard client >= 0 else { throw ComparisonError("accept: errno \(errno)") }
        descriptors.append(client)
        return client
    }
}

/// `bpf_fib_lookup`, `bpf_check_mtu` and the socket lookups in the kernel, run in a namespace
/// holding the interfaces, routes, neighbours and sockets of a `Network`, against Mimic given
/// that `Network` (issue 14: the kernel is the authority).
@Suite(
    "The emulated network against a kernel namespace",
    .serialized,
    .enabled(if: TestNamespace.unavailableReason == nil, "needs root, the ip command and the kernel's BPF"))
struct NetworkNamespaceTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// The namespace and the `Network` describing it.
    struct Setup {
        var namespace: TestNamespace
        var network: Network
        var veth0: UInt32, veth1: UInt32, veth2: UInt32
    }

    static func ip(_ text: String) -> [UInt8] { IPAddress.v4(text) ?? IPAddress.v6(text)! }

    static func makeNamespace(_ tag: String) throws -> Setup {
        let namespace = try TestNamespace(tag)
        try namespace.configure(
            """
            link set lo up
            link add veth0 address 02:00:00:00:00:02 type veth peer name veth1 address 02:00:00:00:00:03
            link add veth2 address 02:00:00:00:00:04 type veth peer name veth3 address 02:00:00:00:00:05
            link set veth1 mtu 9000
            link set veth0 up
            link set veth1 up
            link set veth2 up
            link set veth3 up
            addr add 10.1.0.1/24 dev veth0
            addr add fd00:1::1/64 dev veth0 nodad
            addr add 10.2.0.1/24 dev veth1
            addr add 10.3.0.1/24 dev veth2
            """)
        try namespace.shell(
            "echo 1 > /proc/sys/net/ipv4/conf/all/forwarding && echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"
                + " && echo 0 > /proc/sys/net/ipv4/conf/veth2/forwarding && echo 0 > /proc/sys/net/ipv6/conf/veth2/forwarding"
        )
        try namespace.configure(
            """
            route add 10.9.0.0/16 via 10.1.0.254 metric 10
            route add 10.9.1.0/24 via 10.2.0.254 dev veth1
            route add 10.8.0.0/16 via 10.1.0.254 mtu lock 1300
            route add 10.7.0.0/16 via 10.1.0.254 src 10.2.0.1
            route add blackhole 192.0.2.0/24
            route add unreachable 198.51.100.0/24
            route add prohibit 203.0.113.0/24
            route add 10.50.0.0/16 via 10.2.0.254 dev veth1 table 100
            route add default via 10.1.0.254
            -6 route add fd00:9::/32 via fd00:1::fe
            -6 route add blackhole fd00:dead::/32
            neigh add 10.1.0.254 lladdr 02:00:00:00:01:fe dev veth0 nud permanent
            neigh add 10.2.0.254 lladdr 02:00:00:00:02:fe dev veth1 nud stale
            neigh add 10.1.0.9 dev veth0 nud failed
            neigh add fd00:1::fe lladdr 02:00:00:00:01:ff dev veth0 nud permanent
            """)
        let veth0 = try namespace.ifindex("veth0")
        let veth1 = try namespace.ifindex("veth1")
        let veth2 = try namespace.ifindex("veth2")
        let veth3 = try namespace.ifindex("veth3")
        // The same network, described for Mimic with the host API.
        var network = Network(interfaces: [
            Network.Interface.loopback,
            .init(
                ifindex: veth0, name: "veth0", mac: [2, 0, 0, 0, 0, 2],
                addresses: [
                    .init(address: ip("10.1.0.1"), prefixLength: 24), .init(address: ip("fd00:1::1"), prefixLength: 64),
                ],
                peer: veth1),
            .init(
                ifindex: veth1, name: "veth1", mac: [2, 0, 0, 0, 0, 3], mtu: 9000,
                addresses: [.init(address: ip("10.2.0.1"), prefixLength: 24)], peer: veth0),
            .init(
                ifindex: veth2, name: "veth2", mac: [2, 0, 0, 0, 0, 4],
                addresses: [.init(address: ip("10.3.0.1"), prefixLength: 24)], forwarding: false, peer: veth3),
            .init(ifindex: veth3, name: "veth3", mac: [2, 0, 0, 0, 0, 5], peer: veth2),
        ])
        network.routes = [
            .init(destination: ip("10.9.0.0"), prefixLength: 16, gateway: ip("10.1.0.254"), ifindex: veth0, metric: 10),
            .init(destination: ip("10.9.1.0"), prefixLength: 24, gateway: ip("10.2.0.254"), ifindex: veth1),
            .init(
                destination: ip("10.8.0.0"), prefixLength: 16, gateway: ip("10.1.0.254"), ifindex: veth0, mtu: 1300,
                mtuLock: true),
            .init(
                destination: ip("10.7.0.0"), prefixLength: 16, gateway: ip("10.1.0.254"), ifindex: veth0,
                source: ip("10.2.0.1")),
            .init(type: .blackhole, destination: ip("192.0.2.0"), prefixLength: 24),
            .init(type: .unreachable, destination: ip("198.51.100.0"), prefixLength: 24),
            .init(type: .prohibit, destination: ip("203.0.113.0"), prefixLength: 24),
            .init(
                destination: ip("10.50.0.0"), prefixLength: 16, gateway: ip("10.2.0.254"), ifindex: veth1, table: 100),
            .init(destination: ip("0.0.0.0"), prefixLength: 0, gateway: ip("10.1.0.254"), ifindex: veth0),
            .init(destination: ip("fd00:9::"), prefixLength: 32, gateway: ip("fd00:1::fe"), ifindex: veth0),
            .init(type: .blackhole, destination: ip("fd00:dead::"), prefixLength: 32),
        ]
        network.neighbours = [
            .init(address: ip("10.1.0.254"), mac: [2, 0, 0, 0, 1, 0xFE], ifindex: veth0),
            .init(address: ip("10.2.0.254"), mac: [2, 0, 0, 0, 2, 0xFE], ifindex: veth1, state: .stale),
            .init(address: ip("10.1.0.9"), mac: [0, 0, 0, 0, 0, 0], ifindex: veth0, state: .failed),
            .init(address: ip("fd00:1::fe"), mac: [2, 0, 0, 0, 1, 0xFF], ifindex: veth0),
        ]
        try network.check()
        return Setup(namespace: namespace, network: network, veth0: veth0, veth1: veth1, veth2: veth2)
    }

    // MARK: bpf_fib_lookup

    /// One `queries` entry of net_fib.o: flags, then `struct bpf_fib_lookup`.
    static func fibQuery(
        flags: UInt32 = 0, family: UInt8 = 2, source: String? = nil, destination: String, ifindex: UInt32,
        totalLength: UInt16 = 0, tbid: UInt32 = 0, mark: UInt32 = 0
    ) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 72)
        put32(&bytes, 0, flags)
        var params = [UInt8](repeating: 0, count: 64)
        params[0] = family
        params[1] = 17
        put16(&params, 6, totalLength)
        put32(&params, 8, ifindex)
        let destinationBytes = ip(destination)
        params.replaceSubrange(32..<32 + destinationBytes.count, with: destinationBytes)
        if let source {
            let sourceBytes = ip(source)
            params.replaceSubrange(16..<16 + sourceBytes.count, with: sourceBytes)
        }
        put32(&params, 48, tbid)
        put32(&params, 52, mark)
        bytes.replaceSubrange(8..<72, with: params)
        return bytes
    }

    static func fibQueries(_ setup: Setup) -> [(String, [UInt8])] {
        let (veth0, veth2) = (setup.veth0, setup.veth2)
        let direct: UInt32 = 1
        let output: UInt32 = 2
        let skipNeighbour: UInt32 = 4
        let tbid: UInt32 = 8
        let source: UInt32 = 16
        return [
            ("via the /16's gateway", fibQuery(destination: "10.9.0.5", ifindex: veth0)),
            ("the longer /24 via veth1 (stale neighbour)", fibQuery(destination: "10.9.1.5", ifindex: veth0)),
            (
                "OUTPUT by veth0 skips the /24 of veth1",
                fibQuery(flags: output, destination: "10.9.1.5", ifindex: veth0)
            ),
            ("a locked MTU too small", fibQuery(destination: "10.8.1.1", ifindex: veth0, totalLength: 1400)),
            ("a locked MTU large enough", fibQuery(destination: "10.8.1.1", ifindex: veth0, totalLength: 1000)),
            ("blackhole", fibQuery(destination: "192.0.2.7", ifindex: veth0)),
            ("unreachable", fibQuery(destination: "198.51.100.7", ifindex: veth0)),
            ("prohibit", fibQuery(destination: "203.0.113.7", ifindex: veth0)),
            ("an own address", fibQuery(destination: "10.1.0.1", ifindex: veth0)),
            ("an own address, DIRECT", fibQuery(flags: direct, destination: "10.1.0.1", ifindex: veth0)),
            ("table 100", fibQuery(flags: direct | tbid, destination: "10.50.1.1", ifindex: veth0, tbid: 100)),
            (
                "a table that does not exist",
                fibQuery(flags: direct | tbid, destination: "10.50.1.1", ifindex: veth0, tbid: 101)
            ),
            ("the default route", fibQuery(destination: "10.50.1.1", ifindex: veth0)),
            ("a failed neighbour", fibQuery(destination: "10.1.0.9", ifindex: veth0)),
            ("SKIP_NEIGH", fibQuery(flags: skipNeighbour, destination: "10.1.0.77", ifindex: veth0)),
            ("SRC from the route", fibQuery(flags: source, destination: "10.7.1.1", ifindex: veth0)),
            ("SRC chosen on the device", fibQuery(flags: source, destination: "10.9.0.5", ifindex: veth0)),
            ("forwarding off", fibQuery(destination: "10.9.0.5", ifindex: veth2)),
            ("no such device", fibQuery(destination: "10.9.0.5", ifindex: 999)),
            ("an unknown family", fibQuery(family: 7, destination: "10.9.0.5", ifindex: veth0)),
            ("an unknown flag", fibQuery(flags: 0x40, destination: "10.9.0.5", ifindex: veth0)),
            ("IPv6 via a gateway", fibQuery(family: 10, source: "fd00:1::1", destination: "fd00:9::5", ifindex: veth0)),
            ("IPv6 blackhole", fibQuery(family: 10, destination: "fd00:dead::1", ifindex: veth0)),
            ("IPv6 link-local", fibQuery(family: 10, destination: "fe80::1", ifindex: veth0)),
            ("IPv6 SRC", fibQuery(flags: source, family: 10, destination: "fd00:9::5", ifindex: veth0)),
            ("IPv6 own address", fibQuery(family: 10, destination: "fd00:1::1", ifindex: veth0)),
            (
                "OUTPUT by veth1 for a veth0 route",
                fibQuery(flags: output, destination: "10.9.0.5", ifindex: setup.veth1)
            ),
            ("IPv6 MTU", fibQuery(family: 10, destination: "fd00:9::5", ifindex: veth0, totalLength: 1500)),
            ("MARK 7", fibQuery(flags: 32, destination: "10.50.1.1", ifindex: veth0, mark: 7)),
            ("MARK 8", fibQuery(flags: 32, destination: "10.50.1.1", ifindex: veth0, mark: 8)),
            ("an own address, DIRECT by veth1", fibQuery(flags: direct, destination: "10.1.0.1", ifindex: setup.veth1)),
        ]
    }

    static func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

    /// Runs `program` of `object` on a packet in the namespace and in Mimic; returns Mimic's
    /// `answers` by index, after checking that both sides agree.
    static func compare(
        _ setup: Setup, object name: String, program: String, queries: [(String, [UInt8])], end: [UInt8],
        context: (any Context)? = nil
    ) throws -> [Int: [UInt8]] {
        let object = try ObjectFile(contentsOf: fixtures.appendingPathComponent(name).path)
        return try setup.namespace.enter { () throws -> [Int: [UInt8]] in
            let comparison = try ObjectComparison(object: object, programName: program, network: setup.network)
            for (index, query) in queries.enumerated() {
                try comparison.setEntry(map: "queries", key: le32(UInt32(index)), values: [query.1])
            }
            if queries.count < 32 {
                try comparison.setEntry(map: "queries", key: le32(UInt32(queries.count)), values: [end])
            }
            let packet = Fixtures.packets[0]
            let result = try comparison.run(packet: packet, mimicContext: context)
            for difference in result.differences {
                // Name the query a differing answer belongs to.
                let label =
                    queries.indices.first {
                        difference.contains("key \(le32(UInt32($0)).map { String(format: "%02x", $0) }.joined()):")
                    }
                    .map { " (\(queries[$0].0))" } ?? ""
                Issue.record("\(program): \(difference)\(label)")
            }
            var answers: [Int: [UInt8]] = [:]
            for (key, values) in comparison.mimicContents("answers") {
                answers[Int(get32(key, 0))] = values.first
            }
            return answers
        }
    }

    /// With a policy rule (fwmark 7 → table 100) the kernel no longer merges the local table into
    /// main: a DIRECT lookup of main then misses the local routes.
    @Test func fibLookupFollowsPolicyRulesAsTheKernelDoes() throws {
        var setup = try Self.makeNamespace("rule")
        try setup.namespace.configure("rule add fwmark 7 table 100 priority 100")
        setup.network.rules = [Network.Rule(priority: 100, table: 100, fwmark: 7)]
        let queries = Self.fibQueries(setup)
        let end = [UInt8](repeating: 0xFF, count: 4) + [UInt8](repeating: 0, count: 68)
        for program in ["xdp_fib", "tc_fib"] {
            let context: any Context =
                program == "xdp_fib"
                ? XDPContext(packet: Fixtures.packets[0], ingressIfindex: setup.veth0)
                : SKBContext(packet: Fixtures.packets[0], ifindex: setup.veth0)
            let answers = try Self.compare(
                setup, object: "net_fib.o", program: program, queries: queries, end: end, context: context)
            let results = (0..<queries.count).map { Int64(bitPattern: get64(answers[$0] ?? [], 0)) }
            // MARK 7 reaches table 100 (via veth1), MARK 8 the default route (via veth0).
            let marked = answers[28] ?? []
            let unmarked = answers[29] ?? []
            #expect(results[28] == 0 && results[29] == 0, "\(program): \(results)")
            #expect(get32(marked, 8 + 8) == setup.veth1 && get32(unmarked, 8 + 8) == setup.veth0)
        }
    }

    @Test func fibLookupAndCheckMTUAgreeWithTheKernel() throws {
        let setup = try Self.makeNamespace("fib")
        let queries = Self.fibQueries(setup)
        let end = [UInt8](repeating: 0xFF, count: 4) + [UInt8](repeating: 0, count: 68)
        for program in ["xdp_fib", "tc_fib"] {
            let context: any Context =
                program == "xdp_fib"
                ? XDPContext(packet: Fixtures.packets[0], ingressIfindex: setup.veth0)
                : SKBContext(packet: Fixtures.packets[0], ifindex: setup.veth0)
            let answers = try Self.compare(
                setup, object: "net_fib.o", program: program, queries: queries, end: end, context: context)
            // Not only agreement: the answers are the ones the routes call for.
            let results = (0..<queries.count).map { Int64(bitPattern: get64(answers[$0] ?? [], 0)) }
            #expect(
                Array(results[0..<10]) == [0, 0, 0, 8, 0, 1, 2, 3, 4, 4] && results[10] == 0 && results[11] == 4
                    && results[13] == 7 && results[17] == 5 && results[18] == -19 && results[19] == -97
                    && results[20] == -22 && results[21] == 0 && results[23] == 4,
                "\(program): \(results)")
            let first = answers[0] ?? []
            #expect(Array(first[8 + 58..<8 + 64]) == [2, 0, 0, 0, 1, 0xFE], "dmac of 10.1.0.254")
        }
    }

    // MARK: Socket lookups

    /// One `queries` entry of net_socket.o.
    static func socketQuery(
        kind: UInt32, source: String, _ sourcePort: UInt16, destination: String, _ destinationPort: UInt16,
        length: UInt32? = nil, netns: UInt64 = .max, flags: UInt64 = 0
    ) -> [UInt8] {
        var tuple = [UInt8](repeating: 0, count: 36)
        let (s, d) = (ip(source), ip(destination))
        tuple.replaceSubrange(0..<s.count, with: s)
        tuple.replaceSubrange(s.count..<2 * s.count, with: d)
        tuple.replaceSubrange(
            2 * s.count..<2 * s.count + 4,
            with: [
                UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), UInt8(destinationPort >> 8),
                UInt8(destinationPort & 0xFF),
            ])
        var bytes = tuple + le32(length ?? (s.count == 4 ? 12 : 36)) + le32(kind) + [0, 0, 0, 0]
        bytes += (0..<8).map { UInt8(truncatingIfNeeded: netns >> (8 * $0)) }
        bytes += (0..<8).map { UInt8(truncatingIfNeeded: flags >> (8 * $0)) }
        return bytes
    }

    @Test func socketLookupsAgreeWithTheKernel() throws {
        var setup = try Self.makeNamespace("sock")
        let sockets = TestSockets()
        // The sockets, made inside the namespace; then described for Mimic with their ports and cookies.
        let ports = try setup.namespace.enter { () throws -> (client: UInt16, cookies: [UInt64]) in
            let listener = try sockets.make(AF_INET, Int32(SOCK_STREAM.rawValue))
            try sockets.bind4(listener, "10.1.0.1", 8080)
            guard listen(listener, 8) == 0 else { throw ComparisonError("listen: errno \(errno)") }
            let dual = try sockets.make(AF_INET6, Int32(SOCK_STREAM.rawValue))
            try sockets.bind6(dual, "::", 8081)
            guard listen(dual, 8) == 0 else { throw ComparisonError("listen: errno \(errno)") }
            let client = try sockets.make(AF_INET, Int32(SOCK_STREAM.rawValue))
            try sockets.connect4(client, "10.1.0.1", 8080)
            let accepted = try sockets.accept(listener)
            let udp = try sockets.make(AF_INET, Int32(SOCK_DGRAM.rawValue))
            try sockets.bind4(udp, "10.1.0.1", 5353)
            let connected = try sockets.make(AF_INET, Int32(SOCK_DGRAM.rawValue))
            try sockets.bind4(connected, "10.1.0.1", 6000)
            try sockets.connect4(connected, "10.1.0.1", 5353)
            let bound = try sockets.make(AF_INET, Int32(SOCK_DGRAM.rawValue))
            let device = Array("veth0".utf8CString)
            guard setsockopt(bound, SOL_SOCKET, SO_BINDTODEVICE, device, socklen_t(device.count)) == 0 else {
                throw ComparisonError("SO_BINDTODEVICE: errno \(errno)")
            }
            try sockets.bind4(bound, "0.0.0.0", 5354)
            let all = [listener, dual, client, accepted, udp, connected, bound]
            return (sockets.localPort(client), all.map { sockets.cookie($0) } + [sockets.cookie(listener, option: 71)])
        }
        let c = ports.client
        let zero4 = Self.ip("0.0.0.0")
        let any6 = Self.ip("::")
        let local = Self.ip("10.1.0.1")
        setup.network.sockets = [
            .init(transport: .tcp, localAddress: local, localPort: 8080, cookie: ports.cookies[0]),
            .init(transport: .tcp, localAddress: any6, localPort: 8081, cookie: ports.cookies[1]),
            .init(
                transport: .tcp, localAddress: local, localPort: c, remoteAddress: local, remotePort: 8080,
                cookie: ports.cookies[2]),
            .init(
                transport: .tcp, localAddress: local, localPort: 8080, remoteAddress: local, remotePort: c,
                cookie: ports.cookies[3]),
            .init(transport: .udp, localAddress: local, localPort: 5353, cookie: ports.cookies[4]),
            .init(
                transport: .udp, localAddress: local, localPort: 6000, remoteAddress: local, remotePort: 5353,
                cookie: ports.cookies[5]),
            .init(
                transport: .udp, localAddress: zero4, localPort: 5354, boundIfindex: setup.veth0,
                cookie: ports.cookies[6]),
        ]
        setup.network.netnsCookie = ports.cookies[7]
        try setup.network.check()
        let queries: [(String, [UInt8])] = [
            ("the accepted socket", Self.socketQuery(kind: 0, source: "10.1.0.1", c, destination: "10.1.0.1", 8080)),
            ("the client socket", Self.socketQuery(kind: 0, source: "10.1.0.1", 8080, destination: "10.1.0.1", c)),
            (
                "a new peer finds the listener",
                Self.socketQuery(kind: 0, source: "10.1.0.50", 1234, destination: "10.1.0.1", 8080)
            ),
            (
                "IPv4 finds the dual-stack listener",
                Self.socketQuery(kind: 0, source: "10.1.0.50", 1234, destination: "10.2.0.1", 8081)
            ),
            (
                "IPv6 finds it too",
                Self.socketQuery(kind: 0, source: "fd00:1::50", 1234, destination: "fd00:1::1", 8081)
            ),
            ("UDP", Self.socketQuery(kind: 1, source: "10.1.0.50", 999, destination: "10.1.0.1", 5353)),
            ("connected UDP", Self.socketQuery(kind: 1, source: "10.1.0.1", 5353, destination: "10.1.0.1", 6000)),
            ("UDP bound to veth0", Self.socketQuery(kind: 1, source: "10.1.0.50", 999, destination: "10.1.0.1", 5354)),
            ("skc_lookup_tcp", Self.socketQuery(kind: 2, source: "10.1.0.50", 1234, destination: "10.1.0.1", 8080)),
            (
                "a bad tuple size",
                Self.socketQuery(kind: 0, source: "10.1.0.50", 1234, destination: "10.1.0.1", 8080, length: 13)
            ),
            ("a flag", Self.socketQuery(kind: 0, source: "10.1.0.50", 1234, destination: "10.1.0.1", 8080, flags: 1)),
            (
                "another namespace's id",
                Self.socketQuery(kind: 0, source: "10.1.0.50", 1234, destination: "10.1.0.1", 8080, netns: 0)
            ),
            ("a closed port", Self.socketQuery(kind: 0, source: "10.1.0.50", 1234, destination: "10.1.0.1", 9)),
            ("UDP on a TCP port", Self.socketQuery(kind: 1, source: "10.1.0.50", 1234, destination: "10.1.0.1", 8080)),
        ]
        let end = [UInt8](repeating: 0, count: 40) + Self.le32(0xFF) + [UInt8](repeating: 0, count: 20)
        for (program, ifindex) in [("tc_socket", UInt32(1)), ("tc_socket", setup.veth0), ("xdp_socket", setup.veth0)] {
            let context: any Context =
                program == "xdp_socket"
                ? XDPContext(packet: Fixtures.packets[0], ingressIfindex: ifindex)
                : SKBContext(packet: Fixtures.packets[0], ifindex: ifindex)
            let answers = try Self.compare(
                setup, object: "net_socket.o", program: program, queries: queries, end: end, context: context)
            let found = (0..<queries.count).map { get32(answers[$0] ?? [0, 0, 0, 0], 0) }
            let states = (0..<queries.count).map { get32(answers[$0] ?? [UInt8](repeating: 0, count: 24), 20) }
            let boundFound: UInt32 = ifindex == setup.veth0 ? 1 : 0
            #expect(found == [1, 1, 1, 1, 1, 1, 1, boundFound, 1, 0, 0, 0, 0, 0], "\(program) on \(ifindex): \(found)")
            #expect(Array(states[0..<4]) == [1, 1, 10, 10], "\(program): established, established, listen, listen")
            if program == "tc_socket" {
                // bpf_skc_to_*: TCP sockets are tcp_sock (the dual-stack listener also tcp6_sock); UDP none.
                let casts = (0..<queries.count).map { get32(answers[$0] ?? [UInt8](repeating: 0, count: 88), 84) }
                #expect(Array(casts[0..<7]) == [1, 1, 1, 3, 3, 0, 0], "\(program): \(casts)")
            }
        }
        withExtendedLifetime(sockets) {}
    }

    @Test func syncookiesAgreeWithTheKernel() throws {
        var setup = try Self.makeNamespace("syn")
        let sockets = TestSockets()
        let cookie = try setup.namespace.enter { () throws -> UInt64 in
            let listener = try sockets.make(AF_INET, Int32(SOCK_STREAM.rawValue))
            try sockets.bind4(listener, "10.1.0.1", 8080)
            guard listen(listener, 8) == 0 else { throw ComparisonError("listen: errno \(errno)") }
            return sockets.cookie(listener)
        }
        setup.network.sockets = [
            .init(transport: .tcp, localAddress: Self.ip("10.1.0.1"), localPort: 8080, cookie: cookie)
        ]
        let object = try ObjectFile(contentsOf: Self.fixtures.appendingPathComponent("net_socket.o").path)
        // net.ipv4.tcp_syncookies 1 (the default: cookies only after an overflow), then 2 (always).
        for (setting, expected) in [
            (1, [-2, -22, -22, -93, -2, -22, -2, -2, -22, -22]),
            (2, [1300, -22, -22, -93, 536, -22, -2, -2, -22, -22]),
        ] {
            try setup.namespace.shell("echo \(setting) > /proc/sys/net/ipv4/tcp_syncookies")
            setup.network.tcpSyncookies = setting
            let values = try setup.namespace.enter { () throws -> [Int64] in
                let comparison = try ObjectComparison(
                    object: object, programName: "tc_syncookie", network: setup.network)
                let result = try comparison.run(
                    packet: Fixtures.packets[0],
                    mimicContext: SKBContext(packet: Fixtures.packets[0], ifindex: setup.veth0))
                for difference in result.differences { Issue.record("tcp_syncookies \(setting): \(difference)") }
                let contents = comparison.mimicContents("cookies")
                return (0..<10).map {
                    Int64(
                        bitPattern: get64(contents[Self.le32(UInt32($0))]?.first ?? [UInt8](repeating: 0, count: 8), 0))
                }
            }
            #expect(values == expected.map(Int64.init), "tcp_syncookies \(setting)")
        }
        withExtendedLifetime(sockets) {}
    }
}
