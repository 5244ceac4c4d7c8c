/// An attach type (`enum bpf_attach_type`, the `expected_attach_type` of `BPF_PROG_LOAD`): the
/// kernel's values are constants carrying their C name (`AttachType.xdp.cName` is `BPF_XDP`);
/// other values are kept as they are.
///
/// The constants and names are generated from the header (`KernelNames.generated.swift`).
public struct AttachType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    static let prefix = "BPF_"

    /// The type with this C name (`BPF_CGROUP_INET_INGRESS`, or `cgroup_inet_ingress`, in either
    /// case); nil for a name the table does not know.
    public init?(kernelName name: String) {
        guard
            let value = KernelEnumeration.value(
                of: name, prefix: AttachType.prefix, in: AttachType.kernelNames,
                aliases: AttachType.kernelAliases)
        else { return nil }
        self.init(rawValue: value)
    }

    /// Every type the table knows, in value order.
    public static let known: [AttachType] = AttachType.kernelNames.indices.map { AttachType(rawValue: UInt32($0)) }

    /// `BPF_CGROUP_INET_INGRESS`, or nil for a value the table does not know.
    public var kernelName: String? { KernelEnumeration.name(rawValue, in: AttachType.kernelNames) }

    /// `BPF_CGROUP_INET_INGRESS`, or `BPF_ATTACH_TYPE_<n>` for values this version does not know.
    public var cName: String { kernelName ?? "BPF_ATTACH_TYPE_\(rawValue)" }

    /// The lower-case name libbpf prints (`cgroup_inet_ingress`, `xdp`).
    public var description: String {
        KernelEnumeration.shortName(
            rawValue, prefix: AttachType.prefix, in: AttachType.kernelNames,
            fallback: "type \(rawValue)")
    }
}
