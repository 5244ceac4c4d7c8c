import Glibc
import MimicCore

/// The emulated kernel's build: what `__kconfig` externs read (`CONFIG_*` values, the kernel
/// version, the features libbpf probes) and the kernel symbols `__ksym` variables name.
///
/// Defaults: no `CONFIG_*` values (weak externs read 0, strong ones fail to load), the version of
/// the running kernel (`uname`, else 6.18.0), `LINUX_HAS_SYSCALL_WRAPPER` 1 on x86-64 and arm64
/// (the architectures whose syscalls go through `__<arch>_sys_*` wrappers) and 0 elsewhere,
/// `LINUX_HAS_BPF_COOKIE` 1, and every `__ksym` variable resolved to a zero-filled object.
public struct KernelConfig: Sendable, Equatable {
    /// `CONFIG_*` values as `/proc/config` writes them, by name: `y`, `n`, `m`, a number
    /// (`64`, `0x10`) or a quoted string (`"zstd"`).
    public var values: [String: String]
    /// `LINUX_KERNEL_VERSION`: `KERNEL_VERSION(major, minor, patch)`, i.e.
    /// `major << 16 | minor << 8 | min(patch, 255)`.
    public var kernelVersion: UInt32
    /// `LINUX_HAS_SYSCALL_WRAPPER`.
    public var hasSyscallWrapper: Bool
    /// `LINUX_HAS_BPF_COOKIE`.
    public var hasBPFCookie: Bool
    /// Kernel objects `__ksym` variables resolve to, by name.
    public var symbols: [String: KernelSymbol]
    /// Whether a `__ksym` variable not in `symbols` still resolves, to a zero-filled read-only
    /// object the size of its BTF type (8 bytes for a typeless one). When false, such a variable
    /// is missing: a weak one's address is 0, a strong one fails to load, naming it.
    public var resolvesUnlistedSymbols: Bool

    public init(
        values: [String: String] = [:], kernelVersion: UInt32 = KernelConfig.hostKernelVersion,
        hasSyscallWrapper: Bool = KernelConfig.architectureHasSyscallWrapper, hasBPFCookie: Bool = true,
        symbols: [String: KernelSymbol] = [:], resolvesUnlistedSymbols: Bool = true
    ) {
        self.values = values
        self.kernelVersion = kernelVersion
        self.hasSyscallWrapper = hasSyscallWrapper
        self.hasBPFCookie = hasBPFCookie
        self.symbols = symbols
        self.resolvesUnlistedSymbols = resolvesUnlistedSymbols
    }

    /// Reads a kernel configuration in `/proc/config` form (`CONFIG_X=y`, one per line): lines
    /// not starting with `CONFIG_` (comments such as `# CONFIG_X is not set`, blank lines) are
    /// skipped, as libbpf skips them; a `CONFIG_` line without `=` or without a value is an
    /// error naming its line. The other settings keep their defaults.
    public init(parsing text: String) throws(KernelConfigError) {
        self.init()
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            guard line.hasPrefix("CONFIG_") else { continue }
            guard let separator = line.firstIndex(of: "=") else {
                throw KernelConfigError(line: number + 1, message: "'\(line)' has no '=' separator")
            }
            let name = String(line[..<separator])
            let value = String(line[line.index(after: separator)...])
            guard !value.isEmpty else { throw KernelConfigError(line: number + 1, message: "'\(line)' has no value") }
            // The first setting of a name wins, as libbpf sets an extern once.
            if values[name] == nil { values[name] = value }
        }
    }

    /// `KERNEL_VERSION(major, minor, patch)` as the kernel's headers define it.
    public static func version(major: UInt32, minor: UInt32, patch: UInt32) -> UInt32 {
        (major << 16) &+ (minor << 8) &+ min(patch, 255)
    }

    /// The version in a release string (`6.8.0-45-generic` gives 6.8.0), as libbpf reads
    /// `uname -r`; nil when it does not start with three dotted numbers (a missing patch is 0).
    public static func version(release: String) -> UInt32? {
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(3).compactMap { UInt32($0) }
        guard numbers.count >= 2, release.first?.isNumber == true else { return nil }
        return version(major: numbers[0], minor: numbers[1], patch: numbers.count > 2 ? numbers[2] : 0)
    }

    /// The running kernel's version from `uname`, or 6.18.0 when it cannot be read.
    public static var hostKernelVersion: UInt32 {
        var name = utsname()
        guard uname(&name) == 0 else { return version(major: 6, minor: 18, patch: 0) }
        let release = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return version(release: release) ?? version(major: 6, minor: 18, patch: 0)
    }

    /// Whether the architecture Mimic runs on wraps syscalls (`__x64_sys_*`, `__arm64_sys_*`),
    /// which is what `BPF_KSYSCALL` asks through `LINUX_HAS_SYSCALL_WRAPPER`.
    public static var architectureHasSyscallWrapper: Bool {
        #if arch(x86_64) || arch(arm64)
            true
        #else
            false
        #endif
    }
}

/// An emulated kernel object a `__ksym` variable names.
public struct KernelSymbol: Sendable, Equatable {
    /// The object's contents (each CPU's copy, for a per-CPU one). Empty: zeros of the size the
    /// program's BTF gives the variable.
    public var bytes: [UInt8]
    /// A per-CPU variable (`DEFINE_PER_CPU`): one copy per possible CPU, which programs reach
    /// with `bpf_per_cpu_ptr` / `bpf_this_cpu_ptr`; the `__ksym` address is CPU 0's copy.
    public var isPerCPU: Bool

    public init(bytes: [UInt8] = [], isPerCPU: Bool = false) {
        self.bytes = bytes
        self.isPerCPU = isPerCPU
    }
}

/// A line of a kernel configuration file that cannot be read.
public struct KernelConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The line number, from 1.
    public var line: Int
    public var message: String

    public init(line: Int, message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { "kernel configuration line \(line): \(message)" }
}
