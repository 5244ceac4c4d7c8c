import Foundation
import Testing
import MimicCore
import MimicJSON
import MimicLinux

/// Malformed context files give a `ContextError` naming the field; nothing crashes. Numbers are
/// read exactly.
@Suite struct ContextErrorTests {
    static func error(_ json: String) -> ContextError? {
        do {
            _ = try ContextFile.load(data: Array(json.utf8))
            return nil
        } catch {
            return error
        }
    }

    static func generic(_ memory: String, registers: String = "{}") -> String {
        #"{"name":"g","type":"generic","ctx":{"registers":\#(registers),"memory":[\#(memory)]}}"#
    }

    static let block = #"{"name":"buf","type":"block","value":{"value":"aGVsbG8="}}"#

    @Test(
        arguments: [
            // Envelope
            ("", "", "the document is empty"),
            ("{", "", "unexpected end of input"),
            (#"{"name":"x","type":"xdp_md","ctx":{}} extra"#, "", "after the JSON value"),
            (#"["x"]"#, "", "expected an object, got an array"),
            (#"{"name":"x","ctx":{}}"#, "type", "missing"),
            (#"{"name":"x","type":7,"ctx":{}}"#, "type", "expected a string, got a number"),
            (#"{"name":"x","type":"nope","ctx":{}}"#, "type", "unknown context type \"nope\""),
            (#"{"name":"x","type":"xdp_md"}"#, "ctx", "missing"),
            (#"{"name":"x","type":"xdp_md","ctx":[]}"#, "ctx", "expected an object, got an array"),
            // xdp_md
            (#"{"type":"xdp_md","ctx":{"packet":"not base64!"}}"#, "ctx.packet", "expected base64"),
            (#"{"type":"xdp_md","ctx":{"packet":"AAA"}}"#, "ctx.packet", "expected base64"),
            (#"{"type":"xdp_md","ctx":{"packet":42}}"#, "ctx.packet", "expected a string, got a number"),
            (#"{"type":"xdp_md","ctx":{"headroom":"256"}}"#, "ctx.headroom", "expected an integer, got a string"),
            (#"{"type":"xdp_md","ctx":{"headroom":-1}}"#, "ctx.headroom", "expected 0..."),
            (#"{"type":"xdp_md","ctx":{"headroom":1.5}}"#, "ctx.headroom", "expected an integer, got 1.5"),
            (#"{"type":"xdp_md","ctx":{"ingress_ifidx":4294967296}}"#, "ctx.ingress_ifidx", "out of range"),
            // sk_buff
            (
                #"{"type":"sk_buff","ctx":{"packet":"","sock":{"srcIP4":"10.0.0.256"}}}"#, "ctx.sock.srcIP4",
                "expected an IPv4 address"
            ),
            (
                #"{"type":"sk_buff","ctx":{"packet":"","sock":{"dstIP6":"fe80:::1"}}}"#, "ctx.sock.dstIP6",
                "expected an IPv6 address"
            ),
            (#"{"type":"sk_buff","ctx":{"packet":"","sock":{"srcPort":70000}}}"#, "ctx.sock.srcPort", "out of range"),
            (
                #"{"type":"sk_buff","ctx":{"packet":"","dev":{"ifIndex":"eth0"}}}"#, "ctx.dev.ifIndex",
                "expected an integer"
            ),
            (
                #"{"type":"sk_buff","ctx":{"packet":"","flowKeys":{"ip":"x"}}}"#, "ctx.flowKeys.ip",
                "expected an IPv4 or IPv6 address"
            ),
            (#"{"type":"sk_buff","ctx":{"packet":"","flowKeys":[]}}"#, "ctx.flowKeys", "expected an object"),
            // captured
            (#"{"type":"captured","ctx":{"helperCalls":{}}}"#, "ctx.subContext", "missing"),
            (
                #"{"type":"captured","ctx":{"subContext":{"type":"xdp_md","ctx":{"packet":"!"}}}}"#,
                "ctx.subContext.ctx.packet", "expected base64"
            ),
            (
                #"{"type":"captured","ctx":{"subContext":{"type":"generic","ctx":{}},"helperCalls":{"abc":[]}}}"#,
                "ctx.helperCalls.abc", "helper number"
            ),
            (
                #"{"type":"captured","ctx":{"subContext":{"type":"generic","ctx":{}},"helperCalls":{"14":[{"results":[{"reg":11,"value":1}]}]}}}"#,
                "ctx.helperCalls.14[0].results[0].reg", "register number 0...10"
            ),
            (
                #"{"type":"captured","ctx":{"subContext":{"type":"generic","ctx":{}},"helperCalls":{"14":[{"results":[{"reg":0,"value":true}]}]}}}"#,
                "ctx.helperCalls.14[0].results[0].value", "expected a number or a base64 string"
            ),
            (
                #"{"type":"captured","ctx":{"subContext":{"type":"generic","ctx":{}},"helperCalls":{"14":[{"helperFn":16,"results":[]}]}}}"#,
                "ctx.helperCalls.14[0].helperFn", "listed under helper 14"
            ),
            (
                #"{"type":"captured","ctx":{"subContext":{"type":"generic","ctx":{}},"helperCalls":{"14":[{"params":[{"reg":1,"value":18446744073709551616}]}]}}}"#,
                "ctx.helperCalls.14[0].params[0].value", "does not fit in 64 bits"
            ),
        ] as [(String, String, String)])
    func malformedFilesNameTheField(json: String, path: String, message: String) throws {
        let error = try #require(Self.error(json), "no error for \(json)")
        #expect(error.path == path, "\(error)")
        #expect(error.message.contains(message), "\(error)")
    }

    @Test(
        arguments: [
            (
                generic(
                    block
                        + #",{"name":"n","type":"int","value":{"value":1,"size":8}},{"name":"x","type":"int","value":{"value":1,"size":12}}"#
                ),
                "ctx.memory[2].value.size: expected 8, 16, 32 or 64, got 12"
            ),
            (
                generic(#"{"name":"x","type":"blob","value":{}}"#),
                "ctx.memory[0].type: expected block, ptr, int or struct, got \"blob\""
            ),
            (
                generic(#"{"name":"p","type":"ptr","value":{"memory":"nowhere","offset":0,"size":64}}"#),
                "ctx.memory[0].value.memory: no memory named \"nowhere\""
            ),
            (
                generic(block + #",{"name":"p","type":"ptr","value":{"memory":"buf","offset":9,"size":64}}"#),
                "ctx.memory[1].value.offset: 9 is past the end of \"buf\" (5 bytes)"
            ),
            (
                generic(
                    #"{"name":"i","type":"int","value":{"value":1,"size":32}},{"name":"p","type":"ptr","value":{"memory":"i"}}"#
                ),
                "ctx.memory[1].value.memory: a pointer must point to a block or struct, \"i\" is not"
            ),
            (
                generic(#"{"name":"s","type":"struct","value":[{"name":"a","memory":"s"}]}"#),
                "ctx.memory[0].value: struct \"s\" contains itself"
            ),
            (
                generic(#"{"name":"s","type":"struct","value":[{"name":"a","memory":"t"}]}"#),
                "ctx.memory[0].value[0].memory: no memory named \"t\""
            ),
            (generic(block + "," + block), "ctx.memory[1].name: memory \"buf\" is already defined at ctx.memory[0]"),
            (generic(block, registers: #"{"r6":"buf"}"#), "ctx.registers.r6: only r1 ... r5 can be set"),
            (generic(block, registers: #"{"r1":"nothing"}"#), "ctx.registers.r1: no memory named \"nothing\""),
            (
                generic(#"{"name":"b","type":"block","value":{"value":"","byteorder":"middle"}}"#),
                "ctx.memory[0].value.byteorder: expected big-endian, be, little-endian or le, got \"middle\""
            ),
            (
                generic(#"{"name":"i","type":"int","value":{"value":"1","size":8}}"#),
                "ctx.memory[0].value.value: expected an integer, got a string"
            ),
            (generic(#"{"type":"block","value":{}}"#), "ctx.memory[0].name: missing"),
            (
                #"{"type":"generic","ctx":{"memory":null,"emulator":{"pid":-1}}}"#,
                "ctx.emulator.pid: -1 is out of range (0...4294967295)"
            ),
        ] as [(String, String)])
    func malformedGenericContexts(json: String, expected: String) throws {
        let error = try #require(Self.error(json), "no error for \(json)")
        #expect(error.description == expected)
    }

    @Test func invalidJSONNamesLineAndColumn() throws {
        let error = try #require(Self.error("{\n  \"name\": \"x\",\n  \"type\": 'xdp_md'\n}"))
        #expect(error.description == "invalid JSON at line 3, column 11: unexpected ''', expected a value")
        for bad in [
            "{\"a\":01}", "{\"a\":1.}", "{\"a\":\"\\q\"}", "{\"a\":\"\u{01}\"}", "{\"a\" 1}", "[1,]", "{\"a\":tru}",
            "\"\\ud800\"",
        ] {
            #expect(Self.error(bad) != nil, "\(bad)")
        }
    }

    @Test func deepNestingIsAnErrorNotACrash() throws {
        let deep = String(repeating: "[", count: 100_000)
        let error = try #require(Self.error(deep))
        #expect(error.message.contains("nesting deeper than"))
    }

    @Test func capturedFileKeepsKernelAddressesExactly() throws {
        let url = ContextTestSupport.contextsDirectory.appendingPathComponent("captured.json")
        let captured = try #require(try ContextFile.load(contentsOf: url) as? CapturedContext)
        let record = try #require(captured.helperCalls[16]?.first)
        #expect(record.params.first?.value == .number(18_446_683_600_571_219_840))
        #expect(captured.helperCalls[6]?.first?.params.first?.value == .number(18_446_612_682_131_165_888))
    }

    @Test func goNullsAreEmpty() throws {
        let context = try ContextFile.load(
            data: Array(#"{"name":"n","type":"generic","ctx":{"registers":null,"memory":null,"emulator":null}}"#.utf8))
        #expect(context is GenericContext)
        let xdp = try ContextFile.load(data: Array(#"{"name":"n","type":"xdp_md","ctx":{"packet":null}}"#.utf8))
        #expect((xdp as? XDPContext)?.packet == [])
    }

    @Test func missingFileIsAnError() {
        #expect(throws: ContextError.self) {
            try ContextFile.load(contentsOf: URL(fileURLWithPath: "/nonexistent/context.json"))
        }
    }

    @Test func swiftBuiltGenericContextsAreCheckedAtAttach() throws {
        let context = GenericContext(
            memories: [("p", .pointer(target: "missing", offset: 0, bits: 64))], registers: [1: "p"])
        let vm = VM(emulator: LinuxEmulator())
        let program = try vm.load(Assembler.assemble("mov %r0, 0\nexit"))
        let error = try #require(throws: SetupError.self) { try vm.makeProcess(for: program, context: context) }
        #expect("\(error)".contains("no memory named \"missing\""))
    }
}
