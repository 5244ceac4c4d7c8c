import Foundation
import MimicCore
import MimicKernel
import MimicLinux
import MimicTestSupport
import MimicVerifier
import XCTest

/// Every clang-built object of the repository: Mimic's verdict against the kernel's.
final class FixtureAgreementTests: XCTestCase {
    static var fixtures: [String] {
        let root = ExternalTestData.packageRoot.path
        var paths: [String] = []
        let fm = FileManager.default
        for directory in ["Examples", "Tests/MimicLinuxTests/Fixtures/tracing"]
            + ((try? fm.contentsOfDirectory(atPath: root + "/Tests")) ?? []).map({ "Tests/\($0)/Fixtures" })
        {
            let full = root + "/" + directory
            for name in ((try? fm.contentsOfDirectory(atPath: full)) ?? []).sorted() where name.hasSuffix(".o") {
                paths.append(full + "/" + name)
            }
        }
        return paths
    }

    /// `.kconfig` as the Linux emulator resolves it, given to the kernel and to Mimic alike.
    static func kconfig(of object: ObjectFile) -> [UInt8]? { try? LinuxEmulator.resolvedKconfig(of: object) }

    /// Loads a program into the kernel: nil when accepted, the last log line when rejected,
    /// or `.skipped` when the harness cannot load it (kconfig values, __ksym variables).
    enum KernelVerdict: Equatable {
        case accepted
        case rejected(String)
        case skipped(String)
    }

    /// The kernel's verdict as libbpf would get it: loaded without the object's BTF first (the
    /// verdicts recorded elsewhere are), then, when the kernel asks for it
    /// (`KernelError.asksForObjectBTF`), with it (`KernelObject(loadsObjectBTF:)`).
    static func kernelVerdict(_ object: ObjectFile, _ program: ObjectProgram) -> KernelVerdict {
        do {
            // __kconfig externs get the values the Linux emulator resolves, as `mimic compare` does.
            let kconfig = Self.kconfig(of: object)
            func load(withBTF: Bool) throws(KernelError) {
                _ = try KernelObject(object: object, kconfig: kconfig, loadsObjectBTF: withBTF)
                    .program(named: program.name)
            }
            do {
                try load(withBTF: false)
            } catch {
                guard error.asksForObjectBTF, object.btf != nil else { throw error }
                try load(withBTF: true)
            }
            return .accepted
        } catch let error as KernelError {
            if let log = error.verifierLog {
                let lines = log.split(separator: "\n").filter { !$0.hasPrefix("processed ") && !$0.isEmpty }
                // Refused before the verifier said anything (this machine's kernel refuses
                // trampoline programs, fentry and LSM, with EPERM): no verdict to compare.
                guard let last = lines.last.map(String.init) else { return .skipped("\(error)") }
                // A kernel built without CONFIG_IPV6_SEG6_BPF gives lwt_seg6local no seg6 helpers.
                if last.contains("program of this type cannot use helper bpf_lwt_seg6_") {
                    return .skipped("this kernel has no seg6 BPF helpers (CONFIG_IPV6_SEG6_BPF): \(last)")
                }
                return .rejected(last)
            }
            return .skipped("\(error)")
        } catch {
            return .skipped("\(error)")
        }
    }

    /// The running kernel's BTF: CO-RE relocations are applied against it, as libbpf does.
    static let kernelBTF: BTF? = try? KernelObject.runningKernelBTF()

    func testFixtureVerdictsAgreeWithTheKernel() throws {
        try XCTSkipUnless(KernelBPF.isAvailable, KernelBPF.unavailableReason ?? "no kernel")
        var rows: [String] = []
        var agree = 0
        var compared = 0
        var disagreements: [String] = []
        for path in Self.fixtures {
            guard let object = try? ObjectFile(contentsOf: path, targetBTF: Self.kernelBTF),
                object.byteOrderProblem == nil
            else { continue }
            for program in object.programs {
                let report = Verifier().verify(
                    object: object, program: program, kernelBTF: Self.kernelBTF, kconfig: Self.kconfig(of: object))
                let kernel = Self.kernelVerdict(object, program)
                let name = "\(URL(fileURLWithPath: path).lastPathComponent):\(program.name)"
                let mimic = report.accepted ? "accepted" : "rejected: \(report.error?.message ?? "")"
                switch kernel {
                case .skipped(let why):
                    rows.append("\(name)\tskipped (\(why.prefix(80)))\t\(mimic)")
                    continue
                case .accepted:
                    compared += 1
                    if report.accepted {
                        agree += 1
                    } else {
                        disagreements.append("\(name): kernel accepted, Mimic \(mimic)")
                    }
                    rows.append("\(name)\tkernel accepted\t\(mimic)")
                case .rejected(let line):
                    compared += 1
                    if !report.accepted {
                        agree += 1
                    } else {
                        disagreements.append("\(name): kernel rejected (\(line)), Mimic accepted")
                    }
                    rows.append("\(name)\tkernel rejected: \(line)\t\(mimic)")
                }
            }
        }
        print(rows.joined(separator: "\n"))
        print("fixture agreement: \(agree)/\(compared)")
        XCTAssertGreaterThan(compared, 30)
        let known = disagreements.filter { line in Self.knownDisagreements.keys.contains { line.hasPrefix("\($0):") } }
        XCTAssertEqual(
            disagreements.filter { !known.contains($0) }, [], disagreements.joined(separator: "\n"))
        // A known disagreement that went away is progress: take it off the list.
        XCTAssertEqual(known.count, Self.knownDisagreements.count, "known disagreements now: \(known)")
    }

    /// Disagreements left, by program, with why: a kernel rule not found yet, or a part of the
    /// kernel's verifier Mimic does not model. The test fails when one of them starts to agree, so
    /// the list stays true. Docs/Verifier.md lists them.
    static let knownDisagreements: [String: String] = [
        "kfuncs.o:lists_and_trees":
            "MimicVerifier does not model bpf_obj_new (its R0 is an unknown scalar, Docs/Verifier.md); the kernel, given the program's BTF, accepts it",
        "rbtree_shape.o:shape":
            "MimicVerifier does not model bpf_obj_new (its R0 is an unknown scalar, Docs/Verifier.md); the kernel, given the program's BTF, accepts it",
        "packet_kfuncs.o:tc_dynptr_rdwr":
            "the kernel refuses bpf_dynptr_slice_rdwr on an skb dynptr here ('bpf_dynptr_slice_rdwr() is not allowed')",
        "packet_kfuncs.o:xdp_dynptr_rdwr":
            "the kernel refuses bpf_dynptr_slice_rdwr on an xdp dynptr here ('bpf_dynptr_slice_rdwr() is not allowed')",
    ]
}
