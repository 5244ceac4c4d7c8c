import Foundation
import MimicCore
@testable import MimicKernel
import MimicLinux
import Testing

/// The netfilter program type against the kernel's test run (`bpf_prog_test_run_nf`, Linux ≥ 6.4):
/// `Fixtures/netprog_netfilter.c`, relocated against the running kernel's BTF on both sides
/// (Mimic lays `struct nf_hook_state` and `struct sk_buff` out from that BTF), run on the same
/// packets at each hook and family, with `ctx_in` a `struct nf_hook_state` of `hook` and `pf`.
/// The verdict and every observation the program leaves in `.bss` must agree. Hooks where the
/// test run's devices differ from a real hook's (it sets only `state->out`, whatever the hook)
/// are not read by the fixture.
@Suite(.enabled(if: KernelGate.enabled, "the kernel's BPF is not reachable (see the printed reason)"))
struct NetfilterKernelTests {
    static var path: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("MimicLinuxTests/Fixtures/netprog_netfilter.o").path
    }

    static func ipv6UDP(port: UInt16) -> [UInt8] {
        let udp: [UInt8] = [0x30, 0x39, UInt8(port >> 8), UInt8(port & 0xFF), 0, 14, 0, 0] + Array("mimic!".utf8)
        var ipv6: [UInt8] = [0x60, 0, 0, 0, 0, UInt8(udp.count), 17, 64]
        ipv6 += [0xFD] + [UInt8](repeating: 0, count: 14) + [1] + [0xFD] + [UInt8](repeating: 0, count: 14) + [2]
        return Fixtures.ethernet(type: 0x86DD, payload: ipv6 + udp)
    }

    static func ipv4(proto: UInt8, port: UInt16) -> [UInt8] {
        let l4: [UInt8] =
            proto == 6
            ? [
                0x9C, 0x40, UInt8(port >> 8), UInt8(port & 0xFF), 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xFF, 0xFF, 0, 0,
                0, 0,
            ]
            : [0x30, 0x39, UInt8(port >> 8), UInt8(port & 0xFF), 0, 12, 0, 0, 1, 2, 3, 4]
        return Fixtures.ethernet(type: 0x0800, payload: Fixtures.ipv4(protocol: proto, payload: l4))
    }

    @Test(
        "verdict and what the program read, at every hook, IPv4 and IPv6",
        arguments: NetfilterContext.Hook.allCases)
    func agrees(hook: NetfilterContext.Hook) throws {
        let btf = try KernelObject.runningKernelBTF()
        guard btf.typeID(named: "nf_hook_state", kind: .structure) != nil else {
            print("◇ the running kernel's BTF has no struct nf_hook_state: netfilter comparison skipped")
            return
        }
        let object = try ObjectFile(contentsOf: Self.path, targetBTF: btf)
        let kernelObject = try KernelObject(object: object, kernelBTF: btf)
        let kernelProgram = try kernelObject.program(named: "nf_filter")
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1, kernelBTF: btf))
        let vm = VM(emulator: emulator)
        let loaded = try vm.load(object: object)
        let program = try loaded.program(named: "nf_filter")
        var verdicts: Set<UInt32> = []
        let frames: [(pf: UInt8, frame: [UInt8])] = [
            (2, Self.ipv4(proto: 6, port: 23)), (2, Self.ipv4(proto: 6, port: 80)), (2, Self.ipv4(proto: 17, port: 9)),
            (2, Self.ipv4(proto: 1, port: 0)), (10, Self.ipv6UDP(port: 9)), (10, Self.ipv6UDP(port: 53)),
        ]
        for (index, (pf, frame)) in frames.enumerated() {
            // At local_out the test run takes the IP packet; elsewhere the frame.
            let packet = hook == .localOut ? Array(frame.dropFirst(14)) : frame
            var state = [UInt8](repeating: 0, count: 48)
            state[0] = hook.rawValue
            state[1] = pf
            let kernelRun = try KernelBPF.withPinnedCPU(0) { () throws(KernelError) -> KernelTestRun in
                try kernelProgram.testRun(data: packet, context: state)
            }
            let kernelBSS = try #require(try kernelObject.maps[".bss"]?.lookup(key: [0, 0, 0, 0]))

            let process = try vm.makeProcess(
                for: program, context: NetfilterContext(packet: packet, hook: hook, pf: pf), vCPU: 0)
            let mimicR0 = try process.run()
            let mimicBSS = try #require(loaded.globals[".bss"]).storage.bytes
            #expect(UInt32(truncatingIfNeeded: mimicR0) == kernelRun.returnValue, "packet \(index)")
            #expect(mimicBSS == kernelBSS, "packet \(index): kernel \(kernelBSS), Mimic \(mimicBSS)")
            verdicts.insert(kernelRun.returnValue)
            // Both sides start the next packet from zeros.
            let zeros = [UInt8](repeating: 0, count: kernelBSS.count)
            try kernelObject.maps[".bss"]?.update(key: [0, 0, 0, 0], value: zeros)
            loaded.globals[".bss"]?.storage.write(zeros, at: 0)
        }
        #expect(verdicts == [0, 1], "both verdicts: \(verdicts)")
    }

    @Test("the test run's refusals are the context's: a family, a short packet, a frame of another family")
    func refusals() throws {
        let btf = try KernelObject.runningKernelBTF()
        let object = try ObjectFile(contentsOf: Self.path, targetBTF: btf)
        let kernelProgram = try KernelObject(object: object, kernelBTF: btf).program(named: "nf_filter")
        let frame = Self.ipv4(proto: 17, port: 53)
        let cases: [(hook: NetfilterContext.Hook, pf: UInt8, packet: [UInt8])] = [
            (.localOut, 7, Array(frame.dropFirst(14))),
            (.localOut, 2, Array(frame.dropFirst(14).prefix(19))),
            (.preRouting, 10, frame),
            (.preRouting, 2, Array(frame.prefix(30))),
        ]
        for (hook, pf, packet) in cases {
            var state = [UInt8](repeating: 0, count: 48)
            state[0] = hook.rawValue
            state[1] = pf
            #expect(throws: KernelError.self, "hook \(hook) pf \(pf), \(packet.count) bytes") {
                try kernelProgram.testRun(data: packet, context: state)
            }
            #expect(NetfilterContext(packet: packet, hook: hook, pf: pf).problem != nil)
        }
    }
}
