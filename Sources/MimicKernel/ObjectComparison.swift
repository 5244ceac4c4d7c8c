import MimicCore
import MimicLinux
import MimicMemory

/// Runs one program of an object file in Mimic and in the kernel on the same packets, starting
/// from the same map contents, and lists every difference: return value (low 32 bits, all the
/// kernel reports), output packet, and map contents after each run.
///
/// Supported program types (`supportedTypes`): XDP, tc (`sched_cls` / `sched_act`), socket
/// filters, `cgroup_skb`, `lwt_in` / `lwt_out` / `lwt_xmit`, flow dissectors (the flow keys
/// compared as the output) and sk_lookup (`run(lookup:)`). The kernel runs the sk_buff types
/// but tc on the packet from its network header (`BPF_PROG_TEST_RUN` pulls the Ethernet header
/// first), so Mimic's sk_buff starts there for them too (`ContextFit.dataStart(of:)`); a
/// context that asks for another start is refused.
/// Kernel test runs are pinned to CPU 0 and Mimic runs as vCPU 0, so per-CPU maps compare.
///
/// Maps are compared at a cost that follows what they hold and what the runs touched, not
/// their `max_entries` (Docs/Performance.md has the figures):
/// - hash-like maps (hash, per-CPU and LRU hash, LPM trie): every element on both sides — the
///   kernel's read with `BPF_MAP_LOOKUP_BATCH` (LPM tries: `BPF_MAP_GET_NEXT_KEY`), Mimic's
///   from its index — so an element only
///   one side added, removed or changed is always found;
/// - arrays (plain and per-CPU): the indices Mimic's runs touched (`ArrayMap.touchedIndices`:
///   every index looked up or updated, by the program or by `setEntry`) and element 0 (which a
///   direct value address reaches), read on both sides. A value the kernel's program changed at
///   an index Mimic's program never looked up or updated is not seen: the two runs took
///   different paths through the map, which shows as a difference only if it also shows in a
///   touched index, the return value or the packet;
/// - global-data sections: whole.
public final class ObjectComparison {
    /// What one packet produced on each side.
    public struct PacketResult: Sendable {
        public var kernelReturn: UInt32
        public var kernelPacket: [UInt8]
        /// Mimic's R0 (all 64 bits), or nil when Mimic failed (`mimicError`).
        public var mimicReturn: UInt64?
        public var mimicPacket: [UInt8]?
        public var mimicError: String?
        /// Differences in return value, packet and maps, one line each; empty when they agree.
        public var differences: [String]
        /// The `__sk_buff` fields the kernel's `ctx_out` gives back
        /// (`TestRunContext.skbKernelOutputFields`), for tc and socket-filter programs.
        public var kernelContext: [TestRunContext.Field]? = nil
        /// The same fields as Mimic's program left them.
        public var mimicContext: [TestRunContext.Field]? = nil
    }

    public let object: ObjectFile
    public let programName: String
    public let programType: ProgramType
    public let kernel: KernelObject
    public let kernelProgram: KernelProgram
    public let emulator: LinuxEmulator
    public let vm: VM
    public let loaded: LoadedObject
    public let program: Program

    /// The memory budget of Mimic's VM unless `init` is given one: 16 GiB. The budget charges
    /// preallocated maps (arrays, hash maps without `BPF_F_NO_PREALLOC`) in full, as the kernel
    /// allocates them, but Mimic's map storage is `calloc`ed and costs host memory only as it is
    /// written; the kernel has already created the same maps when Mimic's are made, so the
    /// object is known to fit this machine. (`mimic run`'s default stays 1 GiB.)
    public static let defaultMemoryLimit = 16 << 30

    /// Program types `ObjectComparison` can run.
    public static let supportedTypes: [ProgramType] = [
        .xdp, .schedCls, .schedAct, .socketFilter, .cgroupSkb, .lwtIn, .lwtOut, .lwtXmit, .flowDissector, .skLookup,
    ]

    /// Instantiates the object on both sides and loads the program.
    ///
    /// - Parameters:
    ///   - programName: the program to run; nil picks the first XDP, tc or socket filter program.
    ///   - memoryLimit: Mimic's VM memory budget (`VMConfiguration.memoryLimit`).
    ///   - network: the network Mimic's helpers see; give the one the kernel's namespace holds
    ///     (the kernel runs in the calling thread's network namespace).
    /// - Throws: `KernelError` (`.verifierRejected` carries the verifier's log), or a
    ///   `ComparisonError` for what Mimic refuses.
    public init(
        object: ObjectFile, programName requested: String? = nil,
        memoryLimit: Int = ObjectComparison.defaultMemoryLimit,
        network: Network = .standard
    ) throws {
        self.object = object
        let source: ObjectProgram
        if let requested {
            guard let found = object.program(named: requested) else {
                throw ComparisonError(
                    "the object has no program named '\(requested)' (programs: \(object.programs.map(\.name).joined(separator: ", ")))"
                )
            }
            source = found
        } else {
            guard let found = object.programs.first(where: { Self.supportedTypes.contains($0.type) }) else {
                throw ComparisonError(
                    "the object has no program of a type compare runs (\(Self.supportedTypes.map(\.description).joined(separator: ", "))); programs: \(object.programs.map { "\($0.name) (\($0.type))" }.joined(separator: ", ")))"
                )
            }
            source = found
        }
        guard Self.supportedTypes.contains(source.type) else {
            throw ComparisonError(
                "program \(source.name) is a \(source.type) program; compare runs \(Self.supportedTypes.map(\.description).joined(separator: ", ")) programs"
            )
        }
        programName = source.name
        programType = source.type
        emulator = LinuxEmulator(
            configuration: LinuxConfiguration(cpuCount: KernelBPF.possibleCPUs, randomSeed: 1, network: network))
        vm = VM(emulator: emulator, configuration: VMConfiguration(memoryLimit: memoryLimit))
        do {
            loaded = try vm.load(object: object)
            program = try loaded.program(named: source.name)
        } catch {
            throw ComparisonError("Mimic cannot load \(source.name): \(error)")
        }
        // The kernel sees the __kconfig values Mimic resolved.
        let kconfig = loaded.globals[ObjectExtern.kconfigSection]?.storage.bytes
        func load(withBTF: Bool) throws(KernelError) -> (KernelObject, KernelProgram) {
            let kernel = try KernelObject(object: object, kconfig: kconfig, loadsObjectBTF: withBTF)
            try kernel.loadTailCallTargets()
            return (kernel, try kernel.program(named: source.name))
        }
        do {
            (kernel, kernelProgram) = try load(withBTF: false)
        } catch {
            // What the kernel refuses for want of the object's BTF (a spin lock or timer in a map
            // value, a callback, bpf_obj_new) it may take with it, as libbpf loads it.
            guard error.asksForObjectBTF, object.btf != nil else { throw error }
            (kernel, kernelProgram) = try load(withBTF: true)
        }
        for name in comparedMaps {
            (emulator.map(named: name) as? ArrayMap)?.trackTouches()
        }
    }

    /// Names of the maps and global-data sections compared after each run.
    public var comparedMaps: [String] {
        object.maps.filter { Self.comparable($0.attributes.type) }.map(\.name)
            + object.globals.filter { $0.size > 0 }.map(\.name)
    }

    static func comparable(_ type: MapType) -> Bool {
        [.hash, .array, .perCPUHash, .perCPUArray, .lruHash, .lruPerCPUHash, .lpmTrie].contains(type)
    }

    /// Sets an entry on both sides before the runs. `values` holds one value, given to every
    /// CPU of a per-CPU map, or one value per possible CPU. For a global-data section the key
    /// is ignored and the value replaces the section's bytes.
    public func setEntry(map name: String, key: [UInt8], values: [[UInt8]]) throws {
        guard let first = values.first else { throw ComparisonError("map \(name): an entry needs a value") }
        if let global = loaded.globals[name] {
            guard first.count == global.spec.size else {
                throw ComparisonError(
                    "\(name): the value has \(first.count) bytes, the section has \(global.spec.size)")
            }
            guard !global.spec.isReadOnly else {
                throw ComparisonError("\(name) is read-only (frozen in the kernel); it cannot be set")
            }
            global.storage.write(first, at: 0)
            try kernel.maps[name]?.update(key: [0, 0, 0, 0], value: first)
            return
        }
        guard let mimicMap = emulator.map(named: name), let kernelMap = kernel.maps[name] else {
            throw ComparisonError(
                "there is no map named '\(name)' (maps: \(object.maps.map(\.name).joined(separator: ", ")))")
        }
        let attributes = kernelMap.attributes
        guard key.count == attributes.keySize else {
            throw ComparisonError(
                "map \(name): the key has \(key.count) bytes, the map's keys have \(attributes.keySize)")
        }
        for value in values where value.count != attributes.valueSize {
            throw ComparisonError(
                "map \(name): a value has \(value.count) bytes, the map's values have \(attributes.valueSize)")
        }
        if kernelMap.isPerCPU {
            let cpus = KernelBPF.possibleCPUs
            guard values.count == 1 || values.count == cpus else {
                throw ComparisonError("map \(name): give one value, or one per CPU (\(cpus)); got \(values.count)")
            }
            let stride = (attributes.valueSize + 7) & ~7
            var all: [UInt8] = []
            for cpu in 0..<cpus {
                let value = values.count == 1 ? first : values[cpu]
                all += value + [UInt8](repeating: 0, count: stride - value.count)
                if let errno = mimicMap.update(key: key, value: value, flags: .any, cpu: cpu) {
                    throw ComparisonError("map \(name): Mimic refused the entry: \(errno)")
                }
            }
            try kernelMap.update(key: key, value: all)
        } else {
            guard values.count == 1 else { throw ComparisonError("map \(name) is not per-CPU: give one value") }
            if let errno = mimicMap.update(key: key, value: first, flags: .any, cpu: 0) {
                throw ComparisonError("map \(name): Mimic refused the entry: \(errno)")
            }
            try kernelMap.update(key: key, value: first)
        }
    }

    /// Runs the program on `packet` on both sides, then compares results and maps.
    ///
    /// - Parameter mimicContext: the context Mimic runs with (e.g. from a context file); by
    ///   default an `XDPContext` or `SKBContext` of the packet like the kernel's test run.
    ///   The kernel gets the same `ctx_in` fields (`TestRunContext.kernelInput(for:)`): always
    ///   for an sk_buff, for an xdp_md when a context is given. For an sk_buff the `ctx_out`
    ///   fields (`TestRunContext.skbKernelOutputFields`: mark, priority, cb, ...) are compared.
    public func run(packet: [UInt8], mimicContext: (any Context)? = nil) throws -> PacketResult {
        if programType == .skLookup {
            throw ComparisonError("an sk_lookup program takes no packet: compare it with run(lookup:)")
        }
        if programType == .flowDissector {
            return try runFlowDissector(packet: packet, context: mimicContext)
        }
        if packet.count < 14 {
            throw ComparisonError(
                "the kernel's test run takes only packets of at least 14 bytes (an Ethernet header); this one has \(packet.count)"
            )
        }
        var context: any Context
        if let mimicContext {
            context = mimicContext
        } else if programType == .xdp {
            context = XDPContext(packet: packet)
        } else {
            var skb = SKBContext(packet: packet, ifindex: 1)
            skb.ingressIfindex = 0
            context = skb
        }
        context = try ContextFit.fit(
            context, type: programType, describing: "program \(programName) (type \(programType))")
        // The kernel's test run puts the packet on the loopback device (index 1) unless the
        // context names another device.
        if var skb = context as? SKBContext, skb.ifindex <= 1 {
            skb.ifindex = 1
            context = skb
        }
        if let skb = context as? SKBContext, skb.dataStart != ContextFit.dataStart(of: programType) {
            throw ComparisonError(
                "the context starts the sk_buff's data at the \(skb.dataStart?.rawValue ?? "mac") header, but the kernel's test run starts a \(programType) program's at the \(ContextFit.dataStart(of: programType).rawValue) header; remove \"dataStart\" to compare"
            )
        }
        // ctx_in: always for an sk_buff (so both sides start from the same fields, and ctx_out
        // can be compared); for xdp_md when the caller gave a context.
        let kernelContextIn =
            context is SKBContext || mimicContext != nil ? TestRunContext.kernelInput(for: context) : nil
        let kernelRun: KernelTestRun
        do {
            kernelRun = try KernelBPF.withPinnedCPU(0) { () throws(KernelError) -> KernelTestRun in
                try kernelProgram.testRun(data: packet, context: kernelContextIn)
            }
        } catch {
            throw Self.explain(error, programType: programType)
        }
        var kernelPacket = kernelRun.data
        // At the network header (socket filters, cgroup_skb, lwt): the kernel puts a zeroed
        // Ethernet header back before data_out.
        if ContextFit.packetKind(of: programType) == .skb, ContextFit.dataStart(of: programType) == .network {
            kernelPacket = Array(kernelPacket.dropFirst(14))
        }

        var result = PacketResult(kernelReturn: kernelRun.returnValue, kernelPacket: kernelPacket, differences: [])
        let isSKB = context is SKBContext
        if isSKB, let out = kernelRun.context {
            result.kernelContext = TestRunContext.skbFields(out, names: TestRunContext.skbKernelOutputFields)
        }
        // The kernel's test run gives each run fresh cgroup storage.
        for map in emulator.allMaps { (map as? CgroupStorageMap)?.removeAllStorage() }
        do {
            let process = try vm.makeProcess(for: program, context: context, vCPU: 0)
            let value = try process.run(instructionLimit: 100_000_000)
            result.mimicReturn = value
            if let xdp = XDPContext.result(of: process) {
                result.mimicPacket = xdp.packet
            } else if let skb = SKBContext.result(of: process) {
                result.mimicPacket = skb.packet
            }
            if isSKB, let fields = TestRunContext.output(of: process) {
                let names = Set(TestRunContext.skbKernelOutputFields)
                result.mimicContext = fields.filter { names.contains($0.name) }
            }
        } catch {
            result.mimicError = "\(error)"
        }

        if let error = result.mimicError {
            result.differences.append(
                "Mimic failed (\(error)); the kernel returned \(Self.show(kernelRun.returnValue))")
        } else if let value = result.mimicReturn, UInt32(truncatingIfNeeded: value) != kernelRun.returnValue {
            result.differences.append(
                "return value: kernel \(Self.show(kernelRun.returnValue)), Mimic \(Self.show(UInt32(truncatingIfNeeded: value)))"
            )
        }
        if let mimicPacket = result.mimicPacket, mimicPacket != kernelPacket {
            result.differences.append(Self.describePacketDifference(kernel: kernelPacket, mimic: mimicPacket))
        }
        if let kernel = result.kernelContext, let mimic = result.mimicContext {
            let mimicValues = Dictionary(mimic.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
            for field in kernel where mimicValues[field.name] != field.value {
                result.differences.append(
                    "context \(field.name): kernel \(field.value), Mimic \(mimicValues[field.name].map { "\($0)" } ?? "none")"
                )
            }
        }
        result.differences += try compareMaps()
        return result
    }

    /// Runs a flow dissector on `packet` on both sides (the kernel's `bpf_prog_test_run_flow_dissector`):
    /// the return value and `struct bpf_flow_keys` (the kernel's `data_out`, here in
    /// `kernelPacket` / `mimicPacket`) are compared, then the maps. `context` may be a
    /// `FlowDissectorContext` for the packet (its `flags` go to the kernel as `ctx_in`).
    func runFlowDissector(packet: [UInt8], context: (any Context)?) throws -> PacketResult {
        guard packet.count >= 14 else {
            throw ComparisonError(
                "a flow dissector's test run takes a frame of at least 14 bytes; this one has \(packet.count)")
        }
        var dissector = FlowDissectorContext(packet: packet)
        if let context {
            guard let given = context as? FlowDissectorContext, given.packet == packet else {
                throw ComparisonError("a flow dissector compares with a bpf_flow_dissector context of the same packet")
            }
            guard given.networkOffset == 14, !given.hasSKB else {
                throw ComparisonError(
                    "the kernel's test run dissects from offset 14 without an sk_buff; remove \"nhoff\" and \"skb\" to compare"
                )
            }
            dissector = given
        }
        var contextIn: [UInt8]? = nil
        if dissector.flags != 0 {
            var keys = [UInt8](repeating: 0, count: 56)
            for i in 0..<4 { keys[48 + i] = UInt8(truncatingIfNeeded: dissector.flags >> (8 * i)) }
            contextIn = keys
        }
        let kernelRun = try KernelBPF.withPinnedCPU(0) { () throws(KernelError) -> KernelTestRun in
            try kernelProgram.testRun(data: packet, context: contextIn)
        }
        var result = PacketResult(kernelReturn: kernelRun.returnValue, kernelPacket: kernelRun.data, differences: [])
        do {
            let process = try vm.makeProcess(for: program, context: dissector, vCPU: 0)
            _ = try process.run(instructionLimit: 100_000_000)
            if let outcome = FlowDissectorContext.result(of: process) {
                result.mimicReturn = outcome.returnValue
                result.mimicPacket = outcome.keys
            }
        } catch {
            result.mimicError = "\(error)"
        }
        result.differences = compareOutcome(result, kernelRun.returnValue, what: "flow keys")
        result.differences += try compareMaps()
        return result
    }

    /// What one sk_lookup run produced on each side.
    public struct LookupResult: Sendable {
        public var kernelReturn: UInt32
        /// The selected socket's cookie (`ctx_out.cookie`), 0 when none.
        public var kernelCookie: UInt64
        public var mimicReturn: UInt64?
        public var mimicCookie: UInt64?
        public var mimicError: String?
        public var differences: [String]
    }

    /// Runs an sk_lookup program on `lookup` on both sides (`bpf_prog_test_run_sk_lookup`: the
    /// struct as `ctx_in`, no data) and compares the verdict, whether a socket was selected
    /// (cookies differ between the two: the kernel's come from a counter) and the maps.
    public func run(lookup: SKLookupContext) throws -> LookupResult {
        guard programType == .skLookup else {
            throw ComparisonError("run(lookup:) runs sk_lookup programs; \(programName) is a \(programType) program")
        }
        guard lookup.ingressIfindex == 0 else {
            throw ComparisonError(
                "the kernel's sk_lookup test run refuses a non-zero ingress_ifindex (EINVAL); remove it to compare")
        }
        let kernelRun = try KernelBPF.withPinnedCPU(0) { () throws(KernelError) -> KernelTestRun in
            try kernelProgram.testRunContextOnly(context: lookup.bytes)
        }
        let out = kernelRun.context ?? []
        let cookie = out.count >= 8 ? (0..<8).reduce(UInt64(0)) { $0 | UInt64(out[$1]) << (8 * $1) } : 0
        var result = LookupResult(
            kernelReturn: kernelRun.returnValue, kernelCookie: cookie, mimicReturn: nil, mimicCookie: nil,
            mimicError: nil, differences: [])
        do {
            let process = try vm.makeProcess(for: program, context: lookup, vCPU: 0)
            _ = try process.run(instructionLimit: 100_000_000)
            if let outcome = SKLookupContext.result(of: process) {
                result.mimicReturn = outcome.returnValue
                result.mimicCookie = outcome.selectedCookie
            }
        } catch {
            result.mimicError = "\(error)"
        }
        if let error = result.mimicError {
            result.differences.append(
                "Mimic failed (\(error)); the kernel returned \(Self.show(kernelRun.returnValue))")
        } else if let value = result.mimicReturn, UInt32(truncatingIfNeeded: value) != kernelRun.returnValue {
            result.differences.append(
                "return value: kernel \(Self.show(kernelRun.returnValue)), Mimic \(Self.show(UInt32(truncatingIfNeeded: value)))"
            )
        }
        if let mimicCookie = result.mimicCookie, (mimicCookie == 0) != (cookie == 0) {
            result.differences.append(
                "selected socket: kernel \(cookie == 0 ? "none" : "cookie \(cookie)"), Mimic \(mimicCookie == 0 ? "none" : "cookie \(mimicCookie)")"
            )
        }
        result.differences += try compareMaps()
        return result
    }

    /// Return value and output bytes (`what` names them) of a run, compared.
    func compareOutcome(_ result: PacketResult, _ kernelReturn: UInt32, what: String) -> [String] {
        var lines: [String] = []
        if let error = result.mimicError {
            lines.append("Mimic failed (\(error)); the kernel returned \(Self.show(kernelReturn))")
        } else if let value = result.mimicReturn, UInt32(truncatingIfNeeded: value) != kernelReturn {
            lines.append(
                "return value: kernel \(Self.show(kernelReturn)), Mimic \(Self.show(UInt32(truncatingIfNeeded: value)))"
            )
        }
        if let mimic = result.mimicPacket, mimic != result.kernelPacket {
            lines.append("\(what): kernel \(Self.hex(result.kernelPacket)), Mimic \(Self.hex(mimic))")
        }
        return lines
    }

    /// Adds a hint to the kernel's bare EINVAL for sk_buff test runs.
    static func explain(_ error: KernelError, programType: ProgramType) -> any Error {
        if case .systemCall(let command, let errno, let detail) = error, errno == 22, programType != .xdp {
            return ComparisonError(
                "\(detail): bpf(\(command)) failed with EINVAL; the kernel's sk_buff test run refuses packets whose EtherType says IPv4 or IPv6 but whose IP header is cut short"
            )
        }
        if case .systemCall(let command, let errno, let detail) = error, errno == 19 {
            return ComparisonError(
                "\(detail): bpf(\(command)) failed with ENODEV: the context's ifindex / ingress_ifindex names no device of this kernel (use 1, the loopback device)"
            )
        }
        return error
    }

    static func show(_ value: UInt32) -> String { "\(value) (0x\(String(value, radix: 16)))" }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    static func describePacketDifference(kernel: [UInt8], mimic: [UInt8]) -> String {
        if kernel.count != mimic.count {
            return
                "output packet: kernel \(kernel.count) bytes, Mimic \(mimic.count) bytes\n  kernel: \(hex(kernel))\n  mimic:  \(hex(mimic))"
        }
        let first = zip(kernel, mimic).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? 0
        let count = zip(kernel, mimic).filter { $0 != $1 }.count
        return
            "output packet: \(count) byte(s) differ, the first at offset \(first): kernel 0x\(hex([kernel[first]])), Mimic 0x\(hex([mimic[first]]))"
    }

    /// Map contents on both sides, compared: one line per differing key. Arrays are compared
    /// at the indices Mimic touched (see the type's documentation), other maps whole.
    public func compareMaps() throws -> [String] {
        var lines: [String] = []
        for name in comparedMaps {
            let kernelEntries: [[UInt8]: [[UInt8]]]
            let mimicEntries: [[UInt8]: [[UInt8]]]
            if loaded.globals[name] == nil, let array = emulator.map(named: name) as? ArrayMap {
                let keys = Self.comparedIndices(of: array).map { KernelObject.u32(UInt32($0)) }
                kernelEntries = try kernelContents(name, keys: keys)
                mimicEntries = mimicContents(name, keys: keys)
            } else {
                kernelEntries = try kernelContents(name)
                mimicEntries = mimicContents(name)
            }
            for key in Set(kernelEntries.keys).union(mimicEntries.keys).sorted(by: { $0.lexicographicallyPrecedes($1) })
            {
                switch (kernelEntries[key], mimicEntries[key]) {
                case (let k?, let m?) where k != m:
                    lines.append(
                        "map \(name) key \(Self.hex(key)): kernel \(k.map(Self.hex).joined(separator: " | ")), Mimic \(m.map(Self.hex).joined(separator: " | "))"
                    )
                case (_?, nil):
                    lines.append("map \(name) key \(Self.hex(key)): only in the kernel")
                case (nil, _?):
                    lines.append("map \(name) key \(Self.hex(key)): only in Mimic")
                default:
                    break
                }
            }
        }
        return lines
    }

    /// The indices of an array compared after a run: those Mimic touched, and element 0.
    static func comparedIndices(of array: ArrayMap) -> [Int] {
        let touched = array.touchedIndices
        return touched.first == 0 ? touched : [0] + touched
    }

    /// A map's entries in the kernel: key → one value per CPU (one value for other maps).
    /// Reads every entry (in batches): for an array that is all `max_entries` of them.
    public func kernelContents(_ name: String) throws -> [[UInt8]: [[UInt8]]] {
        guard let map = kernel.maps[name] else { return [:] }
        var result: [[UInt8]: [[UInt8]]] = [:]
        for (key, value) in try map.entriesInBatches() { result[key] = split(value, of: map) }
        return result
    }

    /// The kernel's entries for `keys` only (`BPF_MAP_LOOKUP_ELEM` each); keys without one are left out.
    public func kernelContents(_ name: String, keys: [[UInt8]]) throws -> [[UInt8]: [[UInt8]]] {
        guard let map = kernel.maps[name] else { return [:] }
        var result: [[UInt8]: [[UInt8]]] = [:]
        for key in keys {
            if let value = try map.lookup(key: key) { result[key] = split(value, of: map) }
        }
        return result
    }

    /// A value as user space reads it, as one value per CPU (per-CPU maps) or one value.
    private func split(_ value: [UInt8], of map: KernelMap) -> [[UInt8]] {
        guard map.isPerCPU else { return [value] }
        let size = map.attributes.valueSize
        let stride = (size + 7) & ~7
        return stride == 0 ? [] : stride_(value, stride).map { Array($0.prefix(size)) }
    }

    private func stride_(_ bytes: [UInt8], _ step: Int) -> [[UInt8]] {
        stride(from: 0, to: bytes.count, by: step).map { Array(bytes[$0..<min(bytes.count, $0 + step)]) }
    }

    /// A map's entries in Mimic: key → one value per CPU (one value for other maps).
    public func mimicContents(_ name: String) -> [[UInt8]: [[UInt8]]] {
        if let global = loaded.globals[name] { return [[0, 0, 0, 0]: [global.storage.bytes]] }
        guard let map = emulator.map(named: name) else { return [:] }
        return mimicContents(name, keys: map.keys)
    }

    /// Mimic's entries for `keys` only; keys without one are left out.
    public func mimicContents(_ name: String, keys: [[UInt8]]) -> [[UInt8]: [[UInt8]]] {
        guard let map = emulator.map(named: name) else { return [:] }
        var result: [[UInt8]: [[UInt8]]] = [:]
        for key in keys {
            if let values = map.perCPUValues(forKey: key) { result[key] = values }
        }
        return result
    }
}

/// A problem with a comparison's input that is not the kernel's: an unknown program or map, a
/// wrong key size, a program type compare cannot run, or Mimic refusing the object.
public struct ComparisonError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
