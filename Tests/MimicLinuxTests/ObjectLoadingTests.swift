import MimicCore
import MimicLinux
import MimicMemory
import Testing
import MimicTestSupport

/// `LinuxEmulator`'s side of `VM.load(object:)`: map specs, global data, initial slots.
@Suite("Object loading")
struct ObjectLoadingTests {
    @Test func mapSpecAttributesCarryInnerTemplatesAndSpinLocks() throws {
        let inner = MapSpec(
            attributes: MapAttributes(name: "outer.inner", type: .hash, keySize: 4, valueSize: 16, maxEntries: 8),
            source: .innerTemplate, sectionName: ".maps", sectionOffset: 0)
        var spec = MapSpec(
            attributes: MapAttributes(
                name: "outer", type: .hashOfMaps, keySize: 8, valueSize: 4, maxEntries: 2, flags: 1),
            innerMap: inner, source: .btf, sectionName: ".maps", sectionOffset: 0)
        spec.innerMap?.attributes.spinLockOffset = 12
        #expect(
            spec.attributes
                == MapAttributes(
                    name: "outer", type: .hashOfMaps, keySize: 8, valueSize: 4, maxEntries: 2, flags: 1,
                    innerMap: MapAttributes(
                        name: "outer.inner", type: .hash, keySize: 4, valueSize: 16,
                        maxEntries: 8, spinLockOffset: 12)))
        spec.attributes = MapAttributes(name: "outer", type: .hashOfMaps, keySize: 8, valueSize: 4, maxEntries: 3)
        #expect(spec.attributes.innerMap == spec.innerMap?.attributes, "attributes.innerMap follows innerMap")
        let (vm, emulator) = makeLinuxVM()
        let handle = try emulator.createMap(spec, in: vm)
        #expect(emulator.map(handle: handle) is MapOfMaps)
    }

    @Test func invalidMapSpecsNameTheMap() throws {
        let (vm, emulator) = makeLinuxVM()
        let spec = MapSpec(
            attributes: MapAttributes(name: "broken_counts", type: .array, keySize: 8, valueSize: 8, maxEntries: 4),
            source: .btf, sectionName: ".maps", sectionOffset: 0)
        do {
            _ = try emulator.createMap(spec, in: vm)
            Issue.record("an array with 8-byte keys was created")
        } catch {
            #expect(
                "\(LoadError(error, programName: "object"))".contains(
                    "map broken_counts: BPF_MAP_TYPE_ARRAY: key_size must be 4, got 8"))
        }
    }

    @Test func globalDataMapsWrapTheMappedSection() throws {
        let (vm, emulator) = makeLinuxVM()
        let storage = RegionStorage(bytes: [1, 2, 3, 4, 5])
        let address = try vm.mapShared(storage, name: ".data")
        let spec = GlobalDataSpec(name: ".data", contents: [1, 2, 3, 4, 5], isReadOnly: false, variables: [])
        try emulator.adoptGlobalData(spec, storage: storage, address: address, in: vm)
        let map = try #require(emulator.map(named: ".data") as? ArrayMap)
        #expect(map.lookupAddress(key: le32(0), cpu: 1) == address)
        #expect(map.lookupAddress(key: le32(1), cpu: 0) == nil)
        #expect(map.update(key: le32(0), value: [9, 8, 7, 6, 5], flags: .any, cpu: 0) == nil)
        #expect(storage.bytes == [9, 8, 7, 6, 5], "the map writes the section itself")
        #expect(map.update(key: le32(0), value: [1], flags: .any, cpu: 0) == .invalid)

        // Empty sections get no map, as in libbpf.
        let empty = GlobalDataSpec(name: ".bss.empty", contents: [], isReadOnly: false, variables: [])
        try emulator.adoptGlobalData(empty, storage: RegionStorage(count: 0), address: 0, in: vm)
        #expect(emulator.map(named: ".bss.empty") == nil)
    }
}
