/// A map type (`enum bpf_map_type`): the kernel's values are constants carrying their C name
/// (`MapType.hash.cName` is `BPF_MAP_TYPE_HASH`); other values are kept as they are.
///
/// The constants and names are generated from the header (`KernelNames.generated.swift`).
public struct MapType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    static let prefix = "BPF_MAP_TYPE_"

    /// The type with this C name (`BPF_MAP_TYPE_HASH`, or `hash`, in either case); nil for a name
    /// the table does not know.
    public init?(kernelName name: String) {
        guard
            let value = KernelEnumeration.value(
                of: name, prefix: MapType.prefix, in: MapType.kernelNames,
                aliases: MapType.kernelAliases)
        else { return nil }
        self.init(rawValue: value)
    }

    /// Every type the table knows, in value order.
    public static let known: [MapType] = MapType.kernelNames.indices.map { MapType(rawValue: UInt32($0)) }

    /// `BPF_MAP_TYPE_HASH`, or nil for a value the table does not know.
    public var kernelName: String? { KernelEnumeration.name(rawValue, in: MapType.kernelNames) }

    /// `BPF_MAP_TYPE_HASH`, or `BPF_MAP_TYPE_<n>` for values this version does not know.
    public var cName: String { kernelName ?? MapType.prefix + "\(rawValue)" }

    /// The lower-case name bpftool prints (`hash`, `percpu_array`).
    public var description: String {
        KernelEnumeration.shortName(
            rawValue, prefix: MapType.prefix, in: MapType.kernelNames, fallback: "type \(rawValue)")
    }

    /// Whether the values of this map are other maps (`array_of_maps`, `hash_of_maps`).
    public var isMapOfMaps: Bool { self == .arrayOfMaps || self == .hashOfMaps }
}
