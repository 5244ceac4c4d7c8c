import Foundation
import MimicCore
import MimicKernel
@testable import MimicVerifier
import XCTest

/// Which helpers each program type may call: Mimic's table against the running kernel.
final class HelperAvailabilityTests: XCTestCase {
    static let types: [ProgramType] = [
        .socketFilter, .kprobe, .schedCls, .tracepoint, .xdp, .perfEvent, .cgroupSkb, .rawTracepoint, .lwtXmit,
    ]

    /// A BTF-enabled tracepoint (tp_btf) stands for the tracing programs: it loads here, where
    /// fentry and LSM programs do not, and their helpers are the same (`tracing_prog_func_proto`).
    static let tracepoint = "btf_trace_sched_switch"

    /// `call helper; exit`: the kernel looks the helper up before it checks any argument.
    static func kernelAllows(
        _ id: Int32, _ type: ProgramType, attachBTFID: UInt32 = 0, attachType: AttachType = AttachType(rawValue: 0)
    ) -> Bool? {
        let program = [
            RawInstruction(opcode: 0x85, imm: id), RawInstruction(opcode: 0xb7), RawInstruction(opcode: 0x95),
        ]
        do {
            _ = try KernelBPF.loadProgram(
                program, type: type, expectedAttachType: attachBTFID == 0 ? attachType : .traceRawTp,
                // Syscall programs load only sleepable (BPF_F_SLEEPABLE).
                flags: type == .syscall ? 1 << 4 : 0, attachBTFID: attachBTFID)
            return true
        } catch {
            guard let log = error.verifierLog else { return nil }
            return
                !(log.contains("cannot use helper") || log.contains("unknown func") || log.contains("invalid func")
                || log.contains("helper call is not allowed in probe"))
        }
    }

    func testTracingHelperAvailabilityMatchesTheKernel() throws {
        try XCTSkipUnless(KernelBPF.isAvailable, KernelBPF.unavailableReason ?? "no kernel")
        guard let data = FileManager.default.contents(atPath: "/sys/kernel/btf/vmlinux"),
            let btf = try? BTF(bytes: [UInt8](data)), let target = btf.typeID(named: Self.tracepoint, kind: .typedef)
        else { throw XCTSkip("no kernel BTF with \(Self.tracepoint)") }
        var mismatches: [String] = []
        var checked = 0
        let ids = Set(HelperPrototypes.table.keys).union(HelperPrototypes.tracingVariants.keys)
        for id in ids.sorted() {
            guard let kernel = Self.kernelAllows(id, .tracing, attachBTFID: target),
                let proto = HelperPrototypes.prototype(id, for: .tracing)
            else { continue }
            checked += 1
            let mimic =
                HelperPrototypes.allows(proto.group, in: .tracing)
                && HelperPrototypes.allowedInProbe(proto.name, attachType: .traceRawTp)
            if kernel != mimic { mismatches.append("\(proto.name): kernel \(kernel), Mimic \(mimic)") }
        }
        print("tracing helper availability: \(checked - mismatches.count)/\(checked) agree")
        XCTAssertEqual(mismatches, [], mismatches.joined(separator: "\n"))
    }

    /// The program types whose load needs an expected attach type, each with one it takes.
    static let attachedTypes: [(ProgramType, AttachType)] = [
        (.cgroupSock, AttachType(rawValue: 2)), // BPF_CGROUP_INET_SOCK_CREATE
        (.cgroupSockAddr, .cgroupInet4Connect), (.cgroupSysctl, .cgroupSysctl),
        (.cgroupSockopt, .cgroupGetsockopt), (.skLookup, .skLookup),
    ]
    /// More program types, loaded without an attach type.
    static let moreTypes: [ProgramType] = [
        .sockOps, .skSkb, .skMsg, .flowDissector, .cgroupDevice, .lwtIn, .lwtOut, .skReuseport, .syscall,
        .schedAct,
    ]

    func testMoreProgramTypesHelperAvailabilityMatchesTheKernel() throws {
        try XCTSkipUnless(KernelBPF.isAvailable, KernelBPF.unavailableReason ?? "no kernel")
        var mismatches: [String] = []
        var checked = 0
        let cases = Self.moreTypes.map { ($0, AttachType(rawValue: 0)) } + Self.attachedTypes
        for (type, attach) in cases {
            for (id, _) in HelperPrototypes.table.sorted(by: { $0.key < $1.key }) {
                guard let kernel = Self.kernelAllows(id, type, attachType: attach),
                    let proto = HelperPrototypes.prototype(id, for: type)
                else { continue }
                checked += 1
                let mimic = HelperPrototypes.allows(proto.group, in: type)
                if kernel != mimic { mismatches.append("\(proto.name) in \(type): kernel \(kernel), Mimic \(mimic)") }
            }
        }
        print("helper availability, more program types: \(checked - mismatches.count)/\(checked) agree")
        XCTAssertEqual(mismatches, [], mismatches.joined(separator: "\n"))
    }

    func testHelperAvailabilityMatchesTheKernel() throws {
        try XCTSkipUnless(KernelBPF.isAvailable, KernelBPF.unavailableReason ?? "no kernel")
        var mismatches: [String] = []
        var checked = 0
        for (id, proto) in HelperPrototypes.table.sorted(by: { $0.key < $1.key }) {
            for type in Self.types {
                guard let kernel = Self.kernelAllows(id, type) else { continue }
                checked += 1
                let mimic = HelperPrototypes.allows(proto.group, in: type)
                if kernel != mimic { mismatches.append("\(proto.name) in \(type): kernel \(kernel), Mimic \(mimic)") }
            }
        }
        print("helper availability: \(checked - mismatches.count)/\(checked) agree")
        XCTAssertEqual(mismatches, [], mismatches.joined(separator: "\n"))
    }
}
