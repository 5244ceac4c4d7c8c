import Foundation
import MimicCore
import MimicLinux
import Testing
import MimicTestSupport

/// ABI 1.1 through the Linux plugin: mirrored memory, and the error paths of maps, contexts and
/// instances; and a 1.0 plugin still loading beside it.
@Suite(.serialized) struct PluginABITests {
    init() { PluginFixtures.quietLogs }

    func linux() throws -> PluginLibrary { try PluginLibrary.load(path: try PluginFixtures.linuxPlugin.get()) }

    @Test func mapValuesLiveInTheHostVMAtThePluginsAddresses() throws {
        let fixture = try Backend.plugin.load("xdp_firewall")
        let verdicts = try fixture.map("verdicts")
        let region = try #require(fixture.vm.sharedRegions.first { $0.name == "map:verdicts" })
        // Per-CPU values of key 1 (XDP_DROP) on CPU 0: inside the region the host mapped.
        let address = try #require(try verdicts.lookupAddress(le32(1)))
        #expect(region.contains(address))
        // A program's store through the pointer is a plain host write into the plugin's bytes.
        _ = try fixture.run(
            "firewall", context: ContextJSON.xdp(Array(Packet.make(source: "1.2.3.4", destination: "5.6.7.8")[0..<20])))
        #expect(try verdicts.perCPUValues(le32(0))?.map(uint64) == [1, 0])
    }

    @Test func aMapTypeThePluginRefusesNamesTheMap() throws {
        let emulator = try linux().makeEmulator(options: "")
        let vm = VM(emulator: emulator)
        // A type the kernel does not define (the kernel's other types load as placeholders).
        let spec = MapSpec(
            attributes: MapAttributes(
                name: "odd_ops", type: MapType(rawValue: 200), keySize: 4, valueSize: 4, maxEntries: 1),
            source: .btf, sectionName: ".maps", sectionOffset: 0)
        do {
            _ = try #require(vm.mapProvider).createMap(spec, in: vm)
            Issue.record("a map of type 200 was created")
        } catch {
            let text = "\(error)"
            #expect(text.contains("map odd_ops"), "\(text)")
            #expect(text.contains("not supported"), "\(text)")
            #expect(text.contains("BPF_MAP_TYPE_RINGBUF"), "lists the types the plugin creates: \(text)")
        }
        #expect(emulator.maps(in: vm).isEmpty)
    }

    @Test(arguments: [
        (#"{"name":"x","type":"xdp_md","ctx":{"headroom":"lots"}}"#, "ctx.headroom"),
        (#"{"name":"x","type":"xdp_md","ctx":{"packet":"@@@"}}"#, "ctx.packet"),
        (#"{"name":"x","type":"no_such_type","ctx":{}}"#, "no_such_type"),
        (#"{"name":"x","#, "context file"),
    ])
    func badContextJSONGivesThePluginsErrorWithThePath(json: String, expected: String) throws {
        let emulator = try linux().makeEmulator(options: "")
        let vm = VM(emulator: emulator)
        let program = try vm.load(Assembler.assemble("mov %r0, 0\nexit"))
        do {
            _ = try vm.makeProcess(for: program, context: PluginContext(json: json, emulator: emulator))
            Issue.record("the context attached")
        } catch {
            #expect("\(error)".contains(expected), "\(error)")
        }
    }

    @Test func badInstanceOptionsAreRefusedWithTheReason() throws {
        let emulator = try linux().makeEmulator(options: "cpus=none")
        let vm = VM(emulator: emulator)
        #expect(throws: LoadError.self) {
            try vm.load(object: PluginFixtures.object("Tests/MimicLinuxTests/Fixtures/lru.o"))
        }
        do {
            _ = try vm.load(object: PluginFixtures.object("Tests/MimicLinuxTests/Fixtures/lru.o"))
        } catch {
            #expect("\(error)".contains("option cpus: expected 1...4096, got none"), "\(error)")
        }
    }

    @Test func mapCallsCheckSizesAndReportErrno() throws {
        let fixture = try Backend.plugin.load("lru")
        let environment = try #require(fixture as? PluginEnvironment)
        let flows = try #require(environment.emulator.map(named: "flows", in: environment.vm))
        #expect(flows.type == .lruHash && flows.keySize == 4 && flows.valueSize == 8)
        #expect(throws: PluginMapError.self) { try flows.value(forKey: [1, 2]) }
        do {
            try flows.delete(key: Packet.ip("10.0.0.9"))
            Issue.record("deleted a missing key")
        } catch {
            #expect(error.errno == -2)
            #expect(error.description == "map flows: delete failed: -ENOENT (-2)")
        }
        try flows.update(key: Packet.ip("10.0.0.9"), value: le64(7))
        #expect(try flows.value(forKey: Packet.ip("10.0.0.9")) == le64(7))
        try flows.delete(key: Packet.ip("10.0.0.9"))
        #expect(try flows.keys().isEmpty)
        #expect(throws: PluginMapError.self) { try flows.drainRecords() }
    }

    @Test func queueValuesPopIntoTheHostStack() throws {
        // bpf_map_pop_elem checks the destination before taking a value: on the host's stack,
        // which the plugin reaches only through the host's memory services.
        let emulator = try linux().makeEmulator(options: "")
        let vm = VM(emulator: emulator)
        let spec = MapSpec(
            attributes: MapAttributes(name: "jobs", type: .queue, keySize: 0, valueSize: 8, maxEntries: 4),
            source: .btf,
            sectionName: ".maps", sectionOffset: 0)
        let handle = "0x" + String(try #require(vm.mapProvider).createMap(spec, in: vm), radix: 16)
        let program = try vm.load(
            Assembler.assemble(
                """
                lddw %r1, \(handle)
                mov %r2, 42
                stxdw [%r10-8], %r2
                mov %r2, %r10
                add %r2, -8
                mov %r3, 0
                call 87
                lddw %r1, \(handle)
                mov %r2, %r10
                add %r2, -16
                call 88
                ldxdw %r0, [%r10-16]
                exit
                """))
        #expect(try vm.makeProcess(for: program).run() == 42)
        // Host access: records come out oldest first.
        let jobs = try #require(emulator.map(named: "jobs", in: vm))
        _ = try vm.makeProcess(for: program).run()
        #expect(try jobs.drainRecords().isEmpty, "the program pushed and popped")
    }

    /// A `bpf_loop` whose callback reads address 0: the program stops with the callback's
    /// fault inside `bpf_loop`, through the plugin as when MimicLinux is linked statically.
    @Test func aFailingCallbackStopsTheProgramWithItsFault() throws {
        var instructions = try Assembler.assemble(
            """
            mov %r1, 3
            lddw %r2, 0
            mov %r3, 0
            mov %r4, 0
            call 181
            exit
            callback:
            ldxdw %r0, [%r3+0]
            exit
            """)
        // lddw %r2 (slot 1) becomes BPF_PSEUDO_FUNC to the callback (slot 7), relative to slot 2.
        instructions[1].source = LoadImm64Kind.function.rawValue
        instructions[1].imm = 7 - 2
        for emulator in [try linux().makeEmulator(options: "") as any Emulator, LinuxEmulator()] {
            let vm = VM(emulator: emulator)
            let error = try #require(throws: ExecutionError.self) {
                try vm.makeProcess(for: vm.load(instructions)).run()
            }
            let text = "\(error)"
            #expect(text.contains("bpf_loop"), "\(emulator.name): \(text)")
            #expect(text.contains("0x0"), "names the address: \(emulator.name): \(text)")
            #expect(text.contains("unmapped") || text.contains("no region"), "\(emulator.name): \(text)")
        }
    }

    /// A plugin built against ABI 1.0: its description ends at `process_end`. Whatever lies
    /// beyond (garbage here) must never be read.
    static let oldPlugin = """
        #include <string.h>
        #include "mimic_plugin.h"
        static uint64_t twice(const struct mimic_host *host, struct mimic_call *call,
                              uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5) { return r1 * 2; }
        static const struct mimic_helper helpers[] = { { .id = 31000, .name = "twice", .function = twice } };
        static struct mimic_plugin plugin = {
            .abi_major = 1, .abi_minor = 0, .size = offsetof(struct mimic_plugin, instance_create),
            .name = "old", .helper_count = 1, .helpers = helpers,
        };
        const struct mimic_plugin *mimic_plugin_entry(const struct mimic_host *host) {
            memset((char *)&plugin + plugin.size, 0xAB, sizeof plugin - plugin.size);
            return &plugin;
        }
        """

    @Test func anABI10PluginStillLoadsBesideTheLinuxPlugin() throws {
        let old = try PluginLibrary.load(path: try PluginFixtures.cLibrary("old_abi", source: Self.oldPlugin))
        #expect(old.abiVersion == PluginABIVersion(major: 1, minor: 0))
        #expect(!old.providesMaps)
        #expect(!(old.emulator is any MapProvider))
        let composite = try CompositeEmulator([try linux().emulator, old.emulator])
        let vm = VM(emulator: composite)
        let program = try vm.load(Assembler.assemble("mov %r1, 21\ncall 31000\nexit"))
        #expect(try vm.makeProcess(for: program).run() == 42)
    }
}
