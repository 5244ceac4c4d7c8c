import MimicCore
import MimicMemory
import Synchronization

/// Settings of the emulated kernel.
public struct LinuxConfiguration: Sendable {
    /// Possible CPUs: the number of values in per-CPU maps, and the vCPU ids processes may have.
    /// The default is the host's CPUs (`HostCPUs.count`), as the kernel's possible CPUs and as a
    /// `ProcessPool`'s default workers, so a pool of default size fits a default emulator.
    public var cpuCount: Int
    /// Seed of the emulator's `bpf_get_prandom_u32` streams (one per vCPU, continuing across
    /// processes): the same seed gives the same values for the same calls on each vCPU. Nil seeds
    /// from the clock (`LinuxEmulator.randomSeed` tells the seed used).
    public var randomSeed: UInt64?
    /// The emulated kernel's build: `__kconfig` values and `__ksym` symbols (`KernelConfig`).
    public var kernel: KernelConfig
    /// Which rules map definitions must follow: the kernel's (default), or also what the Go mimic
    /// accepts (`LinuxCompatibility.goMimic`, with warnings).
    public var compatibility: LinuxCompatibility
    /// The network the networking helpers see: interfaces, routes, neighbours, sockets
    /// (`Network`, Docs/Network.md). `Network.standard` (loopback and one interface) by default.
    public var network: Network
    /// The machine tracing helpers observe: tasks, cgroups, symbols, user memory
    /// (`EmulatedSystem`; nil: one default task). Its `kernel` is not read: set `kernel` too.
    public var system: EmulatedSystem?
    /// The BTF kernel objects (`task_struct`, ...) are laid out from: the target kernel's
    /// (`/sys/kernel/btf/vmlinux`), or the one CO-RE relocations were applied against. Nil: none
    /// are laid out and `bpf_get_current_task` returns 0.
    public var kernelBTF: BTF?

    public init(
        cpuCount: Int = HostCPUs.count, randomSeed: UInt64? = nil, kernel: KernelConfig = KernelConfig(),
        compatibility: LinuxCompatibility = .kernel, network: Network = .standard, system: EmulatedSystem? = nil,
        kernelBTF: BTF? = nil
    ) {
        self.cpuCount = max(1, cpuCount)
        self.randomSeed = randomSeed
        self.kernel = kernel
        self.compatibility = compatibility
        self.network = network
        self.system = system
        self.kernelBTF = kernelBTF
    }
}

/// The Linux kernel's environment for eBPF programs: helper functions with the kernel's
/// semantics and error codes, maps, and per-process state (trace output, redirects, captured
/// helper results).
///
/// One emulator serves one `VM` (maps are created in the VM's shared memory); its maps and helper
/// table are safe to use from several processes at once.
public final class LinuxEmulator: MapProvider, VirtualCPUs, @unchecked Sendable {
    public let name = "linux"
    public let configuration: LinuxConfiguration
    /// The `bpf_get_prandom_u32` streams, one per vCPU.
    let randomStreams: RandomStreams

    /// Possible CPUs (`configuration.cpuCount`): processes run as vCPU `0..<cpuCount`.
    public var cpuCount: Int { configuration.cpuCount }

    /// The seed of the `bpf_get_prandom_u32` streams: `configuration.randomSeed`, or the clock's
    /// reading when that is nil (give it back as `randomSeed` to replay a run's random values).
    public var randomSeed: UInt64 { randomStreams.seed }

    /// Guards `helpers`, `maps` and `nextMapID`.
    private let lock = Mutex(())
    // These are only touched under `lock` (hence `@unchecked Sendable`).
    private var helpers: [Int32: Helper] = [:]
    /// Ids with a real emulation (not only the replay stand-in).
    private var emulated: Set<Int32> = []
    private var kfuncs: [String: Helper] = [:]
    private var maps: [Int: any BPFMap] = [:]
    private var mapsByName: [String: any BPFMap] = [:]
    private var nextMapID = 1
    private var warnings: [String] = []
    /// The maps by id for the map helpers, read without `lock` (see `MapTable`).
    let mapTable = MapTable()
    /// The kernel objects `__ksym` variables resolved to.
    let kernelObjects = KernelObjects()
    /// `configuration.network`, prepared for the helpers' lookups.
    let networkState: NetworkState
    /// The virtual clock the host advances (`advanceClock(to:)`): what processes whose
    /// `TaskEnvironment.clock` is `.virtual` read, and what `bpf_timer`s run on.
    public let clock = VirtualClock()
    /// `LinuxProcessState.key`, read per reset (`prepare`) from here: a global's lazy
    /// initialisation is checked (`swift_once`) on every read of the static.
    let stateKey = LinuxProcessState.key
    /// The `bpf_timer`s programs initialised.
    let timers = TimerTable()
    /// Objects, lists, trees, tasks and cgroups of the object kfuncs (`ObjectKfuncs`).
    let kfuncState = KfuncState()
    /// The emulated system's state in the VM (`systemState(in:)`), made on first use.
    let systemStateCache = Mutex<SystemState?>(nil)
    /// Which sockets the socket maps and reuseport arrays hold (`SocketMaps.swift`).
    let socketMapMembership = SocketMapMembership()

    /// Whether `prepare` maps the emulated system's objects (`mapSystem(into:)`): a stored flag,
    /// read per reset without copying the configuration's optionals.
    private let mapsSystem: Bool

    public init(configuration: LinuxConfiguration = LinuxConfiguration()) {
        self.configuration = configuration
        mapsSystem = configuration.system != nil || configuration.kernelBTF != nil
        randomStreams = RandomStreams(cpuCount: configuration.cpuCount, seed: configuration.randomSeed)
        networkState = NetworkState(configuration.network)
        for helper in ReplayHelpers.fallbacks() { helpers[helper.id] = helper }
        for helper in LinuxHelperSet.standard(for: self) {
            helpers[helper.id] = helper
            emulated.insert(helper.id)
        }
        for kfunc in LinuxKfuncs.all(for: self) { kfuncs[kfunc.name] = kfunc }
    }

    /// What `LinuxCompatibility.goMimic` let load that the kernel refuses, one line per map.
    public var compatibilityWarnings: [String] { lock.withLock { _ in warnings } }

    func addCompatibilityWarnings(_ lines: [String]) {
        guard !lines.isEmpty else { return }
        lock.withLock { _ in warnings += lines }
    }

    // MARK: Emulator

    /// The kfunc named `name` (`LinuxKfuncs`, or one added with `register(kfunc:)`). A name with
    /// a `___flavor` suffix (`bpf_iter_num_new___v2`) falls back to its essential name, as
    /// libbpf looks kfuncs up.
    public func kfunc(named name: String) -> Helper? {
        lock.withLock { _ in
            if let kfunc = kfuncs[name] { return kfunc }
            // libbpf's bpf_core_essential_name_len: up to the last "x___y" separator.
            let bytes = Array(name.utf8)
            let underscore = UInt8(ascii: "_")
            guard bytes.count >= 5 else { return nil }
            for i in stride(from: bytes.count - 5, through: 0, by: -1)
            where bytes[i] != underscore && bytes[i + 1...i + 3].allSatisfy({ $0 == underscore })
                && bytes[i + 4] != underscore
            {
                return kfuncs[String(decoding: bytes[...i], as: UTF8.self)]
            }
            return nil
        }
    }

    /// Adds or replaces a kfunc, under its `name` (programs loaded afterwards can call it).
    public func register(kfunc: Helper) {
        lock.withLock { _ in kfuncs[kfunc.name] = kfunc }
    }

    /// The names of every kfunc the emulator provides, sorted.
    public var kfuncNames: [String] { lock.withLock { _ in kfuncs.keys.sorted() } }

    public func helper(id: Int32) -> Helper? { lock.withLock { _ in helpers[id] } }

    public func helperName(id: Int32) -> String? { HelperID(rawValue: id).kernelName }

    public var helperIDs: [Int32] { implementedHelperIDs }

    public func prepare(_ process: MimicCore.Process) throws(SetupError) {
        guard process.vCPU >= 0, process.vCPU < configuration.cpuCount else {
            throw .message("vCPU \(process.vCPU) is outside the emulator's \(configuration.cpuCount) CPUs")
        }
        // A process being reset hands back its previous state: cleared, it saves allocating a
        // state (and its spin-lock list) per run. Not if host code still holds it.
        if let reused = process.reuseRecycledEmulatorState(stateKey) {
            // The process holds the state for the whole reset: borrowed, no reference count.
            reused._withUnsafeGuaranteedRef { state in
                state.clearForReuse()
                // Set by the first run and never changed: the clock is shared by every process
                // (every worker's), so storing it again would write its reference count from
                // each worker's thread per packet.
                if state.virtualClock !== clock { state.virtualClock = clock }
            }
        } else {
            let state = LinuxProcessState()
            state.virtualClock = clock
            process.setEmulatorState(state, for: stateKey)
        }
        if mapsSystem { try mapSystem(into: process) }
    }

    /// `Process.reset(context:)`'s quick path: the Linux contexts that implement `rearm`
    /// (`XDPContext`) check the Linux state themselves (the process's only state, held by nothing
    /// else, left by the run with nothing `clearForReuse` would undo but plain values:
    /// `LinuxProcessState.rearmForContext`). False when the emulator maps the emulated system's
    /// objects (`prepare` maps them per run).
    public var rearmsThroughContext: Bool { !mapsSystem }

    /// Adds or replaces a helper (e.g. to emulate one the emulator lacks, or to stub one).
    public func register(_ helper: Helper) {
        lock.withLock { _ in
            helpers[helper.id] = helper
            emulated.insert(helper.id)
        }
    }

    /// The ids of every helper the emulator implements, sorted.
    /// (Ids only a captured context's recorded calls can answer are not included.)
    public var implementedHelperIDs: [Int32] { lock.withLock { _ in emulated.sorted() } }

    // MARK: Maps

    /// Registers a map created by a map type's initialiser; returns its id (used in its handle).
    func reserveMapID() -> Int {
        lock.withLock { _ in
            defer { nextMapID += 1 }
            return nextMapID
        }
    }

    /// Makes `map` findable by handle and name.
    func register(_ map: any BPFMap) {
        lock.withLock { _ in
            if let id = MapHandle.id(of: map.handle) {
                maps[id] = map
                mapTable.insert(map, id: id)
            }
            mapsByName[map.attributes.name] = map
        }
    }

    /// The map a program's register value refers to.
    public func map(handle: UInt64) -> (any BPFMap)? {
        if let entry = mapTable.entry(handle: handle) { return entry.map }
        guard let id = MapHandle.id(of: handle) else { return nil }
        return lock.withLock { _ in maps[id] }
    }

    /// The map with this name.
    public func map(named name: String) -> (any BPFMap)? { lock.withLock { _ in mapsByName[name] } }

    /// Every map, by id.
    public var allMaps: [any BPFMap] { lock.withLock { _ in maps.keys.sorted().compactMap { maps[$0] } } }
}

/// The helper functions `LinuxEmulator` emulates. Each group of helpers lives in its own file
/// and adds itself here.
enum LinuxHelperSet {
    static func standard(for emulator: LinuxEmulator) -> [Helper] {
        // Installed over `ReplayHelpers.fallbacks()`, the replay-only stand-ins for every id.
        NonMapHelpers.all(for: emulator) + MapHelpers.all(for: emulator) + TracingHelpers.all(for: emulator)
            + TimerHelpers.all(for: emulator) + Dynptrs.all(for: emulator) + KernelFeatureHelpers.all(for: emulator)
            + StackHelpers.all(for: emulator) + SysctlAndRingHelpers.all(for: emulator)
            + SystemHelpers.all(for: emulator)
            + SocketProgramHelpers.all(for: emulator)
            + SocketMapHelpers.all(for: emulator)
            + NetworkPathHelpers.all(for: emulator)
            + TCPHeaderOptionHelpers.all(for: emulator)
            + LWTHelpers.all(for: emulator)
    }
}

/// What the Linux emulator remembers about one process: output it produced and results it left.
///
/// Its stored properties are `@exclusivity(unchecked)`, as `Process`'s are: the state belongs to
/// one process, used by one thread at a time, and none is lent out `inout` across a call that
/// could reach it again (with the state recycled per packet, the dynamic checks cost more than
/// the recycling saved).
public final class LinuxProcessState {
    /// Lines written by `bpf_trace_printk` / `bpf_trace_vprintk`, as the kernel formats them.
    @exclusivity(unchecked) public internal(set) var traceOutput: [String] = [] { didSet { touched = true } }

    // MARK: Contexts and non-map helpers

    /// Full `trace_pipe` lines of `traceOutput` (task, CPU, timestamp, event name, message).
    @exclusivity(unchecked) public internal(set) var traceLines: [String] = [] { didSet { touched = true } }
    /// The packet an `xdp_md` or `__sk_buff` context attached, as helpers changed it (nil for
    /// other contexts). Packet helpers work on it; `XDPContext.result(of:)` and
    /// `SKBContext.result(of:)` read it after the run.
    @exclusivity(unchecked) public internal(set) var packet: PacketBuffer?
    /// Where the packet goes if the program returns `XDP_REDIRECT` / `TC_ACT_REDIRECT`: the
    /// target of the run's last `bpf_redirect` or `bpf_redirect_map` (nil: none, or the last
    /// `bpf_redirect_map` missed), as the kernel's `bpf_redirect_info` keeps it.
    @exclusivity(unchecked) public internal(set) var redirect: Redirect? { didSet { touched = true } }
    /// Copies of the packet `bpf_clone_redirect` sent, in call order (sent at once, whatever
    /// the verdict).
    @exclusivity(unchecked) public internal(set) var clones: [ClonedPacket] = [] { didSet { touched = true } }
    /// Recorded helper results a `CapturedContext` replays; consulted before a helper emulates.
    @exclusivity(unchecked) public internal(set) var replay: HelperReplay? { didSet { touched = true } }
    /// Things worth knowing about the run that did not stop it (e.g. a replayed call whose
    /// parameters differ from the record).
    @exclusivity(unchecked) public internal(set) var warnings: [String] = [] { didSet { touched = true } }
    /// Signals `bpf_send_signal` / `bpf_send_signal_thread` sent, in call order (the kernel
    /// delivers them when the program returns).
    @exclusivity(unchecked) public internal(set) var signals: [SentSignal] = [] { didSet { touched = true } }
    /// The return value `bpf_override_return` set for the probed function (the last call's),
    /// nil when the program did not call it.
    @exclusivity(unchecked) public internal(set) var overriddenReturn: UInt64? { didSet { plainValuesSet = true } }
    /// The task, clock and random seed helpers report (pid, comm, ktime, prandom); contexts set it.
    @exclusivity(unchecked) public var environment = TaskEnvironment() { didSet { environmentChanged = true } }
    /// Whether `environment` was set since the last `clearForReuse` (which then resets it: a
    /// `TaskEnvironment` is copied and destroyed through value witnesses, ~500 instructions).
    @exclusivity(unchecked) private var environmentChanged = false
    /// The `struct bpf_redir_neigh` (20 bytes: family, address) `bpf_redirect_neigh` was given,
    /// when `redirect` carries its next-hop flag.
    @exclusivity(unchecked) public internal(set) var redirectNexthop: [UInt8]? { didSet { touched = true } }
    /// Socket references the run's lookups took, and the socket structs it was given.
    @exclusivity(unchecked) var sockets: SocketReferences? { didSet { touched = true } }
    /// The tunnel metadata `bpf_skb_set_tunnel_key` / `_opt` attached to the packet (a
    /// transmit-mode `ip_tunnel_info`), nil until the program sets one; before that the packet
    /// carries the network's `tunnel` metadata.
    @exclusivity(unchecked) public internal(set) var transmitTunnel: Network.TunnelMetadata? {
        didSet { touched = true }
    }
    /// The emulator's virtual clock, read when `environment.clock` is `.virtual`.
    @exclusivity(unchecked) var virtualClock: VirtualClock?
    /// The `struct bpf_timer` whose callback this process runs (`bpf_timer_cancel` of it is
    /// `-EDEADLK`), nil otherwise.
    @exclusivity(unchecked) var runningTimer: UInt64? { didSet { plainValuesSet = true } }
    /// The function a tracing program is attached to (`bpf_get_func_arg` and friends); nil for
    /// other programs.
    @exclusivity(unchecked) public var tracedFunction: TracedFunction? { didSet { touched = true } }
    /// The stacks `bpf_get_stack`, `bpf_get_task_stack` and `bpf_get_stackid` report; when both
    /// are empty (the default), the current task's (`environment.kernelStack` / `userStack`).
    @exclusivity(unchecked) public var stacks = TaskStacks() { didSet { stacksChanged = true } }
    @exclusivity(unchecked) private var stacksChanged = false
    /// Whether a field `clearForReuse` resets (other than `packet`, `environment`, `stacks` and
    /// the plain numbers) was set since the last `clearForReuse`: set by their `didSet`, so a
    /// run that set none of them (a packet that only got a verdict) skips testing each one.
    @exclusivity(unchecked) private var touched = false
    /// Whether one of the plain values `clearPlainValues` resets (`overriddenReturn`,
    /// `runningTimer`, `seqFileAddress`, `clockReads`, `randomState`, `cgroupRetval`,
    /// `xdpRxMetadata`) was set since it last ran: set by their `didSet`, so a run that set none
    /// (a packet that only got a verdict) costs one test.
    @exclusivity(unchecked) private var plainValuesSet = false
    /// The sysctl a `cgroup/sysctl` program reads and may rewrite (`bpf_sysctl_*`); nil for
    /// other programs.
    @exclusivity(unchecked) public var sysctl: SysctlAccess? { didSet { touched = true } }
    /// What `bpf_seq_printf` / `bpf_seq_write` wrote in the run (an iterator program's output).
    @exclusivity(unchecked) public internal(set) var seqOutput: [UInt8] = [] { didSet { touched = true } }
    /// The address of the `seq_file` an iterator context gave the program (nil: none).
    @exclusivity(unchecked) var seqFileAddress: UInt64? { didSet { plainValuesSet = true } }
    /// `bpf_ktime_get_*` calls so far (a manual clock advances by one step per call).
    @exclusivity(unchecked) var clockReads: UInt64 = 0 { didSet { plainValuesSet = true } }
    /// The state of the process's own `bpf_get_prandom_u32` stream when its environment sets a
    /// `randomSeed` (else the emulator's per-vCPU stream is used); seeded on first use.
    @exclusivity(unchecked) var randomState: UInt64? { didSet { plainValuesSet = true } }
    /// The context struct of a socket or cgroup program (`bpf_sock_addr`, `bpf_sock_ops`,
    /// `bpf_sock`, `bpf_sk_lookup`) or a flow dissector's `bpf_flow_keys`, to report what the
    /// program changed; nil for other contexts.
    @exclusivity(unchecked) public internal(set) var contextRecord: StructContextRecord? { didSet { touched = true } }
    /// What socket helpers did outside the program (`bpf_setsockopt`, `bpf_bind`,
    /// `bpf_sock_ops_cb_flags_set`, `bpf_sk_assign`), in call order.
    @exclusivity(unchecked) public internal(set) var socketEffects: [SocketEffect] = [] { didSet { touched = true } }
    /// The socket program's context state the socket helpers use.
    @exclusivity(unchecked) var socketProgram: SocketProgramState? { didSet { touched = true } }
    /// An sk_buff's program type and `SKBContext.checkedFields` at the start of the run.
    @exclusivity(unchecked) var skbWriteCheck: (ProgramType, [TestRunContext.Field])? { didSet { touched = true } }
    /// The socket the run's last successful `bpf_sk_redirect_map` / `_hash`,
    /// `bpf_msg_redirect_map` / `_hash` or `bpf_sk_select_reuseport` picked (nil: none), which
    /// the kernel acts on when the program returns `SK_PASS`.
    @exclusivity(unchecked) public internal(set) var socketRedirect: SocketRedirect? { didSet { touched = true } }
    /// The cgroup hook's return value (`bpf_get_retval` / `bpf_set_retval`), 0 at the start.
    @exclusivity(unchecked) public internal(set) var cgroupRetval: Int32 = 0 { didSet { plainValuesSet = true } }
    /// What the XDP metadata kfuncs report for the run's packet (`XDPContext.rxMetadata`).
    @exclusivity(unchecked) var xdpRxMetadata: XDPRxMetadata? { didSet { plainValuesSet = true } }
    /// An lwt_seg6local run's SRH state and route (`LWTHelpers`), or one an SRv6 encapsulation made.
    @exclusivity(unchecked) public internal(set) var seg6: Seg6State? { didSet { touched = true } }

    public init() {}

    /// The row of the Linux state in every process's emulator state table.
    public static let key = EmulatorStateKey<LinuxProcessState>()

    /// The state of `process`, if the Linux emulator prepared it (or a Linux context attached).
    @inline(__always)
    public static func of(_ process: MimicCore.Process) -> LinuxProcessState? {
        process.emulatorState(key)
    }

    /// Where the program's callbacks run when its code lives elsewhere: set by MimicLinux as a
    /// plugin on the stand-in process it runs helpers on for a host process, whose callbacks
    /// (`bpf_loop`, `bpf_for_each_map_elem`) run in the host's program. Nil for every ordinary
    /// process. It belongs to the process, not to one run: `clearForReuse` keeps it. Held weakly
    /// (the bridge's owner holds the process).
    public weak var callbackBridge: (any CallbackBridge)?

    /// Spin locks the process holds (`bpf_spin_lock`); released if the process goes away.
    let heldSpinLocks = HeldSpinLocks()
    /// The previous run's packet buffer, kept by `clearForReuse()` for the next context of the
    /// same kind to refill (`PacketBuffer.refill`) instead of allocating; never visible to
    /// helpers or host code.
    @exclusivity(unchecked) var sparePacket: PacketBuffer?

    /// What host code reports of a run — its trace lines, warnings and packet — read in one
    /// call: other modules make a dynamic exclusivity check on each stored property of this class
    /// they read (`@exclusivity(unchecked)` does not reach them), ~100 instructions apiece; a
    /// packet loop reads these for every packet (`mimic run --pcap`). An empty list is nil: a
    /// packet loop then copies no array (retaining the shared empty array takes the runtime's
    /// slow path for immortal objects).
    public var runReport: (trace: [String]?, warnings: [String]?, packet: PacketBuffer?) {
        (traceOutput.isEmpty ? nil : traceOutput, warnings.isEmpty ? nil : warnings, packet)
    }

    /// `runReport`'s question for a packet loop's every run, with the state's look-up, in one
    /// call and without reference counting: whether the run printed trace lines or warnings,
    /// and its packet buffer, unretained — valid until `process` is reset or goes away. Nil
    /// values when the process has no Linux state.
    public static func runSummary(of process: MimicCore.Process) -> (printed: Bool, packet: Unmanaged<PacketBuffer>?) {
        guard let state = process.unretainedEmulatorState(key) else { return (false, nil) }
        return state._withUnsafeGuaranteedRef { state in
            (!state.traceOutput.isEmpty || !state.warnings.isEmpty, state.packet.map { Unmanaged.passUnretained($0) })
        }
    }

    /// `clearForReuse` for a state whose run left nothing but plain values to clear, for a
    /// Linux context's `rearm` (`LinuxEmulator.rearmsThroughContext`): no output, results or
    /// replay (`touched`), no spin lock held, the environment and stacks as `clearForReuse`
    /// leaves them, no spare packet. Then clears those values and returns true; the packet buffer
    /// stays (the context renews it, or declines, and `prepare` then moves it aside). False,
    /// changing nothing, otherwise. The clock is the emulator's: the state is the one `prepare`
    /// stored (the quick path runs only then: `Process.setEmulatorState` disarms it).
    @inline(__always) // into the contexts' `rearm`
    func rearmForContext() -> Bool {
        guard !touched, !environmentChanged, !stacksChanged, sparePacket == nil, heldSpinLocks.isEmpty else {
            return false
        }
        clearPlainValues()
        return true
    }

    /// The values `clearForReuse` resets every time they were set (`plainValuesSet`): plain
    /// values, whose stores cost nothing to release.
    @inline(__always)
    private func clearPlainValues() {
        guard plainValuesSet else { return }
        overriddenReturn = nil
        seqFileAddress = nil
        clockReads = 0
        randomState = nil
        runningTimer = nil
        cgroupRetval = 0
        xdpRxMetadata = nil
        plainValuesSet = false // after the clears, whose `didSet`s set it again
    }

    /// Makes the state as a new one is (`init()`), for the next run of a process being reset:
    /// output, results and replay are dropped, held spin locks released, the environment set to
    /// its default; the packet buffer is kept aside as `sparePacket`. The `callbackBridge` stays.
    @inline(__always) // into `LinuxEmulator.prepare`, its one caller per reset
    func clearForReuse() {
        // Only what a run set is cleared: an assignment of nil (or of a new `TaskEnvironment`)
        // destroys the old value through value witnesses even when there is nothing to destroy,
        // and a process reset per packet pays that for every field.
        heldSpinLocks.releaseAll()
        // The spare is nil when the last context took it (every packet of a capture): then the
        // two references are swapped, with no release of the nil one.
        if sparePacket == nil {
            swap(&sparePacket, &packet)
        } else {
            sparePacket = packet.take()
        }
        if touched {
            if !traceOutput.isEmpty { traceOutput = [] }
            if !traceLines.isEmpty { traceLines = [] }
            if case .some = redirect { redirect = nil }
            if !clones.isEmpty { clones = [] }
            if case .some = replay { replay = nil }
            if !warnings.isEmpty { warnings = [] }
            if !signals.isEmpty { signals = [] }
            if case .some = sockets { sockets = nil }
            if case .some = transmitTunnel { transmitTunnel = nil }
            if case .some = redirectNexthop { redirectNexthop = nil }
            if !seqOutput.isEmpty { seqOutput = [] }
            if case .some = tracedFunction { tracedFunction = nil }
            if case .some = sysctl { sysctl = nil }
            if case .some = contextRecord { contextRecord = nil }
            if !socketEffects.isEmpty { socketEffects = [] }
            if case .some = socketProgram { socketProgram = nil }
            if case .some = skbWriteCheck { skbWriteCheck = nil }
            if case .some = socketRedirect { socketRedirect = nil }
            if case .some = seg6 { seg6 = nil }
            touched = false // after the clears, whose `didSet`s set it again
        }
        clearPlainValues()
        if environmentChanged {
            environment = TaskEnvironment()
            environmentChanged = false
        }
        if stacksChanged {
            stacks = TaskStacks()
            stacksChanged = false
        }
    }
}
