/// A BPF helper function id: the `imm` of `call` (`enum bpf_func_id` in `linux/bpf.h`).
///
/// Each helper Linux defines is a constant carrying the kernel's name, in the manner of
/// swift-system's `Errno`: `HelperID.mapLookupElem` is `bpf_map_lookup_elem`, id 1. The Swift
/// name is the C name without `bpf_`, in lowerCamelCase. The ids are the kernel's UAPI and never
/// change; new helpers are only appended. Any other id is representable too (plugins and the
/// conformance helpers use their own), it just has no kernel name.
///
/// The constants and names are generated from the header (`KernelNames.generated.swift`).
public struct HelperID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The helper with this C name (`bpf_map_lookup_elem`), with or without the `bpf_` prefix; nil
    /// for a name the table does not know.
    public init?(kernelName name: String) {
        let full = name.hasPrefix("bpf_") ? name : "bpf_" + name
        guard let index = HelperID.kernelNames.firstIndex(of: full) else { return nil }
        self.init(rawValue: Int32(index + 1))
    }

    /// Every helper the table knows, in id order (ids 1, 2, ...; 0 is not a helper).
    public static let known: [HelperID] = (1...Int32(kernelNames.count)).map { HelperID(rawValue: $0) }

    /// The kernel's C name (`bpf_map_lookup_elem` for id 1), or nil for an id Linux does not
    /// define (0, negative ids, ids of plugins).
    public var kernelName: String? {
        guard rawValue > 0, Int(rawValue) <= HelperID.kernelNames.count else { return nil }
        return HelperID.kernelNames[Int(rawValue) - 1]
    }

    /// The kernel's C name, or `#<id>` for an id Linux does not define.
    public var name: String { kernelName ?? "#\(rawValue)" }

    public var description: String { name }
}

extension Helper {
    /// A helper of the Linux kernel's table, named by it (`Helper(.mapLookupElem) { ... }`).
    public init(_ id: HelperID, function: @escaping Function) {
        self.init(id: id.rawValue, name: id.name, function: function)
    }

    /// The helper's id as a `HelperID`.
    public var helperID: HelperID { HelperID(rawValue: id) }
}
