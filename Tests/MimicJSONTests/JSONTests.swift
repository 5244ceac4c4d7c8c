import Testing
import MimicJSON

/// The package's JSON codec: numbers exact to the last bit, strings and base64 round trip,
/// errors naming the path.
@Suite struct JSONTests {
    @Test func largeUnsignedNumbersAreExact() throws {
        let value = try JSONValue.parse(
            #"{"max":18446744073709551615,"odd":9007199254740993,"v":18446656970732715112,"w":-9223372036854775808,"x":1e3}"#
        )
        let field = JSONField(value, path: "")
        #expect(try field["max"].integer(UInt64.self) == UInt64.max)
        #expect(try field["max"].bits64() == 18_446_744_073_709_551_615)
        // 2^53 + 1: the first integer a Double cannot hold.
        #expect(try field["odd"].integer(UInt64.self) == 9_007_199_254_740_993)
        #expect(try field["odd"].integer(Int64.self) == 9_007_199_254_740_993)
        #expect(try field["v"].integer(UInt64.self) == 18_446_656_970_732_715_112)
        #expect(try field["w"].bits64() == UInt64(bitPattern: Int64.min))
        #expect(throws: JSONError.self) { try field["x"].integer(Int.self) }
        // What JSONSerialization does with them: it rounds through Double.
        #expect(UInt64(exactly: Double(9_007_199_254_740_993 as UInt64)) != 9_007_199_254_740_993)
    }

    @Test func errorsNameThePath() throws {
        let value = try JSONValue.parse(#"{"ctx":{"memory":[{"size":300}]}}"#)
        let field = JSONField(value, path: "")["ctx"]["memory"]
        let size = try field.elements()[0]["size"]
        #expect(throws: JSONError(path: "ctx.memory[0].size", "300 is out of range (0...255)")) {
            try size.integer(UInt8.self)
        }
        #expect(throws: JSONError(path: "ctx.missing", "missing")) {
            try JSONField(value, path: "")["ctx"]["missing"].string()
        }
        #expect(throws: JSONError(path: "ctx", "expected an array, got an object")) {
            try JSONField(value, path: "")["ctx"].elements()
        }
    }

    @Test func stringsDecodeEscapes() throws {
        let value = try JSONValue.parse(#"["a\"b\\c\/d\n\u00e9\ud83d\ude00"]"#)
        #expect(value == .array([.string("a\"b\\c/d\né😀")]))
    }

    @Test func quotedStringsParseBack() throws {
        let text = "a\"b\\c\nd\re\tf\u{1}\u{1F}é😀"
        let quoted = JSONValue.quote(text)
        #expect(quoted == #""a\"b\\c\nd\re\tf\u0001\u001fé😀""#)
        #expect(try JSONValue.parse("[\(quoted)]") == .array([.string(text)]))
    }

    @Test func base64RoundTrips() {
        for length in 0..<20 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
        #expect(Base64.decode("cGhwLWZwbQAAAAAAAAAAAA==") == Array("php-fpm".utf8) + [UInt8](repeating: 0, count: 9))
        #expect(Base64.decode("YQ") == nil) // padding is required
        #expect(Base64.decode("YR==") == nil) // non-zero trailing bits
        #expect(Base64.decode("Y===") == nil)
    }
}
