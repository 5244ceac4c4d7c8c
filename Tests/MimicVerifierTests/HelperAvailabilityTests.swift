import MimicCore
import MimicKernel
@testable import MimicVerifier
import XCTest

/// Which helpers each program type may call: Mimic's table against the running kernel.
final class HelperAvailabilityTests: XCTestCase {
    static let types: [ProgramType] = [
        .socketFilter, .kprobe, .schedCls, .tracepoint, .xdp, .perfEvent, .cgroupSkb, .rawTracepoint, .lwtXmit,
    ]

    /// `call helper; exit`: the kernel looks the helper up before it checks any argument.
    static func kernelAllows(_ id: Int32, _ type: ProgramType) -> Bool? {
        let program = [
            RawInstruction(opcode: 0x85, imm: id), RawInstruction(opcode: 0xb7), RawInstruction(opcode: 0x95),
        ]
        do {
            _ = try KernelBPF.loadProgram(program, type: type)
            return true
        } catch {
            guard let log = error.verifierLog else { return nil }
            return !(log.contains("cannot use helper") || log.contains("unknown func") || log.contains("invalid func"))
        }
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
