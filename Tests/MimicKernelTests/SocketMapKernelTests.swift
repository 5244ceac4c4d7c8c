import Foundation
import MimicCore
import MimicKernel
import MimicLinux
import Testing

/// `Tests/MimicLinuxTests/Fixtures/netprog_sockmap.c` against the kernel: its verifier takes every
/// program (sk_skb, sk_msg, sock_ops, sk_reuseport: types `BPF_PROG_TEST_RUN` cannot run, so
/// SocketMapTests checks their semantics in Mimic), and the tc program — a sockmap lookup and
/// delete, `bpf_skb_under_cgroup` on an empty cgroup array and past its end, the socket uid and
/// class ids — returns the same results in both. (The kernel's test run gives every sk_buff a
/// dummy socket: uid 0, state TCP_CLOSE, class id 0, which the Mimic context describes.)
@Suite(
    "Socket maps: the kernel's verifier and test run agree with Mimic",
    .enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct SocketMapKernelTests {
    static func object() throws -> ObjectFile {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        return try ObjectFile(contentsOf: root.appendingPathComponent("MimicLinuxTests/Fixtures/netprog_sockmap.o").path)
    }

    @Test("the kernel's verifier takes every program of netprog_sockmap")
    func verifierTakesThePrograms() throws {
        let kernel = try KernelObject(object: try Self.object())
        for name in [
            "parser", "verdict", "msg_verdict", "add_socket", "pick", "sockets", "socket_cgroups", "retval",
            "task_cgroups",
        ] {
            #expect(throws: Never.self, "\(name)") { _ = try kernel.program(named: name) }
        }
    }

    @Test("tc: empty sockmap, cgroup array errors in the kernel's order, socket uid and class ids")
    func testRun() throws {
        let comparison = try ObjectComparison(object: try Self.object(), programName: "sockets")
        var socket = SocketInfo()
        socket.state = 7 // the test run's sock_init_data leaves TCP_CLOSE
        let packet = NetProgramKernelTests.udp(port: 53)
        var skb = SKBContext(packet: packet, socket: socket)
        skb.dataStart = .mac
        let result = try comparison.run(packet: packet, mimicContext: skb)
        #expect(result.differences.isEmpty, "\(result.differences)")
        #expect(result.kernelReturn == 0)
    }
}
