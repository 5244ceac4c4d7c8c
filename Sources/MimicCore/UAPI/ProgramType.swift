/// A program type (`enum bpf_prog_type`): the kernel's values are constants carrying their C
/// name (`ProgramType.xdp.cName` is `BPF_PROG_TYPE_XDP`); other values are kept as they are.
///
/// The constants and names are generated from the header (`KernelNames.generated.swift`); the
/// guess from an ELF section name is in `ELF/SectionNames.swift`.
public struct ProgramType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    static let prefix = "BPF_PROG_TYPE_"

    /// The type with this C name (`BPF_PROG_TYPE_XDP`, or `xdp`, in either case); nil for a
    /// name the table does not know.
    public init?(kernelName name: String) {
        guard
            let value = KernelEnumeration.value(
                of: name, prefix: ProgramType.prefix, in: ProgramType.kernelNames,
                aliases: ProgramType.kernelAliases)
        else { return nil }
        self.init(rawValue: value)
    }

    /// Every type the table knows, in value order.
    public static let known: [ProgramType] = ProgramType.kernelNames.indices.map { ProgramType(rawValue: UInt32($0)) }

    @available(*, unavailable, renamed: "unspec")
    public static var unspecified: ProgramType { .unspec }

    /// `BPF_PROG_TYPE_XDP`, or nil for a value the table does not know.
    public var kernelName: String? { KernelEnumeration.name(rawValue, in: ProgramType.kernelNames) }

    /// `BPF_PROG_TYPE_XDP`, or `BPF_PROG_TYPE_<n>` for values this version does not know.
    public var cName: String { kernelName ?? ProgramType.prefix + "\(rawValue)" }

    /// The lower-case name bpftool prints (`xdp`, `sched_cls`, `socket_filter`).
    public var description: String {
        KernelEnumeration.shortName(
            rawValue, prefix: ProgramType.prefix, in: ProgramType.kernelNames,
            fallback: "type \(rawValue)")
    }
}
