/// Parsing of IP address text for context files.
enum IPAddress {
    /// The 4 bytes of a dotted-quad IPv4 address (`10.0.0.1`), in network order.
    static func v4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), let value = UInt8(part, radix: 10) else {
                return nil
            }
            bytes.append(value)
        }
        return bytes
    }

    /// The 16 bytes of an IPv6 address (`fe80::1`, `::ffff:10.0.0.1`), in network order.
    static func v6(_ text: String) -> [UInt8]? {
        var text = Substring(text)
        var tailV4: [UInt8] = []
        if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains(".") {
            guard let v4 = v4(String(text[text.index(after: lastColon)...])) else { return nil }
            tailV4 = v4
            text = text[...lastColon]
            if text.hasSuffix(":"), !text.hasSuffix("::") { text = text.dropLast() }
        }
        func groups(_ part: Substring) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard !group.isEmpty, group.count <= 4, let value = UInt16(group, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        let needed = 8 - tailV4.count / 2
        var words: [UInt16]
        if let range = text.range(of: "::") {
            guard let head = groups(text[..<range.lowerBound]), let tail = groups(text[range.upperBound...]),
                !text[range.upperBound...].contains("::"), head.count + tail.count < needed
            else { return nil }
            words = head + [UInt16](repeating: 0, count: needed - head.count - tail.count) + tail
        } else {
            guard let all = groups(text), all.count == needed else { return nil }
            words = all
        }
        return words.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] } + tailV4
    }
}
