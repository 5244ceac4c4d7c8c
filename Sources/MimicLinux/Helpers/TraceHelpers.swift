import Glibc
import MimicCore
import MimicMemory

/// `HelperID.tracePrintk`, `HelperID.traceVprintk` and `HelperID.snprintf`.
///
/// Formats follow the kernel's `bpf_bprintf_prepare`: the format must be NUL-terminated within its
/// size and contain only printable ASCII and white space; conversions are `%d %i %u %x %X` with
/// optional `l`/`ll`, `%c`, `%s`, `%p` (with `K x s S B`, `i4 I4 i6 I6`, `ks us`) and `%%`;
/// flags `0 + - space` and a width are allowed, a precision is not. A bad format returns `-EINVAL`
/// and prints nothing. `%s` strings that cannot be read print as empty. `%p` prints the raw value
/// as 16 hex digits (the kernel prints a hashed value); `%ps`/`%pS`/`%pB` print the address, as
/// there are no kernel symbols.
enum TraceHelpers {
    /// The kernel's `MAX_BPRINTF_BUF`: formatted output is cut at 1023 bytes.
    static let bufferSize = 1024
    /// `MAX_BPRINTF_VARARGS`: the most arguments of `HelperID.traceVprintk` and `HelperID.snprintf`.
    static let maxVarargs = 12

    static func all(for emulator: LinuxEmulator) -> [Helper] {
        [
            LinuxHelper.make(.tracePrintk, replay: .emulateThenReturnRecorded) { call throws(HelperFailure) in
                let format = try call.read(call.arg(1), count: try call.size(2, limit: 1 << 16))
                return emit(call, format: format, args: [call.arg(3), call.arg(4), call.arg(5)], maxArgs: 3)
            },
            LinuxHelper.make(.traceVprintk, replay: .emulateThenReturnRecorded) { call throws(HelperFailure) in
                let format = try call.read(call.arg(1), count: try call.size(2, limit: 1 << 16))
                switch try varargs(call, data: call.arg(3), length: call.arg(4)) {
                case .failure(let errno): return errno.r0
                case .success(let args): return emit(call, format: format, args: args, maxArgs: args.count)
                }
            },
            LinuxHelper.make(.snprintf) { call throws(HelperFailure) in
                let buffer = call.arg(1)
                let size = try call.size(2)
                let format: [UInt8]
                do throws(MemoryFault) {
                    format = try call.process.memory.readCString(call.arg(3), maxLength: 1 << 16) + [0]
                } catch { throw .memory(error) }
                let args: [UInt64]
                switch try varargs(call, data: call.arg(4), length: call.arg(5)) {
                case .failure(let errno): return errno.r0
                case .success(let values): args = values
                }
                switch PrintfFormatter.format(format, args: args, maxArgs: args.count, memory: call.process.memory) {
                case .failure(let errno): return errno.r0
                case .success(let text):
                    if size > 0 { try call.write(Array(text.prefix(size - 1)) + [0], at: buffer) }
                    return UInt64(text.count + 1)
                }
            },
        ]
    }

    /// The u64 array of `HelperID.traceVprintk` / `HelperID.snprintf`: `length` must be a multiple of 8 and
    /// at most 12 values, else `-EINVAL`.
    static func varargs(_ call: HelperCall, data: UInt64, length: UInt64) throws(HelperFailure) -> Result<
        [UInt64], Errno
    > {
        guard length % 8 == 0, length <= UInt64(8 * maxVarargs) else { return .failure(.invalid) }
        guard length > 0 else { return .success([]) }
        let bytes = try call.read(data, count: Int(length))
        return .success(stride(from: 0, to: bytes.count, by: 8).map { get64(bytes, $0) })
    }

    /// Formats and records one trace line; returns the length or `-EINVAL`.
    static func emit(_ call: HelperCall, format: [UInt8], args: [UInt64], maxArgs: Int) -> UInt64 {
        switch PrintfFormatter.format(format, args: args, maxArgs: maxArgs, memory: call.process.memory) {
        case .failure(let errno):
            return errno.r0
        case .success(let text):
            let length = text.count
            var message = String(decoding: text.prefix(bufferSize - 1), as: UTF8.self)
            if message.hasSuffix("\n") { message.removeLast() }
            if let state = call.state {
                state.traceOutput.append(message)
                state.traceLines.append(traceLine(message, state: state, cpu: call.process.vCPU))
            }
            return UInt64(length)
        }
    }

    /// A `trace_pipe` line: `<comm>-<pid> [<cpu>] <flags> <seconds>.<micros>: bpf_trace_printk: <msg>`.
    static func traceLine(_ message: String, state: LinuxProcessState, cpu: Int) -> String {
        let environment = state.environment
        let nanoseconds: UInt64
        switch environment.clock {
        case .manual(let start, let step): nanoseconds = start &+ step &* state.clockReads
        case .system: nanoseconds = TimeHelpers.systemClock(CLOCK_MONOTONIC)
        case .virtual: nanoseconds = state.virtualClock?.now ?? 0
        }
        let task = "\(environment.comm)-\(environment.pid)"
        let paddedTask = String(repeating: " ", count: max(0, 16 + 8 - task.count)) + task
        let cpuText = String(repeating: "0", count: max(0, 3 - String(cpu).count)) + String(cpu)
        let micros = String(nanoseconds / 1000 % 1_000_000)
        let seconds = String(nanoseconds / 1_000_000_000)
        return "\(paddedTask) [\(cpuText)] d.... \(String(repeating: " ", count: max(0, 5 - seconds.count)))\(seconds)."
            + "\(String(repeating: "0", count: 6 - micros.count))\(micros): \(HelperID.tracePrintk.name): \(message)"
    }
}

/// The kernel's BPF printf subset (`bpf_bprintf_prepare` + `bstr_printf`).
enum PrintfFormatter {
    /// Formats `format` (its bytes up to the first NUL, which must exist) with `args`. Returns the
    /// formatted bytes (without NUL) or `-EINVAL`.
    static func format(_ format: [UInt8], args: [UInt64], maxArgs: Int, memory: AddressSpace) -> Result<[UInt8], Errno>
    {
        guard let end = format.firstIndex(of: 0) else { return .failure(.invalid) }
        let fmt = Array(format[..<end]) + [0] // keep a NUL so look-ahead is safe
        func at(_ i: Int) -> UInt8 { i < fmt.count ? fmt[i] : 0 }
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || (0x09...0x0D).contains(c) }
        func isPrint(_ c: UInt8) -> Bool { (0x20...0x7E).contains(c) }
        func isPunct(_ c: UInt8) -> Bool { isPrint(c) && c != 0x20 && !isAlnum(c) }
        func isAlnum(_ c: UInt8) -> Bool {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c)
                || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c)
        }

        var output: [UInt8] = []
        var used = 0
        var i = 0
        while i < end {
            let c = fmt[i]
            guard (isPrint(c) || isSpace(c)) && c < 0x80 else { return .failure(.invalid) }
            guard c == UInt8(ascii: "%") else {
                output.append(c)
                i += 1
                continue
            }
            if at(i + 1) == UInt8(ascii: "%") {
                output.append(c)
                i += 2
                continue
            }
            guard used < maxArgs, used < args.count else { return .failure(.invalid) }
            let arg = args[used]
            used += 1
            i += 1
            // Flags and width.
            var spec = Spec()
            while [UInt8(ascii: "0"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: " ")].contains(at(i)) {
                switch at(i) {
                case UInt8(ascii: "0"): spec.zero = true
                case UInt8(ascii: "+"): spec.plus = true
                case UInt8(ascii: "-"): spec.left = true
                default: spec.space = true
                }
                i += 1
            }
            if (UInt8(ascii: "1")...UInt8(ascii: "9")).contains(at(i)) {
                var width = 0
                while (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(at(i)) {
                    width = min(width * 10 + Int(at(i) - UInt8(ascii: "0")), 4096)
                    i += 1
                }
                spec.width = width
            }
            let conversion = at(i)
            if conversion == UInt8(ascii: "p") {
                let next = at(i + 1)
                if (next == UInt8(ascii: "k") || next == UInt8(ascii: "u")) && at(i + 2) == UInt8(ascii: "s") {
                    i += 2
                    guard at(i + 1) == 0 || isSpace(at(i + 1)) || isPunct(at(i + 1)) else { return .failure(.invalid) }
                    output += spec.pad(string(at: arg, memory: memory))
                    i += 1
                    continue
                }
                if next == 0 || isSpace(next) || isPunct(next) || next == UInt8(ascii: "K") || next == UInt8(ascii: "x")
                {
                    output += spec.pad(Array(hex(arg, digits: 16).utf8))
                    i += next == 0 || isSpace(next) || isPunct(next) ? 1 : 2
                    continue
                }
                if next == UInt8(ascii: "s") || next == UInt8(ascii: "S") || next == UInt8(ascii: "B") {
                    output += spec.pad(Array(("0x" + String(arg, radix: 16)).utf8))
                    i += 2
                    continue
                }
                let version = at(i + 2)
                guard next == UInt8(ascii: "i") || next == UInt8(ascii: "I"),
                    version == UInt8(ascii: "4") || version == UInt8(ascii: "6")
                else { return .failure(.invalid) }
                let count = version == UInt8(ascii: "4") ? 4 : 16
                let bytes = (try? memory.read(arg, count: count)) ?? [UInt8](repeating: 0, count: count)
                output += spec.pad(Array(ipText(bytes, padded: next == UInt8(ascii: "i")).utf8))
                i += 3
                continue
            }
            if conversion == UInt8(ascii: "s") {
                guard at(i + 1) == 0 || isSpace(at(i + 1)) || isPunct(at(i + 1)) else { return .failure(.invalid) }
                output += spec.pad(string(at: arg, memory: memory))
                i += 1
                continue
            }
            if conversion == UInt8(ascii: "c") {
                output += spec.pad([UInt8(truncatingIfNeeded: arg)])
                i += 1
                continue
            }
            var bits = 32
            if at(i) == UInt8(ascii: "l") {
                bits = 64
                i += 1
            }
            if at(i) == UInt8(ascii: "l") {
                bits = 64
                i += 1
            }
            let kind = at(i)
            let value = bits == 32 ? arg & 0xFFFF_FFFF : arg
            switch kind {
            case UInt8(ascii: "d"), UInt8(ascii: "i"):
                let signed = bits == 32 ? Int64(Int32(truncatingIfNeeded: value)) : Int64(bitPattern: value)
                output += spec.number(
                    signed < 0 ? "-" : (spec.plus ? "+" : (spec.space ? " " : "")),
                    String(signed.magnitude))
            case UInt8(ascii: "u"):
                output += spec.number("", String(value))
            case UInt8(ascii: "x"):
                output += spec.number("", String(value, radix: 16))
            case UInt8(ascii: "X"):
                output += spec.number("", String(value, radix: 16, uppercase: true))
            default:
                return .failure(.invalid)
            }
            i += 1
        }
        return .success(output)
    }

    /// A C string read for `%s`; unreadable memory gives an empty string, as in the kernel.
    static func string(at address: UInt64, memory: AddressSpace) -> [UInt8] {
        var bytes: [UInt8] = []
        var cursor = address
        while bytes.count < TraceHelpers.bufferSize - 1, let byte = try? memory.read(cursor, count: 1)[0], byte != 0 {
            bytes.append(byte)
            cursor &+= 1
        }
        // A string that runs into unmapped memory before its NUL cannot be copied: empty.
        if bytes.count < TraceHelpers.bufferSize - 1, (try? memory.read(cursor, count: 1)) == nil { return [] }
        return bytes
    }

    static func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }

    /// `%pI4` (`1.2.3.4`), `%pi4` (`001.002.003.004`), `%pI6` (`0001:...`), `%pi6` (32 hex digits).
    static func ipText(_ bytes: [UInt8], padded: Bool) -> String {
        if bytes.count == 4 {
            return bytes.map { padded ? String(repeating: "0", count: 3 - String($0).count) + String($0) : String($0) }
                .joined(separator: ".")
        }
        let groups = stride(from: 0, to: 16, by: 2).map {
            hex(UInt64(bytes[$0]) << 8 | UInt64(bytes[$0 + 1]), digits: 4)
        }
        return groups.joined(separator: padded ? "" : ":")
    }

    /// Flags and width of one conversion.
    struct Spec {
        var zero = false, plus = false, left = false, space = false
        var width = 0

        func pad(_ bytes: [UInt8]) -> [UInt8] {
            guard bytes.count < width else { return bytes }
            let fill = [UInt8](repeating: 0x20, count: width - bytes.count)
            return left ? bytes + fill : fill + bytes
        }

        func number(_ sign: String, _ digits: String) -> [UInt8] {
            let body = Array(sign.utf8) + Array(digits.utf8)
            guard body.count < width else { return body }
            if left { return body + [UInt8](repeating: 0x20, count: width - body.count) }
            if zero {
                return Array(sign.utf8) + [UInt8](repeating: UInt8(ascii: "0"), count: width - body.count)
                    + Array(digits.utf8)
            }
            return [UInt8](repeating: 0x20, count: width - body.count) + body
        }
    }
}
