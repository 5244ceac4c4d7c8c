/// The Linux error numbers BPF helpers return, negated, in R0.
///
/// Readable Swift names with the C spelling alongside (`Errno.noEntry` is `ENOENT`), in the
/// manner of swift-system. Values are the Linux UAPI numbers on every architecture Mimic runs
/// programs for, independent of the host.
public struct Errno: Error, RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// `EPERM`: operation not permitted.
    public static let notPermitted = Errno(rawValue: 1)
    /// `ENOENT`: no such element.
    public static let noEntry = Errno(rawValue: 2)
    /// `E2BIG`: the map is full.
    public static let tooBig = Errno(rawValue: 7)
    /// `EBUSY`: resource busy.
    public static let busy = Errno(rawValue: 16)
    /// `EEXIST`: the element exists.
    public static let exists = Errno(rawValue: 17)
    /// `EFAULT`: bad address.
    public static let fault = Errno(rawValue: 14)
    /// `EINVAL`: invalid argument.
    public static let invalid = Errno(rawValue: 22)
    /// `ENOSPC`: no space left.
    public static let noSpace = Errno(rawValue: 28)
    /// `ERANGE`: result out of range.
    public static let outOfRange = Errno(rawValue: 34)
    /// `ENOTSUPP` (kernel-internal 524) / `EOPNOTSUPP` (95): not supported.
    public static let notSupported = Errno(rawValue: 95)
    /// `ENOMEM`: out of memory.
    public static let noMemory = Errno(rawValue: 12)

    public static let EPERM = notPermitted
    public static let ENOENT = noEntry
    public static let E2BIG = tooBig
    public static let EBUSY = busy
    public static let EEXIST = exists
    public static let EFAULT = fault
    public static let EINVAL = invalid
    public static let ENOSPC = noSpace
    public static let ERANGE = outOfRange
    public static let EOPNOTSUPP = notSupported
    public static let ENOMEM = noMemory

    /// The value a helper returns in R0: `-errno` as a 64-bit two's complement.
    public var helperReturnValue: UInt64 { UInt64(bitPattern: -Int64(rawValue)) }

    public var description: String {
        switch self {
        case .notPermitted: "EPERM"
        case .noEntry: "ENOENT"
        case .tooBig: "E2BIG"
        case .busy: "EBUSY"
        case .exists: "EEXIST"
        case .fault: "EFAULT"
        case .invalid: "EINVAL"
        case .noSpace: "ENOSPC"
        case .outOfRange: "ERANGE"
        case .notSupported: "EOPNOTSUPP"
        case .noMemory: "ENOMEM"
        default: "errno \(rawValue)"
        }
    }
}
