/// The Linux error numbers of BPF: what helpers return, negated, in R0, and what `bpf(2)` and
/// the plugin ABI report.
///
/// Readable Swift names, each documented with its C spelling (`Errno.noEntry` is `ENOENT`), in
/// the manner of swift-system; `description` gives the C spelling. Values are the Linux UAPI
/// numbers on every architecture Mimic runs programs for, independent of the host.
public struct Errno: Error, RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// `EPERM` (1): operation not permitted.
    public static let notPermitted = Errno(rawValue: 1)
    /// `ENOENT` (2): no such element.
    public static let noEntry = Errno(rawValue: 2)
    /// `E2BIG` (7): the map is full.
    public static let tooBig = Errno(rawValue: 7)
    /// `EBADF` (9): bad file descriptor.
    public static let badFileDescriptor = Errno(rawValue: 9)
    /// `EAGAIN` (11): try again (a ring buffer without room).
    public static let tryAgain = Errno(rawValue: 11)
    /// `ENOMEM` (12): out of memory.
    public static let noMemory = Errno(rawValue: 12)
    /// `EACCES` (13): permission denied.
    public static let accessDenied = Errno(rawValue: 13)
    /// `EFAULT` (14): bad address.
    public static let fault = Errno(rawValue: 14)
    /// `EBUSY` (16): resource busy.
    public static let busy = Errno(rawValue: 16)
    /// `EEXIST` (17): the element exists.
    public static let exists = Errno(rawValue: 17)
    /// `ENODEV` (19): no such device (a `cpumap` key naming no possible CPU).
    public static let noDevice = Errno(rawValue: 19)
    /// `EINVAL` (22): invalid argument.
    public static let invalid = Errno(rawValue: 22)
    /// `ENOSPC` (28): no space left.
    public static let noSpace = Errno(rawValue: 28)
    /// `ERANGE` (34): result out of range.
    public static let outOfRange = Errno(rawValue: 34)
    /// `ENOSYS` (38): function not implemented (no `bpf(2)`).
    public static let notImplemented = Errno(rawValue: 38)
    /// `EOVERFLOW` (75): value too large (a `cpumap` queue size past 16,384).
    public static let overflow = Errno(rawValue: 75)
    /// `EOPNOTSUPP` (95): operation not supported.
    public static let notSupported = Errno(rawValue: 95)
    /// `ENOTSUPP` (524): the kernel-internal "operation not supported" some helpers return.
    public static let kernelNotSupported = Errno(rawValue: 524)

    /// The C spellings, by value.
    static let cNames: [Int32: String] = [
        1: "EPERM", 2: "ENOENT", 7: "E2BIG", 9: "EBADF", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT",
        16: "EBUSY", 17: "EEXIST", 19: "ENODEV", 22: "EINVAL", 28: "ENOSPC", 34: "ERANGE", 38: "ENOSYS",
        75: "EOVERFLOW", 95: "EOPNOTSUPP", 524: "ENOTSUPP",
    ]

    /// The value a helper returns in R0: `-errno` as a 64-bit two's complement.
    public var helperReturnValue: UInt64 { UInt64(bitPattern: -Int64(rawValue)) }

    /// The C spelling (`ENOENT`), or `errno <n>` for values without a constant here.
    public var description: String { Errno.cNames[rawValue] ?? "errno \(rawValue)" }
}

/// The C spellings, kept only to point to the Swift names.
extension Errno {
    @available(*, unavailable, renamed: "notPermitted") public static var EPERM: Errno { .notPermitted }
    @available(*, unavailable, renamed: "noEntry") public static var ENOENT: Errno { .noEntry }
    @available(*, unavailable, renamed: "tooBig") public static var E2BIG: Errno { .tooBig }
    @available(*, unavailable, renamed: "busy") public static var EBUSY: Errno { .busy }
    @available(*, unavailable, renamed: "exists") public static var EEXIST: Errno { .exists }
    @available(*, unavailable, renamed: "fault") public static var EFAULT: Errno { .fault }
    @available(*, unavailable, renamed: "invalid") public static var EINVAL: Errno { .invalid }
    @available(*, unavailable, renamed: "noSpace") public static var ENOSPC: Errno { .noSpace }
    @available(*, unavailable, renamed: "outOfRange") public static var ERANGE: Errno { .outOfRange }
    @available(*, unavailable, renamed: "notSupported") public static var EOPNOTSUPP: Errno { .notSupported }
    @available(*, unavailable, renamed: "noMemory") public static var ENOMEM: Errno { .noMemory }
}
