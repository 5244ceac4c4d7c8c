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

    /// Mimic's answer against the kernel's for each helper of `ids` in a program of `type` (with
    /// `attachType`, or attached to the tracepoint `attachBTFID`): how many were compared, and
    /// those that differ.
    static func compare(
        _ ids: [Int32], in type: ProgramType, attachType: AttachType = AttachType(rawValue: 0),
        attachBTFID: UInt32 = 0
    ) -> (checked: Int, mismatches: [String]) {
        let attached = attachBTFID == 0 ? attachType : .traceRawTp
        var checked = 0
        var mismatches: [String] = []
        for id in ids {
            guard let kernel = kernelAllows(id, type, attachBTFID: attachBTFID, attachType: attachType),
                let proto = HelperPrototypes.prototype(id, for: type)
            else { continue }
            checked += 1
            let mimic =
                HelperPrototypes.allows(proto.group, in: type)
                && HelperPrototypes.allowedInProbe(proto.name, attachType: attached)
            if kernel != mimic { mismatches.append("\(proto.name) in \(type): kernel \(kernel), Mimic \(mimic)") }
        }
        return (checked, mismatches)
    }

    /// Prints how many agree and fails with the pairs that do not.
    func expectAgreement(_ results: [(checked: Int, mismatches: [String])], _ what: String) {
        let checked = results.map(\.checked).reduce(0, +)
        let mismatches = results.flatMap(\.mismatches)
        print("\(what): \(checked - mismatches.count)/\(checked) agree")
        XCTAssertEqual(mismatches, [], mismatches.joined(separator: "\n"))
    }

    static let tableIDs = HelperPrototypes.table.keys.sorted()

    func testTracingHelperAvailabilityMatchesTheKernel() throws {
        try XCTSkipUnless(KernelBPF.isAvailable, KernelBPF.unavailableReason ?? "no kernel")
        guard let btf = try? KernelObject.runningKernelBTF(),
            let target = btf.typeID(named: Self.tracepoint, kind: .typedef)
        else { throw XCTSkip("no kernel BTF with \(Self.tracepoint)") }
        let ids = Set(HelperPrototypes.table.keys).union(HelperPrototypes.tracingVariants.keys).sorted()
        expectAgreement([Self.compare(ids, in: .tracing, attachBTFID: target)], "tracing helper availability")
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
        let cases = Self.moreTypes.map { ($0, AttachType(rawValue: 0)) } + Self.attachedTypes
        expectAgreement(
            cases.map { type, attach in Self.compare(Self.tableIDs, in: type, attachType: attach) },
            "helper availability, more program types")
    }

    func testHelperAvailabilityMatchesTheKernel() throws {
        try XCTSkipUnless(KernelBPF.isAvailable, KernelBPF.unavailableReason ?? "no kernel")
        expectAgreement(Self.types.map { Self.compare(Self.tableIDs, in: $0) }, "helper availability")
    }
}
