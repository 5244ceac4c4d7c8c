import MimicCore
import MimicLinux
import MimicMemory
import Testing

/// `__kconfig` and `__ksym` externs and kfuncs, through `Fixtures/externs.c`.
@Suite struct ExternTests {
    /// The kernel the fixture is loaded against: a value of every kconfig kind, and kernel objects.
    static let kernel = KernelConfig(
        values: [
            "CONFIG_BPF_SYSCALL": "y", "CONFIG_NF_CONNTRACK": "m", "CONFIG_MIMIC_CHAR": "m",
            "CONFIG_MIMIC_S16": "-300", "CONFIG_HZ": "250", "CONFIG_MIMIC_U64": "0x1000000000",
            "CONFIG_DEFAULT_HOSTNAME": "\"mimic-host\"",
        ],
        kernelVersion: KernelConfig.version(major: 6, minor: 18, patch: 300), hasSyscallWrapper: true,
        hasBPFCookie: false,
        symbols: [
            "mimic_answer": KernelSymbol(bytes: [42, 0, 0, 0]),
            "mimic_per_cpu_counter": KernelSymbol(bytes: [1, 0, 0, 0], isPerCPU: true),
        ])

    static func load(_ kernel: KernelConfig = ExternTests.kernel) throws -> Fixture.Loaded {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 2, randomSeed: 1, kernel: kernel))
        let vm = VM(emulator: emulator)
        return Fixture.Loaded(vm: vm, emulator: emulator, object: try vm.load(object: Fixture.object("externs")))
    }

    /// The bytes of global variable `name` (in `.bss` or `.data`) after the runs so far.
    static func variable(_ loaded: Fixture.Loaded, _ name: String) throws -> [UInt8] {
        for section in [".bss", ".data"] {
            guard let global = loaded.object.globals[section],
                let variable = global.spec.variables.first(where: { $0.name == name })
            else { continue }
            return global.storage.bytes(in: Int(variable.offset)..<Int(variable.offset + variable.size))
        }
        throw FixtureError("no global variable \(name)")
    }

    static func integer(_ bytes: some Collection<UInt8>) -> UInt64 {
        bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    @Test func externsAreCollectedAsLibbpfDoes() throws {
        let object = try Fixture.object("externs")
        func kind(_ name: String) -> ObjectExtern.Kind? { object.externs.first { $0.name == name }?.kind }
        guard case .kconfig(let version)? = kind("LINUX_KERNEL_VERSION") else {
            Issue.record("LINUX_KERNEL_VERSION")
            return
        }
        #expect(version.type == .integer(signed: true) && version.size == 4)
        guard case .kconfig(let wrapper)? = kind("LINUX_HAS_SYSCALL_WRAPPER"),
            case .kconfig(let tristate)? = kind("CONFIG_NF_CONNTRACK"),
            case .kconfig(let hostname)? = kind("CONFIG_DEFAULT_HOSTNAME"),
            case .kconfig(let u64)? = kind("CONFIG_MIMIC_U64"),
            case .kconfig(let char)? = kind("CONFIG_MIMIC_CHAR")
        else {
            Issue.record("kconfig kinds")
            return
        }
        #expect(
            wrapper.type == .bool && tristate.type == .tristate && hostname.type == .charArray && hostname.size == 8)
        #expect(u64.type == .integer(signed: false) && char.type == .char)
        // libbpf's layout: descending alignment, then ascending size, then name.
        #expect(u64.offset == 0, "the only 8-aligned value comes first")
        #expect(
            version.offset == 20,
            "after the 8-byte value and the 4-byte ones named before it (CONFIG_HZ, CONFIG_MIMIC_MISSING, CONFIG_NF_CONNTRACK)"
        )
        #expect(hostname.offset == 34, "the char array (align 1, size 8) after the four 1-byte values")
        #expect(object.inspectionReport().contains("LINUX_KERNEL_VERSION       __kconfig s32 at .kconfig+20"))
        #expect(object.externs.first { $0.name == "LINUX_KERNEL_VERSION" }?.isWeak == false)
        #expect(object.externs.first { $0.name == "CONFIG_HZ" }?.isWeak == true)
        #expect(kind("mimic_typeless") == .ksymVariable(typeID: nil, size: nil))
        guard case .ksymVariable(let typeID?, 4)? = kind("mimic_answer") else {
            Issue.record("mimic_answer")
            return
        }
        #expect(object.btf?.typeName(typeID) == "int")
        #expect(kind("bpf_iter_num_new") == .kfunc)
        // The BTF DATASEC describes the section as laid out, as libbpf rewrites it.
        let btf = try #require(object.btf)
        let datasec = try #require(btf.typeID(named: ".kconfig", kind: .dataSection))
        guard case .dataSection(_, let size, let variables)? = btf.type(datasec) else {
            Issue.record("no .kconfig DATASEC")
            return
        }
        #expect(size == 42)
        for variable in variables {
            guard case .variable(let name, _, _)? = btf.type(variable.type),
                case .kconfig(let layout)? = kind(name)
            else {
                Issue.record("DATASEC entry \(variable.type)")
                continue
            }
            #expect(Int(variable.offset) == layout.offset, "\(name)")
        }
        let kconfig = try #require(object.global(named: ".kconfig"))
        #expect(kconfig.isReadOnly && kconfig.contents.allSatisfy { $0 == 0 })
        #expect(
            !object.notes.contains { $0.contains("bpf_iter_num_new") || $0.contains("mimic_answer") },
            "externs with BTF are not reported as unresolved")
    }

    @Test func kconfigValuesOfEveryType() throws {
        let loaded = try Self.load()
        try loaded.run("read_kconfig")
        let seen = try Self.variable(loaded, "kconfig_seen")
        func field(_ offset: Int, _ size: Int) -> UInt64 { Self.integer(seen[offset..<(offset + size)]) }
        let version: UInt64 = 6 << 16 | 18 << 8 | 255
        #expect(field(0, 4) == version, "LINUX_KERNEL_VERSION (the patch level saturates at 255)")
        #expect(field(4, 4) == 2, "CONFIG_NF_CONNTRACK=m is TRI_MODULE")
        #expect(field(8, 8) == 0x10_0000_0000, "CONFIG_MIMIC_U64 in hex")
        #expect(field(16, 4) == 250, "CONFIG_HZ")
        #expect(field(20, 4) == 0, "an unknown weak LINUX_ extern is 0")
        #expect(field(24, 4) == 0, "a missing weak CONFIG_ extern is 0")
        #expect(Int16(truncatingIfNeeded: field(28, 2)) == -300, "a negative s16")
        #expect(seen[30] == 1, "LINUX_HAS_SYSCALL_WRAPPER as configured")
        #expect(seen[31] == 0, "LINUX_HAS_BPF_COOKIE as configured")
        #expect(seen[32] == 1, "CONFIG_BPF_SYSCALL=y")
        #expect(seen[33] == UInt8(ascii: "m"), "a char reads the letter")
        let expectedHostname: [UInt8] = Array("mimic-h".utf8) + [0]
        #expect(Array(seen[34..<42]) == expectedHostname, "a string is truncated to size - 1 and a NUL")
        // .kconfig is a read-only array map, as libbpf makes it.
        let map = try #require(loaded.emulator.map(named: ".kconfig"))
        #expect(map.attributes.flags & MapFlags.readOnlyProgram.rawValue != 0)
    }

    @Test func openCodedIteratorsRunAsTheKernelDoes() throws {
        let loaded = try Self.load()
        try loaded.run("read_kconfig")
        #expect(Self.integer(try Self.variable(loaded, "iter_sum")) == 42, "3 + 4 + ... + 9")
        #expect(
            Self.integer(try Self.variable(loaded, "iter_count")) == 7,
            "the empty and the failed iterators yield nothing")
        #expect(Self.integer(try Self.variable(loaded, "iter_empty_new")) == 0)
        #expect(
            Int32(truncatingIfNeeded: Self.integer(try Self.variable(loaded, "iter_bad_new"))) == -Errno.invalid
                .rawValue)
    }

    @Test func ksymVariablesAreEmulatedKernelObjects() throws {
        let loaded = try Self.load()
        let process = try loaded.run("read_ksyms")
        #expect(Self.integer(try Self.variable(loaded, "answer")) == 42, "the configured contents of mimic_answer")
        let answerAddress = Self.integer(try Self.variable(loaded, "answer_address"))
        let typelessAddress = Self.integer(try Self.variable(loaded, "typeless_address"))
        #expect(answerAddress != 0 && typelessAddress != 0 && answerAddress != typelessAddress)
        #expect(Self.integer(try Self.variable(loaded, "missing_address")) != 0, "unlisted symbols resolve by default")
        #expect(loaded.object.ksymAddresses["mimic_answer"] == answerAddress)
        // Kernel objects are read-only to programs.
        #expect(throws: MemoryFault.self) { try process.memory.write([1], at: answerAddress) }
    }

    @Test func aMissingWeakKsymIsZeroAndAStrongOneFailsToLoad() throws {
        var kernel = Self.kernel
        kernel.resolvesUnlistedSymbols = false
        kernel.symbols["mimic_typeless"] = KernelSymbol()
        let loaded = try Self.load(kernel)
        try loaded.run("read_ksyms")
        #expect(Self.integer(try Self.variable(loaded, "missing_address")) == 0)

        kernel.symbols["mimic_typeless"] = nil
        let error = try #require(throws: LoadError.self) { try Self.load(kernel) }
        #expect(error.description.contains("mimic_typeless"))
    }

    @Test func aStrongKconfigExternMissingIsALoadErrorNamingIt() throws {
        // LINUX_HAS_SYSCALL_WRAPPER is strong but virtual: always set. Strong CONFIG_ externs
        // are checked through a kernel configuration without the value.
        let object = try Fixture.object("externs")
        var externs = object.externs.filter(\.isVariable)
        let index = try #require(externs.firstIndex { $0.name == "CONFIG_HZ" })
        externs[index].isWeak = false
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1, kernel: KernelConfig()))
        var kconfig = object.global(named: ".kconfig")?.contents ?? []
        let error = try #require(throws: LoadError.Reason.self) {
            _ = try emulator.resolveExterns(externs, kconfig: &kconfig, in: VM(emulator: emulator))
        }
        #expect(error.description.contains("CONFIG_HZ"))
    }

    @Test func valuesThatDoNotFitTheirExternAreLoadErrors() throws {
        for (name, value) in [
            ("CONFIG_HZ", "n"), ("CONFIG_BPF_SYSCALL", "m"), ("CONFIG_MIMIC_S16", "40000"),
            ("CONFIG_DEFAULT_HOSTNAME", "12"), ("CONFIG_HZ", "\"text\""), ("CONFIG_HZ", "12abc"),
        ] {
            var kernel = Self.kernel
            kernel.values[name] = value
            let error = try #require(throws: LoadError.self) { try Self.load(kernel) }
            #expect(error.description.contains(name), "\(name)=\(value): \(error)")
        }
    }

    @Test func kconfigEncodingFollowsLibbpf() throws {
        let u8 = ObjectExtern.Kconfig(type: .integer(signed: false), size: 2, alignment: 2, offset: 0)
        #expect(try u8.encode("0x1f") == [0x1F, 0])
        #expect(try u8.encode("017") == [15, 0], "a leading 0 is octal")
        #expect(throws: ObjectExtern.Kconfig.ValueError.self) { try u8.encode("65536") }
        let s32 = ObjectExtern.Kconfig(type: .integer(signed: true), size: 4, alignment: 4, offset: 0)
        #expect(try s32.encode("-1") == [0xFF, 0xFF, 0xFF, 0xFF])
        #expect(throws: ObjectExtern.Kconfig.ValueError.self) { try s32.encode("2147483648") }
        let bool = ObjectExtern.Kconfig(type: .bool, size: 1, alignment: 1, offset: 0)
        #expect(try bool.encode(number: 1) == [1])
        #expect(throws: ObjectExtern.Kconfig.ValueError.self) { try bool.encode(number: 2) }
        let tristate = ObjectExtern.Kconfig(type: .tristate, size: 4, alignment: 4, offset: 0)
        #expect(try tristate.encode("n") == [0, 0, 0, 0])
        #expect(try tristate.encode("yes") == [1, 0, 0, 0], "only the first letter counts")
    }

    @Test func kernelConfigFilesReadAsProcConfig() throws {
        let config = try KernelConfig(
            parsing: """
                #
                # Automatically generated file; DO NOT EDIT.
                CONFIG_BPF=y
                # CONFIG_DEBUG_INFO is not set
                CONFIG_HZ=1000
                CONFIG_DEFAULT_HOSTNAME="(none)"

                CONFIG_HZ=100
                """)
        #expect(config.values == ["CONFIG_BPF": "y", "CONFIG_HZ": "1000", "CONFIG_DEFAULT_HOSTNAME": "\"(none)\""])
        #expect(throws: KernelConfigError(line: 2, message: "'CONFIG_X' has no '=' separator")) {
            try KernelConfig(parsing: "CONFIG_A=1\nCONFIG_X")
        }
        #expect(throws: KernelConfigError(line: 1, message: "'CONFIG_X=' has no value")) {
            try KernelConfig(parsing: "CONFIG_X=")
        }
        #expect(KernelConfig.version(release: "6.8.0-45-generic") == KernelConfig.version(major: 6, minor: 8, patch: 0))
        #expect(KernelConfig.version(release: "5.15") == 0x050F00)
        #expect(KernelConfig.version(release: "generic") == nil)
    }

    @Test func weakKfuncsAreOptional() throws {
        let loaded = try Self.load()
        try loaded.run("optional_kfuncs")
        #expect(Self.integer(try Self.variable(loaded, "unlock_exists")) == 1, "bpf_ksym_exists of a provided kfunc")
        #expect(
            Self.integer(try Self.variable(loaded, "absent_exists")) == 0, "bpf_ksym_exists of a missing weak kfunc")
        #expect(
            Int32(truncatingIfNeeded: Self.integer(try Self.variable(loaded, "absent_result"))) == -1,
            "the guarded call did not run")
        // An unguarded call of the missing weak kfunc loads, and stops the program when reached.
        let error = try #require(throws: ExecutionError.self) { try loaded.run("call_absent") }
        #expect(error.description.contains("bpf_mimic_absent"))
    }

    @Test func aKfuncNobodyProvidesStaysALoadError() throws {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 1))
        #expect(emulator.kfunc(named: "bpf_iter_num_new") != nil)
        #expect(emulator.kfunc(named: "bpf_no_such_kfunc") == nil)
        #expect(emulator.kfuncNames.contains("bpf_rcu_read_lock"))
        #expect(
            emulator.kfunc(named: "bpf_iter_num_next___flavor")?.name == "bpf_iter_num_next", "libbpf's essential name")
    }
}

/// Tracing helpers that need no kernel, through `Fixtures/externs.c`'s `tracing_helpers`.
@Suite struct TracingHelperTests {
    static func run(environment: TaskEnvironment, vCPU: Int = 1) throws -> (Fixture.Loaded, LinuxProcessState, [UInt8])
    {
        let loaded = try ExternTests.load()
        let perCPU = try #require(loaded.emulator.map(named: "per_cpu_values"))
        #expect(perCPU.update(key: [0, 0, 0, 0], value: [7, 0, 0, 0, 0, 0, 0, 0], flags: .any, cpu: 1) == nil)
        let context = GenericContext(
            memories: [("regs", .block([UInt8](repeating: 0, count: 168)))], registers: [1: "regs"],
            environment: environment)
        let process = try loaded.run("tracing_helpers", context: context, vCPU: vCPU)
        let state = try #require(LinuxProcessState.of(process))
        return (loaded, state, try ExternTests.variable(loaded, "helpers_seen"))
    }

    static func field(_ seen: [UInt8], _ index: Int) -> UInt64 {
        ExternTests.integer(seen[(index * 8)..<(index * 8 + 8)])
    }
    static func int(_ seen: [UInt8], _ index: Int) -> Int32 {
        Int32(truncatingIfNeeded: ExternTests.integer(seen[(104 + index * 4)..<(104 + index * 4 + 4)]))
    }

    @Test func helpersReadTheTaskEnvironmentAndRecordSignals() throws {
        var environment = TaskEnvironment(pid: 101, tgid: 100, clock: .manual(start: 10_000_000_000, step: 0))
        environment.attachCookie = 0xC00C1E
        environment.functionAddress = 0xFFFF_FFFF_8100_0000
        let (_, state, seen) = try Self.run(environment: environment)
        // INITIAL_JIFFIES (-300 s as a u32) + 10 s at CONFIG_HZ 250 (the default).
        #expect(Self.field(seen, 0) == UInt64(UInt32(truncatingIfNeeded: -300 * 250)) + 2500)
        #expect(Self.field(seen, 1) == 10_000_000_000, "ktime_get_tai_ns reads the process's clock")
        #expect(Self.field(seen, 2) == 0xFFFF_FFFF_8100_0000)
        #expect(Self.field(seen, 3) == 0xC00C1E)
        #expect(Self.field(seen, 4) == 7, "CPU 1's value of the per-CPU array")
        #expect(Self.field(seen, 5) == 0, "a CPU past the possible ones gives NULL")
        #expect(Int64(bitPattern: Self.field(seen, 6)) == 0)
        #expect(Int64(bitPattern: Self.field(seen, 7)) == -1)
        #expect(Int64(bitPattern: Self.field(seen, 8)) == 1)
        #expect(Self.field(seen, 9) == 0 && Self.field(seen, 10) == 0, "signals to a task other than init are sent")
        #expect(Int64(bitPattern: Self.field(seen, 11)) == -22, "signal 65 is -EINVAL")
        #expect(Self.field(seen, 12) == 0)
        #expect(
            state.signals == [
                SentSignal(signal: 10, toThread: false, target: 100),
                SentSignal(signal: 12, toThread: true, target: 101),
            ])
        #expect(state.overriddenReturn == UInt64(bitPattern: -22))
        #expect(Self.int(seen, 0) == 1 && Self.int(seen, 1) == 2, "each CPU's copy of the per-CPU kernel variable")
        #expect(Self.int(seen, 2) == 1, "bpf_this_cpu_ptr on vCPU 1 is CPU 1's copy")
        #expect(Self.int(seen, 3) == 1, "a CPU past the possible ones gives NULL")
    }

    @Test func signalsToInitAreRefused() throws {
        let (_, state, seen) = try Self.run(environment: TaskEnvironment(), vCPU: 0)
        #expect(Int64(bitPattern: Self.field(seen, 9)) == -1, "the default task is init (tgid 1): -EPERM")
        #expect(state.signals.isEmpty)
        #expect(Self.field(seen, 2) == 0 && Self.field(seen, 3) == 0, "no function address or cookie by default")
    }
}
