import Testing
import MimicCore

/// `PluginContextResult` reads a plugin's `context_result` JSON with the package's own codec:
/// 64-bit numbers arrive exactly (JSONSerialization would round them through Double).
@Suite struct PluginContextResultTests {
    @Test func sixtyFourBitFieldsAreExact() throws {
        let json = """
            {"type":"sk_buff","action":"TC_ACT_OK","packet":"AQID",
             "redirect":{"description":"to interface 4294967295","ifindex":4294967295},
             "fields":{"max":18446744073709551615,"odd":9007199254740993,"minus":-1,"mark":7},
             "trace":["one","two"],"warnings":[]}
            """
        let result = try PluginContextResult(json: json, returnValue: 0)
        #expect(result.fields["max"] == 18_446_744_073_709_551_615)
        #expect(result.fields["odd"] == 9_007_199_254_740_993)
        #expect(result.fields["minus"] == UInt64.max)
        #expect(result.fields["mark"] == 7)
        #expect(result.type == "sk_buff")
        #expect(result.action == "TC_ACT_OK")
        #expect(result.packet == [1, 2, 3])
        #expect(result.redirect == "to interface 4294967295")
        #expect(result.redirectIfindex == UInt32.max)
        #expect(result.trace == ["one", "two"])
        #expect(result.warnings == [])
    }

    @Test func absentMembersAreEmpty() throws {
        let result = try PluginContextResult(json: "{}", returnValue: 2)
        #expect(result.returnValue == 2)
        #expect(result.type == nil && result.packet == nil && result.redirect == nil && result.redirectIfindex == nil)
        #expect(result.fields.isEmpty && result.trace.isEmpty && result.warnings.isEmpty)
    }

    @Test(
        arguments: [
            ("[1]", "not a JSON object: [1]"),
            ("{", "not JSON (invalid JSON at line 1, column 2: unexpected end of input in an object): {"),
            (#"{"packet":"AQ"}"#, "packet: expected base64 (standard alphabet with padding), got \"AQ\""),
            (#"{"fields":{"mark":1.5}}"#, "fields.mark: expected an integer, got 1.5"),
            (#"{"fields":{"mark":18446744073709551616}}"#, "fields.mark: 18446744073709551616 does not fit in 64 bits"),
            (#"{"redirect":{"ifindex":4294967296}}"#, "redirect.ifindex: 4294967296 is out of range (0...4294967295)"),
            (#"{"trace":["a",1]}"#, "trace[1]: expected a string, got a number"),
        ] as [(String, String)])
    func malformedAnswersNameTheMember(json: String, detail: String) {
        #expect(throws: PluginError.invalidAnswer(plugin: "context result", detail: detail)) {
            try PluginContextResult(json: json, returnValue: 0)
        }
    }
}
