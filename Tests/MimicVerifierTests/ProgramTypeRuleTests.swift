import MimicCore
@testable import MimicVerifier
import XCTest

/// The kernel's rules for the helpers and contexts the network program fixtures use (each rule
/// is also checked against the kernel by FixtureAgreementTests, through those fixtures).
final class ProgramTypeRuleTests: XCTestCase {
    func verify(
        _ text: String, _ type: ProgramType, attach: AttachType? = nil, maps: [VerifierMap] = []
    ) throws -> VerificationReport {
        let code = try RejectionClassTests.program(text, fds: nil)
        return Verifier().verify(
            VerifierProgram(
                name: "rule", instructions: code, type: type, attachType: attach, maps: maps, license: "GPL"))
    }

    /// bpf_sk_lookup_tcp's tuple size may be 0 (ARG_CONST_SIZE_OR_ZERO since Linux 6.11).
    func testSocketLookupTupleSizeMayBeZero() throws {
        let report = try verify(
            """
            mov %r6, %r1
            call 7
            and %r0, 31
            mov %r3, %r0
            mov %r1, %r6
            mov %r2, %r10
            add %r2, -40
            mov %r4, 0
            mov %r5, 0
            call 84
            jeq %r0, 0, out
            mov %r1, %r0
            call 86
            out:
            mov %r0, 2
            exit
            """, .xdp)
        XCTAssertTrue(report.accepted, report.error?.message ?? "")
    }

    func testFlowKeysAreBoundedByTheirStruct() throws {
        let read = "ldxdw %r2, [%r1+144]\nldxh %r0, [%r2+OFF]\nexit"
        let inside = try verify(read.replacingOccurrences(of: "OFF", with: "54"), .flowDissector)
        XCTAssertTrue(inside.accepted, inside.error?.message ?? "")
        let outside = try verify(read.replacingOccurrences(of: "OFF", with: "56"), .flowDissector)
        XCTAssertEqual(outside.error?.message, "invalid access to flow keys off=56 size=2")
        let otherField = try verify("ldxw %r0, [%r1+0]\nexit", .flowDissector)
        XCTAssertEqual(otherField.error?.message, "invalid bpf_context access off=0 size=4")
    }

    func testSkMsgDataIsAPacketPointer() throws {
        let report = try verify(
            """
            ldxdw %r2, [%r1+0]
            ldxdw %r3, [%r1+8]
            mov %r4, %r2
            add %r4, 8
            mov %r0, 1
            jgt %r4, %r3, out
            ldxb %r0, [%r2+7]
            out:
            exit
            """, .skMsg)
        XCTAssertTrue(report.accepted, report.error?.message ?? "")
        let narrow = try verify("ldxw %r0, [%r1+0]\nexit", .skMsg)
        XCTAssertFalse(narrow.accepted)
    }

    func testSockAddrFieldsFollowTheAttachType() throws {
        let write = "mov %r2, 1\nstxw [%r1+40], %r2\nmov %r0, 1\nexit"
        let bind = try verify(write, .cgroupSockAddr, attach: .cgroupInet4Bind)
        XCTAssertEqual(bind.error?.message, "invalid bpf_context access off=40 size=4")
        let sendmsg = try verify(write, .cgroupSockAddr, attach: .cgroupUdp4Sendmsg)
        XCTAssertTrue(sendmsg.accepted, sendmsg.error?.message ?? "")
        let ip6 = try verify("ldxw %r0, [%r1+8]\nexit", .cgroupSockAddr, attach: .cgroupInet4Connect)
        XCTAssertFalse(ip6.accepted)
        let family = try verify(
            "mov %r2, 2\nstxw [%r1+28], %r2\nmov %r0, 1\nexit", .cgroupSockAddr, attach: .cgroupInet4Connect)
        XCTAssertFalse(family.accepted)
    }

    func testLocalStorageIsANonNullMapValue() throws {
        let storage = VerifierMap(name: "totals", type: .cgroupStorage, keySize: 12, valueSize: 16, maxEntries: 0)
        let text = "lddw %r1, 0x4d41500000000000\nmov %r2, 0\ncall 81\nldxdw %r1, [%r0+OFF]\nmov %r0, 1\nexit"
        let inside = try verify(text.replacingOccurrences(of: "OFF", with: "8"), .cgroupSkb, maps: [storage])
        XCTAssertTrue(inside.accepted, inside.error?.message ?? "")
        let outside = try verify(text.replacingOccurrences(of: "OFF", with: "16"), .cgroupSkb, maps: [storage])
        XCTAssertFalse(outside.accepted)
        let hash = VerifierMap(name: "hash", type: .hash, keySize: 4, valueSize: 16, maxEntries: 4)
        XCTAssertFalse(try verify(text.replacingOccurrences(of: "OFF", with: "0"), .cgroupSkb, maps: [hash]).accepted)
    }

    func testDynptrDataIsSizedMemoryOrNull() throws {
        let text =
            "mov %r1, %r10\nadd %r1, -16\nmov %r2, 0\nmov %r3, 4\ncall 203\njeq %r0, 0, out\nldxb %r0, [%r0+OFF]\nout:\nexit"
        let inside = try verify(text.replacingOccurrences(of: "OFF", with: "3"), .syscall)
        XCTAssertTrue(inside.accepted, inside.error?.message ?? "")
        let outside = try verify(text.replacingOccurrences(of: "OFF", with: "4"), .syscall)
        XCTAssertFalse(outside.accepted)
    }

    func testSkReuseportAndFlowDissectorMayLoadSkbBytes() throws {
        guard let proto = HelperPrototypes.table[26] else { return XCTFail("no bpf_skb_load_bytes prototype") }
        XCTAssertTrue(HelperPrototypes.allows(proto.group, in: .skReuseport))
        XCTAssertTrue(HelperPrototypes.allows(proto.group, in: .flowDissector))
        XCTAssertFalse(HelperPrototypes.allows(proto.group, in: .xdp))
    }
}
