import Foundation
import Testing

/// `mimic run` on a sock_ops header-option callback reports what the kernel does after it: the
/// header with the options written and the rest of the reserved space NOP-filled.
@Suite struct TCPHeaderOptionCommandTests {
    static var object: String {
        MimicCLI.packageRoot.appendingPathComponent("Tests/MimicLinuxTests/Fixtures/netprog_hdr_opt.o").path
    }

    @Test func theWrittenHeaderIsReported() throws {
        let directory = try TemporaryDirectory()
        // Ports 40000 -> 443, doff 9: the MSS option, then 12 reserved bytes.
        let header =
            "9c 40 01 bb 00 00 00 01 00 00 00 01 90 10 ff ff 00 00 00 00 02 04 05 b4"
            + String(repeating: " 00", count: 12)
        let context = try directory.file(
            "ctx.json",
            #"{"type": "bpf_sock_ops", "ctx": {"op": "WRITE_HDR_OPT_CB", "remaining_opt_len": 12, "skb": {"hex": "\#(header)"}}}"#
        )
        let text = try MimicCLI.run(["run", Self.object, "-p", "hdr_opt", "-c", context])
        #expect(text.status == 0, "\(text)")
        #expect(text.stdout.contains("tcp header options: remaining_opt_len 0, reserved 0, written 12"), "\(text)")
        #expect(text.stdout.contains("02 04 05 b4 fe 08 eb 9f 01 02 03 04 fd 04 eb 9e"), "\(text)")
        #expect(text.stdout.contains("effect: bpf_store_hdr_opt(kind 254, length 8, eb9f01020304) = 0"), "\(text)")
        let json = try MimicCLI.run(["run", Self.object, "-p", "hdr_opt", "-c", context, "--json"])
        #expect(json.status == 0 && json.stdout.contains("\"tcp_header_options\""), "\(json)")
        // A bad member of the context file is named.
        let bad = try directory.file("bad.json", #"{"type": "bpf_sock_ops", "ctx": {"op": 15, "skb": {"hex": "00"}}}"#)
        let failed = try MimicCLI.run(["run", Self.object, "-p", "hdr_opt", "-c", bad])
        #expect(failed.status != 0 && failed.stderr.contains("ctx.skb"), "\(failed)")
    }
}
