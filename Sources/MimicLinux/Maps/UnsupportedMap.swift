import MimicCore

/// A map of a type the kernel knows but Mimic does not emulate (`BPF_MAP_TYPE_STRUCT_OPS`,
/// `ARENA`, ...: `LinuxEmulator.emulates(_:)` is false), declared by an object file.
///
/// The object still loads, so its other programs run: the map gets a handle, a name and an id
/// like any other. A program that *uses* it stops at the helper call that receives the map
/// (a helper failure naming the map and its type); merely loading its
/// address with `lddw` is allowed, as holding a handle does nothing yet. Host operations fail
/// with `-EOPNOTSUPP` and the map reads as empty.
///
/// `LinuxEmulator.createMap(_:in:)` (the host API) still refuses these types with
/// `EOPNOTSUPP`; only object loading creates placeholders.
public final class UnsupportedMap: BPFMap, @unchecked Sendable {
    public let attributes: MapAttributes
    public let handle: UInt64

    init(attributes: MapAttributes, id: Int) {
        self.attributes = attributes
        handle = MapHandle.make(id: id)
    }

    /// Why a program cannot use the map: names the map and its type.
    var failure: HelperFailure {
        .message(
            "map \(attributes.name) is a \(attributes.type.cName), which Mimic does not emulate (the object loaded; only programs that use this map stop)"
        )
    }

    public func lookupAddress(key: [UInt8], cpu: Int) -> UInt64? { nil }
    public func update(key: [UInt8], value: [UInt8], flags: MapUpdateFlags, cpu: Int) -> Errno? { .notSupported }
    public func delete(key: [UInt8]) -> Errno? { .notSupported }
    public func nextKey(after key: [UInt8]?) -> [UInt8]? { nil }
    public func push(value: [UInt8], flags: MapUpdateFlags) -> Errno? { .notSupported }
    public func pop() -> Result<[UInt8], Errno> { .failure(.notSupported) }
    public func peek() -> Result<[UInt8], Errno> { .failure(.notSupported) }
    public func value(forKey key: [UInt8]) -> [UInt8]? { nil }
    public var keys: [[UInt8]] { [] }
}
