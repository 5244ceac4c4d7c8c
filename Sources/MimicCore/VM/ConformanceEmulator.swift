import MimicMemory

/// The six helpers the public bpf_conformance plugins register, for running its test vectors
/// (`call N` / `callx`) in tests and in `mimic bpf-conformance-plugin`.
///
/// | id | name | result |
/// |---|---|---|
/// | 0 | gather_bytes | `(a&0xff)<<32 | (b&0xff)<<24 | (c&0xff)<<16 | (d&0xff)<<8 | (e&0xff)` |
/// | 1 | memfrob | XORs each of the `b` bytes at address `a` with 42; returns 0 |
/// | 2 | no_op | returns 0 |
/// | 3 | sqrti | integer square root of `a` (truncated) |
/// | 4 | strcmp_ext | `strcmp` of the NUL-terminated strings at `a` and `b` |
/// | 5 | unwind | returns `a`; when that is 0 the program stops at once with R0 = 0 |
public final class ConformanceEmulator: Emulator {
    public let name = "conformance"

    private let helpers: [Helper]

    public init() {
        helpers = [
            Helper(id: 0, name: "gather_bytes") { p throws(HelperFailure) in
                func byte(_ n: Int) -> UInt64 { p.argument(n) & 0xFF } // no array: no allocation per call
                return .value(byte(1) << 32 | byte(2) << 24 | byte(3) << 16 | byte(4) << 8 | byte(5))
            },
            Helper(id: 1, name: "memfrob") { p throws(HelperFailure) in
                let address = p.argument(1)
                let length = p.argument(2)
                guard length <= UInt64(Int32.max) else { throw .message("memfrob length \(length) is too large") }
                do throws(MemoryFault) {
                    let bytes = try p.memory.read(address, count: Int(length))
                    try p.memory.write(bytes.map { $0 ^ 42 }, at: address)
                } catch {
                    throw .memory(error)
                }
                return .value(0)
            },
            Helper(id: 2, name: "no_op") { _ throws(HelperFailure) in .value(0) },
            Helper(id: 3, name: "sqrti") { p throws(HelperFailure) in
                .value(ConformanceEmulator.integerSquareRoot(p.argument(1)))
            },
            Helper(id: 4, name: "strcmp_ext") { p throws(HelperFailure) in
                do throws(MemoryFault) {
                    let a = try p.memory.readCString(p.argument(1))
                    let b = try p.memory.readCString(p.argument(2))
                    return .value(UInt64(bitPattern: Int64(ConformanceEmulator.compare(a, b))))
                } catch {
                    throw .memory(error)
                }
            },
            Helper(id: 5, name: "unwind") { p throws(HelperFailure) in
                let value = p.argument(1)
                return value == 0 ? .exit(0) : .value(value)
            },
        ]
    }

    public func helper(id: Int32) -> Helper? {
        id >= 0 && Int(id) < helpers.count ? helpers[Int(id)] : nil
    }

    public var helperIDs: [Int32] { helpers.map(\.id) }

    /// The largest `r` with `r * r <= n`.
    static func integerSquareRoot(_ n: UInt64) -> UInt64 {
        if n < 2 { return n }
        var r = UInt64(Double(n).squareRoot())
        while r > 0, r.multipliedReportingOverflow(by: r).overflow || r * r > n { r -= 1 }
        while case let (next, false) = (r + 1).multipliedReportingOverflow(by: r + 1), next <= n { r += 1 }
        return r
    }

    /// C `strcmp`: the difference of the first differing bytes (as unsigned char), or 0.
    static func compare(_ a: [UInt8], _ b: [UInt8]) -> Int {
        for i in 0..<max(a.count, b.count) {
            let x = i < a.count ? Int(a[i]) : 0
            let y = i < b.count ? Int(b[i]) : 0
            if x != y { return x - y }
        }
        return 0
    }
}
