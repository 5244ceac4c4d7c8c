import Foundation
import MimicCore
import Testing

@testable import MimicLinux

/// Socket maps, reuseport arrays and cgroup arrays (`SocketMaps.swift`) and their helpers
/// (`SocketMapHelpers`) on `Fixtures/netprog_sockmap.c`, against the rules of
/// `net/core/sock_map.c`, `kernel/bpf/reuseport_array.c`, `kernel/bpf/arraymap.c` and
/// `net/core/filter.c`. (NetProgramKernelTests checks that the kernel's verifier takes the
/// fixture; BPF_PROG_TEST_RUN cannot run sk_skb, sk_msg, sock_ops or sk_reuseport programs.)
struct SocketMapTests {
    /// A listener with SO_REUSEPORT (cookie 100), an established connection to it (101), a bound
    /// UDP socket with SO_REUSEPORT (102), a second listener of the first one's group (103), a
    /// connecting socket (104) and a connected UDP socket (105); cgroups /app (10), /app/web (11),
    /// /other (12).
    static var network: Network {
        var network = Network.standard
        func socket(
            _ transport: Network.Socket.TransportProtocol, _ port: UInt16, remote: [UInt8]? = nil, remotePort: UInt16 = 0,
            state: Network.Socket.State? = nil, cookie: UInt64, reuseport: Bool = false, cgroup: String = "/",
            uid: UInt32 = 0
        ) -> Network.Socket {
            var s = Network.Socket(
                transport: transport, localAddress: [10, 0, 0, 1], localPort: port, remoteAddress: remote,
                remotePort: remotePort, state: state, cookie: cookie)
            s.reuseport = reuseport
            s.cgroup = cgroup
            s.uid = uid
            return s
        }
        network.sockets = [
            socket(.tcp, 80, cookie: 100, reuseport: true, cgroup: "/app", uid: 1000),
            socket(.tcp, 80, remote: [10, 0, 0, 7], remotePort: 40000, cookie: 101, cgroup: "/app/web", uid: 1001),
            socket(.udp, 53, cookie: 102, reuseport: true),
            socket(.tcp, 80, cookie: 103, reuseport: true),
            socket(.tcp, 1234, remote: [10, 0, 0, 9], remotePort: 80, state: .synSent, cookie: 104),
            socket(.udp, 5353, remote: [10, 0, 0, 8], remotePort: 5353, cookie: 105),
        ]
        return network
    }

    static var system: EmulatedSystem {
        EmulatedSystem(cgroups: [
            .init(path: "/app", id: 10), .init(path: "/app/web", id: 11), .init(path: "/other", id: 12),
        ])
    }

    static func emulator() -> LinuxEmulator {
        LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 2, randomSeed: 1, network: network, system: system))
    }

    static func load() throws -> Fixture.Loaded {
        let emulator = Self.emulator()
        let vm = VM(emulator: emulator)
        return Fixture.Loaded(vm: vm, emulator: emulator, object: try vm.load(object: Fixture.object("netprog_sockmap")))
    }

    static func key(_ index: UInt32) -> [UInt8] { littleEndianBytes(index) }

    static func results(_ loaded: Fixture.Loaded) throws -> [Int64] {
        let map = try loaded.map("results")
        return (0..<8).map { index -> Int64 in
            let value = map.value(forKey: key(UInt32(index))) ?? []
            return Int64(bitPattern: value.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) })
        }
    }

    static func fit(_ context: any Context, _ loaded: Fixture.Loaded, _ program: String) throws -> any Context {
        let source = try #require(loaded.object.object.programs.first { $0.name == program })
        return try ContextFit.fit(context, to: source)
    }

    // MARK: Maps from the host

    @Test("creation follows sock_map_alloc, sock_hash_alloc, reuseport_array_alloc_check and the fd arrays' check")
    func creation() throws {
        let emulator = Self.emulator()
        let vm = VM(emulator: emulator)
        func errno(_ type: MapType, key: Int = 4, value: Int = 8, max: Int = 4, flags: MapFlags = []) -> Errno? {
            do {
                _ = try emulator.createMap(
                    MapAttributes(
                        name: "m", type: type, keySize: key, valueSize: value, maxEntries: max, flags: flags.rawValue),
                    in: vm)
                return nil
            } catch { return error.errno }
        }
        #expect(errno(.sockMap) == nil && errno(.sockMap, value: 4) == nil && errno(.sockHash, key: 16) == nil)
        #expect(errno(.sockMap, key: 8) == .invalid && errno(.sockMap, value: 16) == .invalid)
        #expect(errno(.sockMap, max: 0) == .invalid && errno(.sockMap, flags: .noPrealloc) == .invalid)
        #expect(errno(.sockHash, key: 0) == .invalid && errno(.sockHash, key: 600) == .tooBig)
        #expect(errno(.reuseportSockarray) == nil && errno(.reuseportSockarray, value: 2) == .invalid)
        #expect(errno(.reuseportSockarray, key: 8) == .invalid)
        #expect(errno(.cgroupArray, value: 4) == nil && errno(.cgroupArray, value: 8) == .invalid)
        #expect(LinuxEmulator.emulates(.sockMap) && LinuxEmulator.emulates(.cgroupArray))
    }

    @Test("a sockmap and a sockhash take network sockets by cookie, with the kernel's errors")
    func socketMapsFromTheHost() throws {
        let emulator = Self.emulator()
        let vm = VM(emulator: emulator)
        let sockMap = try #require(
            try emulator.createMap(
                MapAttributes(name: "sm", type: .sockMap, keySize: 4, valueSize: 8, maxEntries: 4), in: vm) as? SocketMap)
        #expect(sockMap.setSocket(cookie: 101, forKey: Self.key(0)) == nil)
        #expect(sockMap.setSocket(cookie: 100, forKey: Self.key(1)) == nil, "a listener may join")
        #expect(sockMap.setSocket(cookie: 105, forKey: Self.key(3)) == nil, "UDP sockets in any state")
        #expect(sockMap.setSocket(cookie: 999, forKey: Self.key(2)) == .badFileDescriptor)
        #expect(sockMap.setSocket(cookie: 104, forKey: Self.key(2)) == .notSupported, "SYN_SENT is neither")
        #expect(sockMap.setSocket(cookie: 101, forKey: Self.key(4)) == .tooBig)
        #expect(sockMap.setSocket(cookie: 101, forKey: Self.key(0), flags: .noExist) == .exists)
        #expect(sockMap.setSocket(cookie: 101, forKey: Self.key(2), flags: .exist) == .noEntry)
        #expect(sockMap.setSocket(cookie: 101, forKey: Self.key(2), flags: .lock) == .invalid)
        #expect(sockMap.value(forKey: Self.key(0)) == [101, 0, 0, 0, 0, 0, 0, 0])
        #expect(sockMap.hostLookup(key: Self.key(2)) == .failure(.noEntry))
        #expect(sockMap.delete(key: Self.key(2)) == .invalid && sockMap.delete(key: Self.key(9)) == .invalid)
        #expect(sockMap.delete(key: Self.key(3)) == nil)
        #expect(sockMap.nextKey(after: nil) == Self.key(0) && sockMap.nextKey(after: Self.key(3)) == nil)
        #expect(sockMap.keys == [Self.key(0), Self.key(1)])

        let hash = try #require(
            try emulator.createMap(
                MapAttributes(name: "sh", type: .sockHash, keySize: 4, valueSize: 4, maxEntries: 2), in: vm)
                as? SocketMap)
        #expect(hash.setSocket(cookie: 101, forKey: Self.key(70)) == nil)
        #expect(hash.setSocket(cookie: 100, forKey: Self.key(71)) == nil)
        #expect(hash.setSocket(cookie: 105, forKey: Self.key(72)) == .tooBig, "full")
        #expect(hash.setSocket(cookie: 105, forKey: Self.key(71)) == nil, "replacing needs no room")
        #expect(hash.hostLookup(key: Self.key(70)) == .failure(.noSpace), "4-byte values cannot hold the cookie")
        #expect(hash.socket(forKey: Self.key(71))?.cookie == 105)
        #expect(hash.delete(key: Self.key(99)) == .noEntry)
        #expect(hash.nextKey(after: nil) == Self.key(70) && hash.nextKey(after: Self.key(70)) == Self.key(71))
    }

    @Test("a reuseport array holds reuseport sockets only, each once; a socket in one cannot join a sockmap")
    func reuseportArrayFromTheHost() throws {
        let emulator = Self.emulator()
        let vm = VM(emulator: emulator)
        let array = try #require(
            try emulator.createMap(
                MapAttributes(name: "ra", type: .reuseportSockarray, keySize: 4, valueSize: 8, maxEntries: 2), in: vm)
                as? ReuseportSocketArray)
        let sockMap = try #require(
            try emulator.createMap(
                MapAttributes(name: "sm", type: .sockMap, keySize: 4, valueSize: 8, maxEntries: 4), in: vm) as? SocketMap)
        #expect(array.setSocket(cookie: 101, at: 0) == .invalid, "an established socket is in no reuseport group")
        #expect(array.setSocket(cookie: 100, at: 0) == nil)
        #expect(array.setSocket(cookie: 100, at: 1) == .busy, "sk_user_data is taken")
        #expect(array.setSocket(cookie: 102, at: 1, flags: .exist) == .noEntry)
        #expect(array.setSocket(cookie: 102, at: 1) == nil, "a bound UDP socket with SO_REUSEPORT")
        #expect(array.setSocket(cookie: 103, at: 2) == .tooBig)
        #expect(array.setSocket(cookie: 999, at: 0) == .badFileDescriptor)
        #expect(array.hostLookup(key: Self.key(0)) == .success(100))
        #expect(sockMap.setSocket(cookie: 100, forKey: Self.key(0)) == .busy)
        #expect(sockMap.setSocket(cookie: 103, forKey: Self.key(0)) == nil)
        #expect(array.setSocket(cookie: 103, at: 0) == .busy, "the sockmap's psock holds it")
        #expect(array.delete(key: Self.key(5)) == .tooBig && array.delete(key: Self.key(1)) == nil)
        #expect(array.delete(key: Self.key(1)) == .noEntry)
        #expect(array.setSocket(cookie: 102, at: 1) == nil, "deleting freed the socket")
    }

    @Test("a cgroup array holds the emulated system's cgroups, by id or path, as an fd array")
    func cgroupArrayFromTheHost() throws {
        let emulator = Self.emulator()
        let vm = VM(emulator: emulator)
        let array = try #require(
            try emulator.createMap(
                MapAttributes(name: "ca", type: .cgroupArray, keySize: 4, valueSize: 4, maxEntries: 2), in: vm)
                as? CgroupArrayMap)
        #expect(array.update(key: Self.key(0), value: littleEndianBytes(10), flags: .any, cpu: 0) == nil)
        #expect(array.cgroup(at: 0)?.path == "/app")
        #expect(array.update(key: Self.key(1), value: littleEndianBytes(99), flags: .any, cpu: 0) == .badFileDescriptor)
        #expect(array.update(key: Self.key(1), value: littleEndianBytes(10), flags: .noExist, cpu: 0) == .invalid)
        #expect(array.update(key: Self.key(2), value: littleEndianBytes(99), flags: .any, cpu: 0) == .tooBig)
        #expect(array.setCgroup(path: "/app/web", at: 1) == nil && array.cgroup(at: 1)?.id == 11)
        #expect(array.setCgroup(path: "/nowhere", at: 1) == .badFileDescriptor)
        #expect(array.value(forKey: Self.key(0)) == nil, "the kernel does not give the values back")
        #expect(array.delete(key: Self.key(1)) == nil && array.delete(key: Self.key(1)) == .noEntry)
    }

    // MARK: Programs

    @Test("the object loads with every map emulated; reuseport and cgroup arrays refuse the map helpers, naming the map")
    func loadingAndRefusedOperations() throws {
        let loaded = try Self.load()
        #expect(try loaded.map("sock_map", as: SocketMap.self).isHash == false)
        #expect(try loaded.map("sock_hash", as: SocketMap.self).isHash)
        _ = try loaded.map("reuse", as: ReuseportSocketArray.self)
        _ = try loaded.map("cgroups", as: CgroupArrayMap.self)
        let handle = try loaded.map("reuse").handle
        let program = try loaded.vm.load(
            try Assembler.assemble(
                "lddw %r1, 0x\(String(handle, radix: 16))\nmov %r2, %r10\nadd %r2, -8\nstdw [%r10-8], 0\ncall 1\nexit"),
            name: "lookup_reuse")
        let process = try loaded.vm.makeProcess(for: program, context: nil)
        do {
            _ = try process.run()
            Issue.record("a program looked up a reuseport array")
        } catch {
            #expect("\(error)".contains("map reuse is a BPF_MAP_TYPE_REUSEPORT_SOCKARRAY"), "\(error)")
        }
    }

    @Test("sk_skb: the parser returns the length; the verdict redirects to a connected socket, drops for a listener")
    func skSkb() throws {
        let loaded = try Self.load()
        let sockMap = try loaded.map("sock_map", as: SocketMap.self)
        #expect(sockMap.setSocket(cookie: 101, forKey: Self.key(0)) == nil)
        #expect(sockMap.setSocket(cookie: 100, forKey: Self.key(1)) == nil)
        let parsed = try loaded.run("parser", context: try Self.fit(SKBContext(packet: [0, 1, 2, 3, 4]), loaded, "parser"))
        #expect(parsed.state == .exited(5), "the stream's bytes: no Ethernet header is pulled")

        let redirected = try loaded.run(
            "verdict", context: try Self.fit(SKBContext(packet: [0, 9, 9]), loaded, "verdict"))
        #expect(redirected.state == .exited(1))
        let state = try #require(LinuxProcessState.of(redirected))
        #expect(state.socketRedirect?.cookie == 101 && state.socketRedirect?.ingress == true)
        #expect(state.socketRedirect?.map == "sock_map")
        #expect(try Self.results(loaded)[0] == 0, "flag 2 is not BPF_F_INGRESS: SK_DROP")
        #expect(state.socketEffects.last?.description.contains("socket cookie 101") == true)

        let listener = try loaded.run("verdict", context: try Self.fit(SKBContext(packet: [1]), loaded, "verdict"))
        #expect(listener.state == .exited(0), "a TCP listener takes no redirects")
        #expect(LinuxProcessState.of(listener)?.socketRedirect == nil)
        let empty = try loaded.run("verdict", context: try Self.fit(SKBContext(packet: [2]), loaded, "verdict"))
        #expect(empty.state == .exited(0))
    }

    @Test("sk_msg: redirect through the sockhash, else the sockmap; an unconnected UDP socket takes no redirects")
    func skMsg() throws {
        let loaded = try Self.load()
        let sockMap = try loaded.map("sock_map", as: SocketMap.self)
        let sockHash = try loaded.map("sock_hash", as: SocketMap.self)
        #expect(sockHash.setSocket(cookie: 105, forKey: Self.key(5)) == nil)
        #expect(sockHash.setSocket(cookie: 102, forKey: Self.key(2)) == nil)
        #expect(sockMap.setSocket(cookie: 101, forKey: Self.key(1)) == nil)
        let hashed = try loaded.run("msg_verdict", context: SKMsgContext(segments: [[5, 1, 2]]))
        #expect(hashed.state == .exited(1) && LinuxProcessState.of(hashed)?.socketRedirect?.cookie == 105)
        let mapped = try loaded.run("msg_verdict", context: SKMsgContext(segments: [[1]]))
        #expect(mapped.state == .exited(1) && LinuxProcessState.of(mapped)?.socketRedirect?.cookie == 101)
        #expect(try Self.results(loaded)[0] == 0, "key 1 is not in the sockhash")
        let unconnected = try loaded.run("msg_verdict", context: SKMsgContext(segments: [[2]]))
        #expect(unconnected.state == .exited(0) && LinuxProcessState.of(unconnected)?.socketRedirect == nil)
    }

    @Test("sock_ops: the context's socket joins from the established callbacks only; BPF_NOEXIST the second time")
    func sockOps() throws {
        let loaded = try Self.load()
        let established = SockOpsContext(
            fields: ["op": 4, "family": 2, "is_fullsock": 1, "state": 1], remoteAddress: [10, 0, 0, 2], remotePort: 443,
            localAddress: [10, 0, 0, 1], localPort: 50000)
        _ = try loaded.run("add_socket", context: established)
        #expect(try Self.results(loaded)[0...1] == [0, 0])
        let sockMap = try loaded.map("sock_map", as: SocketMap.self)
        let member = try #require(sockMap.socket(forKey: Self.key(3)))
        #expect(member.networkIndex == nil && member.cookie == established.socket.cookie)
        #expect(try loaded.map("sock_hash", as: SocketMap.self).socket(forKey: Self.key(9))?.cookie == member.cookie)
        _ = try loaded.run("add_socket", context: established)
        #expect(try Self.results(loaded)[0...1] == [-17, 0], "BPF_NOEXIST on a set slot; BPF_ANY replaces")
        _ = try loaded.run("add_socket", context: SockOpsContext(fields: ["op": 1, "family": 2, "is_fullsock": 1]))
        #expect(try Self.results(loaded)[0...1] == [-95, -95], "TIMEOUT_INIT: -EOPNOTSUPP")
    }

    @Test("sk_reuseport: select by the reuseport array; errors for an empty slot, a socket out of any group, another group")
    func skReuseport() throws {
        let loaded = try Self.load()
        #expect(try loaded.map("reuse", as: ReuseportSocketArray.self).setSocket(cookie: 100, at: 0) == nil)
        #expect(try loaded.map("sock_map", as: SocketMap.self).setSocket(cookie: 101, forKey: Self.key(2)) == nil)
        func run(protocol proto: UInt32, port: UInt16) throws -> (MimicCore.Process, [Int64]) {
            var socket = SocketInfo()
            socket.family = 2
            socket.type = proto == 6 ? 1 : 2
            socket.protocol = proto
            socket.sourceIPv4 = [10, 0, 0, 1]
            socket.sourcePort = port
            let context = SKReuseportContext(
                packet: SocketContextTests.frame(protocol: UInt8(proto), port: port), socket: socket)
            let process = try loaded.run("pick", context: try Self.fit(context, loaded, "pick"))
            return (process, try Self.results(loaded))
        }
        let (picked, results) = try run(protocol: 6, port: 80)
        #expect(results[0...2] == [-2, -22, 0], "empty slot -ENOENT; an established socket -EINVAL; the listener")
        #expect(picked.state == .exited(1) && LinuxProcessState.of(picked)?.socketRedirect?.cookie == 100)
        #expect(try run(protocol: 17, port: 80).1[2] == -91, "another protocol: -EPROTOTYPE")
        #expect(try run(protocol: 6, port: 8080).1[2] == -77, "another address: -EBADFD")
    }

    @Test("tc: a sockmap lookup is a reference; update with it, cgroup ids, delete; the packet's socket and cgroups")
    func tcSockets() throws {
        let loaded = try Self.load()
        #expect(try loaded.map("sock_map", as: SocketMap.self).setSocket(cookie: 101, forKey: Self.key(0)) == nil)
        let cgroups = try loaded.map("cgroups", as: CgroupArrayMap.self)
        #expect(cgroups.setCgroup(path: "/", at: 0) == nil && cgroups.setCgroup(path: "/other", at: 1) == nil)
        var socket = SocketInfo()
        socket.family = 2
        socket.protocol = 6
        socket.type = 1
        socket.state = 1
        let packet = ContextTestSupport.udpPacket
        let process = try loaded.run(
            "sockets", context: try Self.fit(SKBContext(packet: packet, socket: socket), loaded, "sockets"))
        #expect(process.state == .exited(0), "the reference was released")
        let results = try Self.results(loaded)
        #expect(results[0] == 80)
        let copied = try loaded.map("sock_hash", as: SocketMap.self).socket(forKey: Self.key(7))
        #expect(results[1] == 0 && copied?.cookie == 101)
        #expect(results[3] == -22, "deleting an empty sockmap slot")
        #expect(results[4] == 1, "the context's socket is in the root cgroup: under / (1), not under /other (0)")
        #expect(results[5] == -7 && results[6] == 0 && results[7] == 0)

        _ = try loaded.run("sockets", context: try Self.fit(SKBContext(packet: packet), loaded, "sockets"))
        let bare = try Self.results(loaded)
        #expect(UInt32(truncatingIfNeeded: bare[4]) == UInt32(bitPattern: -2), "no socket: -ENOENT")
        #expect(bare[6] == 65534, "no socket: the overflow uid")

        _ = try loaded.run(
            "socket_cgroups", context: try Self.fit(SKBContext(packet: packet), loaded, "socket_cgroups"))
        #expect(try Self.results(loaded)[2] == 11 | 10 << 16, "/app/web (11), its level-1 ancestor /app (10), no level 3")
    }

    @Test("a program that keeps a sockmap lookup's reference fails, naming the socket")
    func unreleasedReference() throws {
        let loaded = try Self.load()
        let sockMap = try loaded.map("sock_map", as: SocketMap.self)
        #expect(sockMap.setSocket(cookie: 101, forKey: Self.key(0)) == nil)
        let program = try loaded.vm.load(
            try Assembler.assemble(
                "lddw %r1, 0x\(String(sockMap.handle, radix: 16))\nmov %r2, %r10\nadd %r2, -8\nstdw [%r10-8], 0\ncall 1\nmov %r0, 0\nexit"
            ), name: "keeps")
        let process = try loaded.vm.makeProcess(for: program, context: SKBContext(packet: ContextTestSupport.udpPacket))
        do {
            _ = try process.run()
            Issue.record("the run ended holding a reference")
        } catch {
            #expect("\(error)".contains("cookie 101"), "\(error)")
        }
    }

    @Test("bpf_get_retval / bpf_set_retval in a cgroup hook; bpf_current_task_under_cgroup of the task's cgroup")
    func retvalAndTaskCgroups() throws {
        let loaded = try Self.load()
        var socket = SocketInfo()
        socket.family = 2
        let hook = SockContext(socket: socket, attachType: .cgroupInetSockCreate)
        let process = try loaded.run("retval", context: try Self.fit(hook, loaded, "retval"))
        #expect(try Self.results(loaded)[0...2] == [0, 0, 0xFFFF_FFFF])
        #expect(LinuxProcessState.of(process)?.cgroupRetval == -1)

        let cgroups = try loaded.map("cgroups", as: CgroupArrayMap.self)
        #expect(cgroups.setCgroup(path: "/app", at: 0) == nil && cgroups.setCgroup(path: "/", at: 1) == nil)
        _ = try loaded.run("task_cgroups")
        let results = try Self.results(loaded)
        #expect(results[0] == 1 << 32, "the default task is in the root cgroup: not under /app, under /")
        #expect(results[1] == -7)
    }

    @Test("bpf_sock_from_file: a struct socket for a socket's file, NULL for another file, a failure for no file")
    func sockFromFile() throws {
        let object = try ObjectFile(
            contentsOf: Fixture.directory.appendingPathComponent("tracing/system_helpers.bpf.o").path)
        let system = try EmulatedSystem(
            bytes: Array(
                #"{"tasks": [{"pid": 50, "comm": "app", "files": [{"fd": 3, "path": "/var/log/app.log"}, {"fd": 4, "path": "socket:[4711]"}]}]}"#
                    .utf8))
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1, system: system, kernelBTF: object.btf))
        let vm = VM(emulator: emulator)
        let files = try #require(try emulator.systemState(in: vm).kernel?.filePaths)
        func call(_ file: UInt64) throws -> UInt64 {
            let program = try vm.load(
                try Assembler.assemble("lddw %r1, 0x\(String(file, radix: 16))\ncall 162\nexit"), name: "from_file")
            return try vm.makeProcess(for: program, context: nil).run()
        }
        let socketFile = try #require(files.first { $0.value == "socket:[4711]" }?.key)
        let logFile = try #require(files.first { $0.value == "/var/log/app.log" }?.key)
        #expect(try call(socketFile) != 0)
        #expect(try call(logFile) == 0)
        #expect(throws: (any Error).self) { _ = try call(0x1234_5678) }
    }
}
