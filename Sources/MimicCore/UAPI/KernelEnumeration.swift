/// Lookups shared by the kernel's enumerations (`MapType`, `ProgramType`, `AttachType`): each
/// has a generated table of C names indexed by value, a C prefix, and older alias names.
enum KernelEnumeration {
    /// The C name of `value`, or nil past the table.
    static func name(_ value: UInt32, in names: [String]) -> String? {
        Int(value) < names.count ? names[Int(value)] : nil
    }

    /// The value of a C name, accepted with or without `prefix` and in either case
    /// (`BPF_MAP_TYPE_HASH`, `hash`).
    static func value(of name: String, prefix: String, in names: [String], aliases: [String: UInt32]) -> UInt32? {
        let upper = name.uppercased()
        let full = upper.hasPrefix(prefix) ? upper : prefix + upper
        if let index = names.firstIndex(of: full) { return UInt32(index) }
        return aliases[full]
    }

    /// The lower-case name libbpf and bpftool print (`percpu_hash`, `sched_cls`,
    /// `cgroup_inet_ingress`), or `fallback` for a value the table does not know.
    static func shortName(_ value: UInt32, prefix: String, in names: [String], fallback: String) -> String {
        name(value, in: names).map { String($0.dropFirst(prefix.count)).lowercased() } ?? fallback
    }
}
