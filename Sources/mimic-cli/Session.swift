import MimicCore
import MimicLinux
import MimicMemory

/// An object file loaded for `run`, `trace` and `debug`: a VM with the Linux emulator, the
/// object's maps and global data, and the selected program.
final class Session {
    /// The object's display name (its path, or `<stdin>`).
    let objectName: String
    let object: ObjectFile
    /// The selected program as the object describes it (functions, source lines).
    let source: ObjectProgram
    let emulator: LinuxEmulator
    let vm: VM
    let loaded: LoadedObject
    let program: Program
    /// Possible CPUs: per-CPU maps hold this many values.
    let cpus: Int
    /// The per-run instruction budget.
    let limit: UInt64
    /// The per-run wall-clock budget (`--timeout`), or nil.
    var timeout: Duration?
    /// The target kernel's BTF the object was relocated against (`--btf`, or the running
    /// kernel's with `--system` / `--events`), nil for the object's own.
    let kernelBTF: BTF?

    /// Loads the object at `path` and the program named `programName` (or the object's only
    /// program).
    /// Loads `programName` (or the object's only program) from the object at `path`, in a VM
    /// whose emulator is the Linux emulator plus the helpers of `plugins`.
    /// `seed` seeds `bpf_get_prandom_u32` (nil: the clock); `kernel` gives `__kconfig` values.
    /// `configuration` is applied to the object before load (globals, map sizes, `--type`, slots).
    /// `compatibility` `.goMimic` loads map definitions the kernel refuses, with a warning each.
    init(
        path: String, programName: String?, cpus: Int, limit: UInt64, seed: UInt64? = nil,
        memoryLimit: Int = MemoryBudget.defaultLimit, plugins: [PluginLibrary] = [],
        configuration: ConfigurationOptions? = nil, kernel: KernelConfig = KernelConfig(),
        compatibility: LinuxCompatibility = .kernel, network: Network = .standard, tracing: Tracing? = nil,
        engine: ExecutionEngine = .automatic
    ) throws(RuntimeError) {
        objectName = Input.displayName(path)
        let bytes = try Input.read(path)
        guard ObjectInput.isELF(bytes) else {
            throw RuntimeError(
                "\(objectName) is not an ELF object (it does not start with 0x7f 'ELF'); compile it with `clang -O2 -g -target bpf -c`, or use `mimic run-raw` for assembler text and bytecode"
            )
        }
        kernelBTF = tracing?.kernelBTF
        let parsed = try ObjectInput.object(bytes, name: objectName, targetBTF: tracing?.kernelBTF)
        object = try configuration?.apply(to: parsed, programName: programName, objectName: objectName) ?? parsed
        if let programName {
            guard let found = object.program(named: programName) else {
                throw RuntimeError(
                    "\(objectName) has no program named '\(programName)'; programs: \(ObjectInput.names(object))")
            }
            source = found
        } else {
            guard let first = object.programs.first else { throw RuntimeError("\(objectName) contains no programs") }
            guard object.programs.count == 1 || tracing?.eventsChoosePrograms == true else {
                throw RuntimeError(
                    "\(objectName) has \(object.programs.count) programs; choose one with --program NAME: \(ObjectInput.names(object))"
                )
            }
            source = first
        }
        self.cpus = cpus
        self.limit = limit
        emulator = LinuxEmulator(
            configuration: LinuxConfiguration(
                cpuCount: cpus, randomSeed: seed, kernel: kernel,
                compatibility: compatibility, network: network, system: tracing?.system,
                kernelBTF: tracing.map { $0.kernelBTF ?? parsed.btf } ?? nil))
        let vmConfiguration = VMConfiguration(memoryLimit: memoryLimit, engine: engine)
        if plugins.isEmpty {
            vm = VM(emulator: emulator, configuration: vmConfiguration)
        } else {
            do {
                vm = VM(
                    emulator: try CompositeEmulator([emulator] + plugins.map(\.emulator)),
                    configuration: vmConfiguration)
            } catch {
                throw RuntimeError(error.description)
            }
        }
        if let problem = object.unsizedMapProblem { throw RuntimeError("cannot load \(objectName): \(problem)") }
        do {
            loaded = try vm.load(object: object)
            program = try loaded.program(named: source.name)
            // The command shows perf events: it is the perf buffers' reader.
            for map in emulator.allMaps { (map as? PerfEventArrayMap)?.attachReaders() }
        } catch {
            throw RuntimeError("cannot load \(objectName): \(error)")
        }
        for warning in emulator.compatibilityWarnings { Console.err("mimic: warning: \(warning)\n") }
    }

    /// What a tracing run adds (`--system`, `--btf`, `--events`).
    struct Tracing {
        var system: EmulatedSystem?
        /// The target kernel's BTF: CO-RE relocations are applied against it and kernel objects
        /// laid out from it. Nil: the object's own BTF.
        var kernelBTF: BTF?
        /// Events name their programs: an object of several programs needs no --program.
        var eventsChoosePrograms = false
    }

    /// The program's type, from its section name (or `--type`).
    var type: ProgramType { source.type }

    /// The kind of context the program takes a packet in.
    enum PacketKind { case xdp, skb, none }

    var packetKind: PacketKind {
        switch ContextFit.packetKind(of: type) {
        case .xdp: .xdp
        case .skb: .skb
        case nil: .none
        }
    }

    /// `--data-start`: where an sk_buff's data starts when the context does not say (nil: the
    /// program type's start, `ContextFit.dataStart(of:)`).
    var dataStart: SKBContext.DataStart?

    /// `--ctx`: fields set on every xdp_md / sk_buff context, as `ctx_in` takes them.
    var contextFields: [TestRunContext.Field] = []

    /// `context` with `--ctx` applied.
    func withFields(_ context: any Context) throws(RuntimeError) -> any Context {
        do {
            return try TestRunContext.apply(contextFields, to: context)
        } catch {
            throw RuntimeError("--ctx: \(error)")
        }
    }

    // MARK: Maps

    /// The maps of the object (and its global-data maps) in declaration order.
    private(set) lazy var maps: [any BPFMap] = collectMaps()

    private func collectMaps() -> [any BPFMap] {
        var result: [any BPFMap] = []
        var seen = Set<String>()
        for spec in object.maps {
            if let map = emulator.map(named: spec.name), seen.insert(spec.name).inserted { result.append(map) }
        }
        for map in emulator.allMaps where seen.insert(map.name).inserted { result.append(map) }
        return result
    }

    func map(named name: String) -> (any BPFMap)? { maps.first { $0.name == name } }

    /// Applies `--map NAME=FILE.json` arguments.
    func preload(_ arguments: [String]) throws {
        for argument in arguments {
            let (name, path) = try MapFile.split(argument)
            guard let map = map(named: name) else {
                let names = maps.map(\.name).joined(separator: ", ")
                throw RuntimeError(
                    "--map \(argument): \(objectName) has no map named '\(name)'; maps: \(names.isEmpty ? "none" : names)"
                )
            }
            let attributes = map.attributes
            let entries = try MapFile.entries(
                Input.read(path), file: Input.displayName(path), keySize: attributes.keySize,
                valueSize: attributes.valueSize, cpus: cpus)
            let perCPU = MapSnapshot.isPerCPU(attributes.type)
            for (index, entry) in entries.enumerated() {
                var failure: Errno?
                if perCPU {
                    let values = entry.perCPU ? entry.values : Array(repeating: entry.values[0], count: cpus)
                    if let hash = map as? HashTableMap {
                        failure = hash.update(key: entry.key, perCPUValues: values)
                    } else if let array = map as? ArrayMap {
                        failure = array.update(key: entry.key, perCPUValues: values)
                    } else {
                        failure = .invalid
                    }
                } else if let programName = entry.program {
                    failure = try setEntry(
                        map, key: entry.key, value: entry.values[0], program: programName, file: path, index: index)
                } else {
                    if entry.perCPU {
                        throw RuntimeError(
                            "\(Input.displayName(path)): [\(index)].values: \(name) is a \(attributes.type) map, not a per-CPU map; use \"value\""
                        )
                    }
                    failure = map.update(key: entry.key, value: entry.values[0], flags: .any, cpu: 0)
                }
                if let failure {
                    // Maps indexed by a number below max_entries: a key past the end is E2BIG, not a full map.
                    let isArray = [
                        MapType.array, .perCPUArray, .devMap, .cpuMap, .xskMap, .progArray, .cgroupArray,
                        .perfEventArray, .arrayOfMaps, .reuseportSockarray, .sockMap,
                    ].contains(attributes.type)
                    let reason =
                        failure != .tooBig
                        ? "\(failure)"
                        : isArray
                            ? "index outside the array (max_entries \(attributes.maxEntries))"
                            : "map full (max_entries \(attributes.maxEntries))"
                    throw RuntimeError(
                        "\(Input.displayName(path)): [\(index)]: cannot store the entry in \(name) (\(attributes.type)): \(reason)"
                    )
                }
            }
        }
    }

    /// Sets a devmap / cpumap entry that carries the object's program `programName`.
    private func setEntry(
        _ map: any BPFMap, key: [UInt8], value: [UInt8], program programName: String, file: String, index: Int
    ) throws(RuntimeError) -> Errno? {
        let place = "\(Input.displayName(file)): [\(index)].value.program"
        guard let redirectMap = map as? RedirectMap, redirectMap.hasProgramWord else {
            throw RuntimeError(
                "\(place): \(map.name) is a \(map.attributes.type) map with \(map.attributes.valueSize)-byte values; only devmap, devmap_hash and cpumap entries of 8-byte values carry a program"
            )
        }
        guard let spec = object.program(named: programName) else {
            throw RuntimeError(
                "\(place): \(objectName) has no program named '\(programName)'; programs: \(ObjectInput.names(object))")
        }
        let program: Program
        do {
            program = try loaded.program(named: programName)
        } catch {
            throw RuntimeError("\(place): cannot load program \(programName): \(error)")
        }
        let wanted = map.attributes.type == .cpuMap ? "xdp/cpumap" : "xdp/devmap"
        if spec.type != .xdp || spec.attachType != (map.attributes.type == .cpuMap ? .xdpCpumap : .xdpDevmap) {
            throw RuntimeError(
                "\(place): program \(programName) is not an \(wanted) program (its section is \(spec.sectionName)); the kernel refuses it (EINVAL)"
            )
        }
        return redirectMap.setEntry(
            key: key.reversed().reduce(0) { $0 << 8 | UInt32($1) }, value: value, program: program,
            attachType: spec.attachType)
    }

    /// The contents of every map that holds keys and values, for diffs.
    func snapshot() -> MapSnapshot { MapSnapshot(maps: maps, cpus: cpus) }

    // MARK: Contexts

    /// The context of a context file.
    func context(file path: String) throws(RuntimeError) -> any Context {
        let all = try contexts(file: path)
        guard all.count == 1, let only = all.first else {
            throw RuntimeError(
                "\(Input.displayName(path)) holds an array of \(all.count) contexts; `mimic run` and `mimic trace` run each in turn, this command takes one"
            )
        }
        return only.context
    }

    /// The contexts of a context file: one, or each of an array of contexts (edb's files), with
    /// a name for each (`context 2 (NAME)`).
    func contexts(file path: String) throws(RuntimeError) -> [(context: any Context, name: String)] {
        let bytes = try Input.read(path)
        let loaded: [ContextFile.Loaded]
        do {
            loaded = try ContextFile.loadAll(data: bytes)
        } catch {
            throw RuntimeError("\(Input.displayName(path)): \(error)")
        }
        var result: [(context: any Context, name: String)] = []
        for (index, entry) in loaded.enumerated() {
            var context = entry.context
            if let dataStart, var skb = context as? SKBContext, skb.dataStart == nil {
                skb.dataStart = dataStart
                context = skb
            }
            let name =
                loaded.count == 1
                ? Input.displayName(path)
                : "context \(index + 1)" + (entry.name.isEmpty ? "" : " (\(entry.name))")
            do {
                result.append((try withFields(try ContextFit.fit(context, to: source)), name))
            } catch let error as RuntimeError {
                throw error
            } catch {
                throw RuntimeError("\(Input.displayName(path))\(loaded.count == 1 ? "" : " [\(index)]"): \(error)")
            }
        }
        return result
    }

    /// The context a packet of a capture runs in, by program type (named as the kernel's
    /// structure, so its memory shows as `xdp_md packet` / `sk_buff packet`).
    func context(packet: [UInt8]) throws(RuntimeError) -> any Context {
        if type == .skLookup {
            let ingressIfindex = try lookupIngressIfindex()
            switch packet.withUnsafeBytes({ SKLookupContext.lookup(frame: $0, ingressIfindex: ingressIfindex) }) {
            case .lookup(let context): return context
            case .notLookedUp(let reason):
                throw RuntimeError(
                    "program \(source.name) (sk_lookup) does not run for this packet: \(reason); the kernel runs sk_lookup for TCP connection requests (SYN without ACK) and UDP datagrams"
                )
            }
        }
        if type == .netfilter {
            if !contextFields.isEmpty {
                throw RuntimeError(
                    "--ctx sets fields of xdp_md and sk_buff contexts; program \(source.name) (netfilter) takes a bpf_nf_ctx: give its hook, family and device in a context file (--context)"
                )
            }
            // A captured frame meets netfilter at NF_INET_PRE_ROUTING, in its EtherType's family.
            let pf =
                packet.count >= 14 && packet[12] == 0x86 && packet[13] == 0xDD
                ? NetfilterContext.ipv6 : NetfilterContext.ipv4
            return NetfilterContext(packet: packet, hook: .preRouting, pf: pf)
        }
        switch packetKind {
        case .xdp: return try withFields(XDPContext(packet: packet))
        case .skb:
            var skb = SKBContext(packet: packet)
            skb.dataStart = dataStart ?? ContextFit.dataStart(of: type)
            skb.programType = type
            return try withFields(skb)
        case .none:
            if type == .unspec {
                throw RuntimeError(
                    "program \(source.name) has no program type: its section \(source.sectionName) is not one libbpf knows; give one with --type (xdp, tc, socket_filter, ...)"
                )
            }
            throw RuntimeError(
                "program \(source.name) (type \(type)) does not take packets; give a context with --context instead of --pcap"
            )
        }
    }

    /// The interface the packets of an sk_lookup run arrive on (`bpf_sk_lookup.ingress_ifindex`,
    /// `SKLookupContext.lookup(frame:ingressIfindex:)`): `--ctx ingress_ifindex=N`, default 1
    /// as for `xdp_md`; no other `--ctx` field applies.
    func lookupIngressIfindex() throws(RuntimeError) -> UInt32 {
        var ingressIfindex: UInt32 = 1
        for field in contextFields {
            guard field.name == "ingress_ifindex" else {
                throw RuntimeError(
                    "--ctx \(field.name): program \(source.name) (sk_lookup) takes only ingress_ifindex from --ctx (the other bpf_sk_lookup fields come from each packet)"
                )
            }
            guard let value = UInt32(exactly: field.value) else {
                throw RuntimeError("--ctx ingress_ifindex: \(field.value) does not fit in 32 bits")
            }
            ingressIfindex = value
        }
        return ingressIfindex
    }

    /// The context of a run without --context or --pcap: none for tracing programs.
    func defaultContext() throws(RuntimeError) -> (any Context)? {
        if packetKind != .none {
            throw RuntimeError(
                "program \(source.name) (type \(type)) needs a packet: give --pcap FILE or --context FILE.json"
                    + (type == .unspec
                        ? "; its section \(source.sectionName) gives no program type: give one with --type (xdp, tc, ...)"
                        : ""))
        }
        if !contextFields.isEmpty {
            throw RuntimeError(
                "--ctx sets fields of xdp_md and sk_buff contexts; program \(source.name) (type \(type)) takes neither")
        }
        return GenericContext(name: "empty")
    }

    /// A process running the program with `context`.
    func makeProcess(context: (any Context)?, vCPU: Int = 0) throws(RuntimeError) -> Process {
        do {
            return try vm.makeProcess(for: program, context: context, vCPU: vCPU)
        } catch {
            throw RuntimeError("cannot set up the context: \(error)")
        }
    }

    // MARK: Results

    /// The verdict name R0 stands for in this program type (`XDP_PASS`, `TC_ACT_OK`), if any.
    func verdict(_ r0: UInt64) -> String? { Session.verdict(r0, type: type) }

    /// The verdict name R0 stands for in programs of `type`, if any (`run`, `trace`, `debug`
    /// and `compare` all name verdicts this way).
    static func verdict(_ r0: UInt64, type: ProgramType) -> String? {
        switch type {
        case .xdp: return XDPAction(returnValue: r0)?.name ?? "unknown XDP action \(r0)"
        case .schedCls, .schedAct:
            return TCAction(returnValue: r0)?.name ?? "unknown tc action \(Int32(truncatingIfNeeded: r0))"
        case .socketFilter:
            return r0 == 0 ? "drop" : "keep \(r0 == UInt64(UInt32.max) ? "whole packet" : "\(r0) bytes")"
        case .cgroupSkb: return r0 & 1 == 1 ? "allow" : "deny"
        case .cgroupSockAddr, .cgroupSock, .sockOps: return r0 == 1 ? "allow" : (r0 == 0 ? "deny" : "invalid (\(r0))")
        case .skLookup, .skMsg, .skReuseport:
            return r0 == 1 ? "SK_PASS" : (r0 == 0 ? "SK_DROP" : "unknown verdict \(r0)")
        case .netfilter: return NetfilterContext.Result.verdictName(r0)
        case .flowDissector, .lwtIn, .lwtOut, .lwtXmit, .lwtSeg6Local:
            let names: [UInt64: String] = [
                0: "BPF_OK", 2: "BPF_DROP", 7: "BPF_REDIRECT", 0x80: "BPF_LWT_REROUTE",
                0x81: "BPF_FLOW_DISSECTOR_CONTINUE",
            ]
            return names[r0] ?? "unknown verdict \(Int64(bitPattern: r0))"
        default: return nil
        }
    }

    /// The packet as the program left it (xdp and skb contexts), or nil.
    func packet(after process: Process) -> [UInt8]? {
        LinuxProcessState.of(process)?.packet?.data
    }

    /// Where the program redirected the packet, if it did.
    func redirect(after process: Process) -> Redirect? {
        LinuxProcessState.of(process)?.redirect
    }

    /// Ring buffer records and perf events emitted so far (drained: each is reported once).
    func drainEvents() -> [Event] {
        var events: [Event] = []
        for map in maps {
            if let ring = map as? RingBufferMap {
                events += ring.drainRecords().map { Event(map: map.name, cpu: nil, data: $0) }
            } else if let perf = map as? PerfEventArrayMap {
                events += perf.drainRecords().map { Event(map: map.name, cpu: $0.cpu, data: $0.data) }
            }
        }
        return events
    }

    /// A ring buffer record or perf event.
    struct Event {
        var map: String
        /// The CPU of a perf event; nil for ring buffer records.
        var cpu: Int?
        var data: [UInt8]
    }

    /// The message for an execution error.
    func message(for error: ExecutionError) -> String {
        var text = "execution failed: \(error)"
        if error.code == .budgetExhausted {
            text += "; raise the budget with --limit N (0 = no limit)"
        } else if error.code == .deadlineExceeded {
            text += " (the --timeout)"
        } else if error.code == .unknownHelper {
            text +=
                "\n  the Linux emulator does not implement \(error.kind.helperName ?? "this helper"); a captured context (--context with type \"captured\") can replay its recorded results"
        }
        return text
    }

    // MARK: Source

    /// The function containing instruction `pc`.
    func function(at pc: Int) -> ObjectFunction? {
        source.functions.last { $0.instructionIndex <= pc && pc < $0.instructionIndex + max(1, $0.instructionCount) }
            ?? source.functions.last { $0.instructionIndex <= pc }
    }

    /// `file:line` of instruction `pc`, if known.
    func location(at pc: Int) -> String? {
        guard let line = program.sourceLine(at: pc) else { return nil }
        return "\(Session.baseName(line.file)):\(line.line)"
    }

    /// How listings name this session's helpers and maps.
    var names: Assembly.Names {
        Assembly.Names(
            helper: { [vm] id in Assembly.helperName(id, emulator: vm.emulator) },
            map: { [emulator] handle in emulator.map(handle: handle)?.name },
            custom: { [vm] opcode in vm.emulator?.customInstruction(opcode: opcode)?.name })
    }

    static func baseName(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }
}
