/// What a map is: the attributes `BPF_MAP_CREATE` takes.
///
/// The one description of a map's shape, shared by every layer: an object file's `MapSpec`
/// holds one (next to what only the ELF says), the Linux emulator's maps are created from one
/// and expose it, and real-kernel maps are created from one.
///
/// Sizes and counts are `Int`, the type the emulator computes and indexes with; they widen
/// losslessly from the kernel's `__u32` fields, and the places that hand them to a `__u32` again
/// (the kernel, the plugin ABI) check the range. The emulator's checks reject negative values
/// the way `BPF_MAP_CREATE` rejects bad attributes.
public struct MapAttributes: Sendable, Hashable {
    public var name: String
    public var type: MapType
    public var keySize: Int
    public var valueSize: Int
    public var maxEntries: Int
    /// `map_flags` (`BPF_F_NO_PREALLOC`, `BPF_F_RDONLY_PROG`, ...).
    public var flags: UInt32
    /// Where the value's `struct bpf_spin_lock` (4 bytes) lies, if it has one (from BTF: the
    /// kernel's `btf_find_spin_lock`, a top-level member of a struct value).
    /// Updates never overwrite it, and `BPF_F_LOCK` updates take it.
    public var spinLockOffset: Int?
    /// Boxed so `MapAttributes` can contain a `MapAttributes`.
    private var innerStorage: [MapAttributes]

    /// For array/hash of maps: the attributes every inner map must match.
    public var innerMap: MapAttributes? {
        get { innerStorage.first }
        set { innerStorage = newValue.map { [$0] } ?? [] }
    }

    public init(
        name: String, type: MapType, keySize: Int, valueSize: Int, maxEntries: Int, flags: UInt32 = 0,
        innerMap: MapAttributes? = nil, spinLockOffset: Int? = nil
    ) {
        self.name = name
        self.type = type
        self.keySize = keySize
        self.valueSize = valueSize
        self.maxEntries = maxEntries
        self.flags = flags
        self.spinLockOffset = spinLockOffset
        self.innerStorage = innerMap.map { [$0] } ?? []
    }
}
