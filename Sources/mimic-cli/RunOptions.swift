import MimicCore
import MimicLinux
import MimicPcap
import MimicMemory

/// The inputs `run`, `trace` and `debug` share: the object, the program, its context or
/// capture, map contents and limits.
struct RunOptions {
    var objectPath: String
    var programName: String?
    var contextPath: String?
    var pcapPath: String?
    var outPath: String?
    /// `--out-dir DIR` with `--pcap`: one capture per destination (`PacketDestination`).
    var outDirectory: String?
    /// `--packet N` with `--pcap`: only packet N (from 1) of the capture.
    var packetNumber: Int?
    /// `--packet HEX` without `--pcap`: run on this one packet.
    var packetBytes: [UInt8]?
    var maps: [String]
    var cpus: Int
    /// `--workers N` with `--pcap` (`run` only): packets spread over N threads by flow (1: none).
    var workers = 1
    var limit: UInt64
    /// `--timeout DURATION`: the wall-clock deadline of each run (nil: none).
    var timeout: Duration?
    /// `--compat go-mimic`: load map definitions the kernel refuses, with warnings.
    var compatibility: LinuxCompatibility = .kernel
    /// `--seed N`: the `bpf_get_prandom_u32` seed (nil: the clock).
    var seed: UInt64?
    /// `--data-start mac|network`: where an sk_buff's data starts (nil: the program type's).
    var dataStart: SKBContext.DataStart?
    /// `--memory-limit`: the VM's memory budget in bytes.
    var memoryLimit = MemoryBudget.defaultLimit
    /// `--engine`: what runs the program (`run` only; trace and debug step the interpreter).
    var engine: ExecutionEngine = .automatic
    var json: Bool
    /// `--set`, `--map-size`, `--type`, `--prog-array`, `--map-of-maps`, `--ctx`.
    var configuration: ConfigurationOptions
    /// `--ctx FIELD=VALUE,...`: context fields as `BPF_PROG_TEST_RUN`'s `ctx_in` takes them.
    var contextFields: [TestRunContext.Field] = []

    /// The options every one of these commands accepts.
    static func specs(out: Bool, json: Bool, timeout: Bool = true, engine: Bool = false) -> [OptionSpec] {
        var specs: [OptionSpec] = [
            .value("program", short: "p", "NAME", "The program to run (required when the object has several)."),
            .value(
                "context", short: "c", "CTX.json", "Run with this context file (xdp_md, sk_buff, generic, captured)."),
            .value("pcap", "IN.pcap", "Run over the packets of a capture (pcap or pcapng, Ethernet)."),
            .value(
                "packet", "N|HEX",
                "With --pcap: only packet N (counted from 1). Without: run on this packet, given as hex bytes."),
        ]
        if out {
            specs.append(
                .value(
                    "events", "FILE.jsonl",
                    "Run the object's tracing programs over the events of FILE (one JSON object a line: program or attach, cpu, time_ns, pid, regs, args, fields, ...), in order, maps persisting; ring buffer records decoded by BTF."
                ))
            specs.append(
                .value("out", short: "o", "OUT.pcap", "With --pcap: write the packets the program passes or transmits.")
            )
            specs.append(
                .value(
                    "out-dir", "DIR",
                    "With --pcap: write one capture per destination into DIR (pass.pcap, tx.pcap, if3.pcap, cpu1.pcap, drop.pcap, ...), created if missing."
                ))
        }
        specs +=
            [
                .value("map", "NAME=FILE.json", "Preload map NAME with the entries of FILE.json (repeatable)."),
                .value("cpus", "N", "Possible CPUs: values per per-CPU map entry (default 1)."),
                .value(
                    "limit", "N",
                    "Stop a run after N instructions (default \(RunRawCommand.defaultLimit); 0 = no limit)."),
                .value(
                    "data-start", "mac|network",
                    "Where an sk_buff's data starts: the Ethernet or the network header (default: as the kernel's test run, network for socket filters, mac for tc)."
                ),
                .value(
                    "seed", "N",
                    "Seed bpf_get_prandom_u32 with N: the same seed gives the same values (default: the clock)."),
                .value(
                    "memory-limit", "BYTES",
                    "The VM's memory budget for maps, global data, contexts and packets (default 1G; suffixes K, M, G)."
                ),
                .value(
                    "plugin", "LIB", "Add the helpers of the emulator plugin LIB (repeatable; see `mimic plugins`)."),
                TestRunContext.optionSpec,
                .value(
                    "kconfig", "FILE",
                    "The emulated kernel's configuration for __kconfig externs, as /proc/config writes it (CONFIG_X=y lines; uncompressed: zcat /proc/config.gz > FILE). Default: none, so weak CONFIG_ externs read 0."
                ),
                .value(
                    "net", "FILE.json",
                    "The network the networking helpers see (interfaces, routes, neighbours, sockets; Docs/Network.md). Default: lo and eth0 (10.0.0.1/24)."
                ),
                .value(
                    "system", "FILE",
                    "The emulated system tracing helpers read: tasks, cgroups, kernel symbols and version, CONFIG_ values, user memory (JSON; Docs/Tracing.md)."
                ),
                .value(
                    "btf", "FILE",
                    "The target kernel's BTF (raw, as /sys/kernel/btf/vmlinux, or an ELF object's .BTF): CO-RE relocations and kernel objects follow it. Default with --system or --events: /sys/kernel/btf/vmlinux when readable, else the object's own BTF."
                ),
                .value(
                    "compat", "go-mimic",
                    "Also load map definitions the Go mimic accepts and the kernel refuses (a warning names the kernel rule each breaks)."
                ),
            ] + ConfigurationOptions.specs
        if timeout { specs.append(Timeout.spec) }
        if engine { specs.append(EngineOption.spec) }
        if json { specs.append(.flag("json", "Print the results as JSON.")) }
        return specs
    }

    /// Reads and checks the shared options: mistakes are usage errors (exit 2).
    init(_ arguments: ParsedArguments, command: String) throws(UsageError) {
        try arguments.requirePositionals(["OBJ.o"], command: command)
        objectPath = arguments.positionals[0]
        programName = arguments.value("program")
        contextPath = arguments.value("context")
        pcapPath = arguments.value("pcap")
        outPath = arguments.value("out")
        outDirectory = arguments.value("out-dir")
        maps = arguments.values("map")
        json = arguments.has("json")
        if contextPath != nil, pcapPath != nil {
            throw UsageError(message: "give either --context or --pcap, not both", command: command)
        }
        if outPath != nil, pcapPath == nil {
            throw UsageError(message: "--out writes the packets of a --pcap run; give --pcap too", command: command)
        }
        if outDirectory != nil, pcapPath == nil {
            throw UsageError(message: "--out-dir writes the packets of a --pcap run; give --pcap too", command: command)
        }
        if outDirectory == "-" || outDirectory == "" {
            throw UsageError(
                message: "--out-dir expects a directory (for one capture on standard output, use --out -)",
                command: command)
        }
        if let outPath, let pcapPath, Input.sameFile(outPath, pcapPath) {
            throw UsageError(
                message:
                    "--out \(outPath) is the input capture; writing it would overwrite the capture: choose another file",
                command: command)
        }
        if let text = arguments.value("packet"), pcapPath == nil {
            guard contextPath == nil else {
                throw UsageError(message: "give either --context or --packet HEX, not both", command: command)
            }
            do {
                packetBytes = try Hex.parse(text, what: "--packet")
            } catch {
                throw UsageError(
                    message: error.message + " (--packet without --pcap is a packet in hex)", command: command)
            }
        } else if let text = arguments.value("packet") {
            guard let number = Int(text), number >= 1 else {
                throw UsageError(message: "--packet expects a packet number from 1, got '\(text)'", command: command)
            }
            packetNumber = number
        }
        cpus = 1
        if let text = arguments.value("cpus") {
            guard let value = Int(text), value >= 1, value <= 512 else {
                throw UsageError(
                    message: "--cpus expects a number of CPUs from 1 to 512, got '\(text)'", command: command)
            }
            cpus = value
        }
        if let text = arguments.value("workers") {
            guard let value = Int(text), value >= 1, value <= 512 else {
                throw UsageError(
                    message: "--workers expects a number of worker threads from 1 to 512, got '\(text)'",
                    command: command)
            }
            guard pcapPath != nil, packetNumber == nil else {
                throw UsageError(
                    message:
                        "--workers spreads the packets of a --pcap capture over threads; give --pcap (without --packet)",
                    command: command)
            }
            if arguments.value("cpus") == nil {
                cpus = value
            } else if cpus < value {
                throw UsageError(
                    message:
                        "--workers \(value) runs worker i as CPU i: give --cpus \(value) or more (or leave --cpus out)",
                    command: command)
            }
            workers = value
        }
        limit = RunRawCommand.defaultLimit
        if let text = arguments.value("limit") {
            guard let value = UInt64(text) else {
                throw UsageError(
                    message: "--limit expects a whole number of instructions, got '\(text)'", command: command)
            }
            limit = value == 0 ? .max : value
        }
        timeout = try Timeout.value(of: arguments, command: command)
        if let text = arguments.value("compat") {
            guard let value = LinuxCompatibility(rawValue: text) else {
                throw UsageError(message: "--compat expects go-mimic or kernel, got '\(text)'", command: command)
            }
            compatibility = value
        }
        if let text = arguments.value("data-start") {
            guard let value = SKBContext.DataStart(rawValue: text) else {
                throw UsageError(message: "--data-start expects mac or network, got '\(text)'", command: command)
            }
            dataStart = value
        }
        if let text = arguments.value("seed") {
            guard let value = UInt64(text) else {
                throw UsageError(
                    message: "--seed expects a whole number from 0 to \(UInt64.max), got '\(text)'", command: command)
            }
            seed = value
        }
        if let text = arguments.value("memory-limit") {
            guard let value = Self.byteCount(text) else {
                throw UsageError(
                    message: "--memory-limit expects a number of bytes, optionally with K, M or G, got '\(text)'",
                    command: command)
            }
            memoryLimit = value
        }
        for map in maps {
            do {
                _ = try MapFile.split(map)
            } catch {
                throw UsageError(message: error.message, command: command)
            }
        }
        pluginPaths = arguments.values("plugin")
        configuration = try ConfigurationOptions(arguments, command: command)
        contextFields = try TestRunContext.parseOption(arguments, command: command)
        kconfigPath = arguments.value("kconfig")
        networkPath = arguments.value("net")
        systemPath = arguments.value("system")
        btfPath = arguments.value("btf")
        eventsPath = arguments.value("events")
        if eventsPath != nil, contextPath != nil || pcapPath != nil || packetBytes != nil {
            throw UsageError(
                message: "--events runs its own contexts: give no --context, --pcap or --packet", command: command)
        }
    }

    /// `--net FILE`.
    var networkPath: String?

    /// The network `--net` describes, or `Network.standard`.
    func network() throws(RuntimeError) -> Network {
        guard let networkPath else { return .standard }
        let name = Input.displayName(networkPath)
        let bytes = try Input.read(networkPath, what: "network descriptions")
        do {
            return try Network(jsonData: bytes)
        } catch {
            throw RuntimeError("\(name): \(error)")
        }
    }

    /// `--system FILE`, `--btf FILE`, `--events FILE.jsonl`.
    var systemPath: String?
    var btfPath: String?
    var eventsPath: String?

    /// The tracing settings of the session, when --system, --btf or --events asks for them.
    func tracing() throws(RuntimeError) -> Session.Tracing? {
        guard systemPath != nil || btfPath != nil || eventsPath != nil else { return nil }
        var tracing = Session.Tracing(eventsChoosePrograms: eventsPath != nil && programName == nil)
        if let systemPath {
            let bytes = try Input.read(systemPath, what: "system descriptions")
            do {
                tracing.system = try EmulatedSystem(bytes: bytes)
            } catch {
                throw RuntimeError("\(Input.displayName(systemPath)): \(error)")
            }
        }
        tracing.kernelBTF = try Self.kernelBTF(path: btfPath)
        return tracing
    }

    /// The running kernel's BTF.
    static let runningKernelBTF = "/sys/kernel/btf/vmlinux"

    /// The BTF at `path` (`--btf`), else the running kernel's when it is readable, else nil.
    static func kernelBTF(path: String?) throws(RuntimeError) -> BTF? {
        if let path { return try btf(path) }
        guard Input.isReadable(runningKernelBTF) else { return nil }
        return try btf(runningKernelBTF)
    }

    /// A BTF file: raw BTF (magic 0xEB9F) or an ELF object with a .BTF section.
    static func btf(_ path: String) throws(RuntimeError) -> BTF {
        let name = Input.displayName(path)
        let bytes = try Input.read(path, what: "BTF files")
        do {
            if bytes.starts(with: [0x9F, 0xEB]) || bytes.starts(with: [0xEB, 0x9F]) { return try BTF(bytes: bytes) }
            guard let btf = try ObjectFile(bytes: bytes).btf else {
                throw RuntimeError("\(name) has no .BTF section")
            }
            return btf
        } catch let error as RuntimeError {
            throw error
        } catch {
            throw RuntimeError("\(name): not a BTF file or an object with BTF: \(error)")
        }
    }

    /// `--kconfig FILE`.
    var kconfigPath: String?

    /// The kernel configuration `--kconfig` names, or the default one.
    func kernelConfig() throws(RuntimeError) -> KernelConfig {
        guard let kconfigPath else { return KernelConfig() }
        let name = Input.displayName(kconfigPath)
        let bytes = try Input.read(kconfigPath, what: "kernel configurations")
        if bytes.starts(with: [0x1F, 0x8B]) {
            throw RuntimeError(
                "\(name) is gzip-compressed; give the uncompressed configuration (zcat \(name) > config)")
        }
        do {
            return try KernelConfig(parsing: String(decoding: bytes, as: UTF8.self))
        } catch {
            throw RuntimeError("\(name): \(error)")
        }
    }

    /// `1048576`, `512K`, `64M`, `2G` as bytes; nil for anything else or an overflow.
    static func byteCount(_ text: String) -> Int? {
        let shifts: [Character: Int] = ["K": 10, "M": 20, "G": 30]
        var digits = Substring(text)
        var shift = 0
        if let last = text.last?.uppercased().first, let found = shifts[last] {
            shift = found
            digits = digits.dropLast()
        }
        guard let value = Int(digits), value >= 0, value <= Int.max >> shift else { return nil }
        return value << shift
    }

    /// `--plugin LIB`, in order.
    var pluginPaths: [String] = []

    /// Loads the plugins, the object and the program, and preloads the maps.
    func session() throws -> Session {
        var plugins: [PluginLibrary] = []
        for path in pluginPaths {
            do {
                plugins.append(try PluginLibrary.load(path: path))
            } catch {
                throw RuntimeError(error.description)
            }
        }
        let tracing = try tracing()
        var kernel = try kernelConfig()
        if let system = tracing?.system {
            // The system file's kernel build, under what --kconfig says.
            kernel.values = system.kernel.values.merging(kernel.values) { $1 }
            kernel.kernelVersion = system.kernel.kernelVersion
            kernel.hasSyscallWrapper = system.kernel.hasSyscallWrapper
            kernel.hasBPFCookie = system.kernel.hasBPFCookie
        }
        let session = try Session(
            path: objectPath, programName: programName, cpus: cpus, limit: limit, seed: seed,
            memoryLimit: memoryLimit, plugins: plugins, configuration: configuration,
            kernel: kernel, compatibility: compatibility, network: try network(), tracing: tracing, engine: engine)
        session.contextFields = contextFields
        if dataStart != nil, session.packetKind != .skb {
            throw RuntimeError(
                "--data-start applies to programs that take an sk_buff; program \(session.source.name) is a \(session.type) program"
            )
        }
        session.dataStart = dataStart
        session.timeout = timeout
        try session.preload(maps)
        return session
    }

    /// The capture's packets (all, or the one `--packet` selects).
    func packets() throws(RuntimeError) -> [(number: Int, packet: PcapPacket)] {
        try capture().packets
    }

    /// The capture's packets (all, or the one `--packet` selects) and its link type.
    func capture() throws(RuntimeError) -> (packets: [(number: Int, packet: PcapPacket)], linkType: PcapLinkType) {
        guard pcapPath != nil else { return ([], .ethernet) }
        let index = try captureIndex()
        return (
            index.records.enumerated().map { position, record in
                (
                    index.firstNumber + position,
                    PcapPacket(
                        data: Array(index.reader.data(of: record)), timestamp: record.timestamp,
                        originalLength: record.originalLength)
                )
            }, index.linkType
        )
    }

    /// The capture as `mimic run --pcap` reads it: the file memory-mapped (`Input.mapped`) and
    /// indexed in one pass that checks every record (all packets, or the one `--packet` selects);
    /// no packet's bytes are copied.
    func captureIndex() throws(RuntimeError) -> CaptureIndex {
        let path = pcapPath ?? "-"
        let name = Input.displayName(path)
        let bytes = try Input.mapped(path)
        let records: [PcapRecord]
        var reader: PcapReader
        do {
            reader = try PcapReader(bytes)
            records = try reader.remainingRecords()
        } catch {
            throw RuntimeError("\(name): \(error)")
        }
        if let packetNumber {
            guard packetNumber <= records.count else {
                throw RuntimeError(
                    "--packet \(packetNumber): \(name) has \(records.count) packet\(records.count == 1 ? "" : "s")")
            }
            return CaptureIndex(
                reader: reader, records: [records[packetNumber - 1]], firstNumber: packetNumber,
                linkType: reader.linkType)
        }
        return CaptureIndex(reader: reader, records: records, firstNumber: 1, linkType: reader.linkType)
    }

    /// The context of a single run: the context file, one packet of the capture, or the
    /// program type's default. `name` describes the input for output headers.
    func singleContext(_ session: Session) throws(RuntimeError) -> (context: (any Context)?, name: String) {
        if let contextPath {
            return (try session.context(file: contextPath), Input.displayName(contextPath))
        }
        if let packetBytes {
            return (try session.context(packet: packetBytes), "the --packet bytes")
        }
        if pcapPath != nil {
            let selected = try packets()
            guard let first = selected.first else {
                throw RuntimeError("\(Input.displayName(pcapPath ?? "")) has no packets")
            }
            return (try session.context(packet: first.packet.data), "packet \(first.number)")
        }
        return (try session.defaultContext(), "no context")
    }
}

/// A capture's packets as records into its bytes (`RunOptions.captureIndex()`).
struct CaptureIndex {
    /// The reader that indexed the file; it holds the bytes (`reader.data(of:)`).
    let reader: PcapReader
    let records: [PcapRecord]
    /// The number (from 1) of `records[0]` in the capture; the others follow on.
    let firstNumber: Int
    let linkType: PcapLinkType

    /// The captured bytes of `records[index]`, in place.
    func bytes(_ index: Int) -> UnsafeRawBufferPointer { reader.data(of: records[index]) }

    /// `records[index]` as a packet (its bytes copied).
    func packet(_ index: Int) -> PcapPacket {
        let record = records[index]
        return PcapPacket(data: Array(bytes(index)), timestamp: record.timestamp, originalLength: record.originalLength)
    }
}
