import MimicCore
import MimicLinux
import Testing

@Suite("LinuxConfiguration.compatibility: the Go mimic's map definitions")
struct CompatibilityTests {
    static let outerWithoutInner = MapAttributes(
        name: "outer", type: .arrayOfMaps, keySize: 4, valueSize: 4, maxEntries: 2)

    @Test func theKernelsRulesByDefault() throws {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1))
        let vm = VM(emulator: emulator)
        let error = #expect(throws: MapError.self) { _ = try emulator.createMap(Self.outerWithoutInner, in: vm) }
        #expect(error?.message.contains("needs an inner map definition") == true)
        #expect(emulator.compatibilityWarnings.isEmpty)
    }

    @Test func goMimicLoadsAMapOfMapsWithoutInnerDefinitionAcceptingPlainMaps() throws {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1, compatibility: .goMimic))
        let vm = VM(emulator: emulator)
        let outer = try #require(try emulator.createMap(Self.outerWithoutInner, in: vm) as? MapOfMaps)
        let array = try emulator.createMap(
            MapAttributes(name: "a", type: .array, keySize: 4, valueSize: 8, maxEntries: 1), in: vm)
        let hash = try emulator.createMap(
            MapAttributes(name: "h", type: .hash, keySize: 2, valueSize: 2, maxEntries: 4), in: vm)
        let programs = try emulator.createMap(
            MapAttributes(name: "p", type: .progArray, keySize: 4, valueSize: 4, maxEntries: 1), in: vm)
        #expect(outer.accepts(array) && outer.accepts(hash))
        #expect(!outer.accepts(programs), "the kernel never allows a prog array as an inner map")
        #expect(outer.setInnerMap(hash, forKey: [1, 0, 0, 0]) == nil)
        #expect(outer.innerMap(forKey: [1, 0, 0, 0])?.attributes.name == "h")
        #expect(emulator.compatibilityWarnings.count == 1)
        #expect(emulator.compatibilityWarnings.first?.contains("bpf_map_meta_alloc") == true)
    }

    @Test func goMimicStillRefusesWhatItDoesNotRelax() throws {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1, compatibility: .goMimic))
        let vm = VM(emulator: emulator)
        #expect(throws: MapError.self) {
            _ = try emulator.createMap(
                MapAttributes(name: "q", type: .queue, keySize: 4, valueSize: 0, maxEntries: 1), in: vm)
        }
        let queue = try emulator.createMap(
            MapAttributes(name: "q2", type: .queue, keySize: 4, valueSize: 4, maxEntries: 1), in: vm)
        #expect(queue.attributes.keySize == 0)
    }
}
