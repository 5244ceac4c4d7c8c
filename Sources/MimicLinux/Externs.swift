import MimicCore
import MimicMemory
import Synchronization

/// The emulated kernel objects `__ksym` variables resolve to: one read-only region per symbol in
/// the VM's shared memory, made when an object first names the symbol and shared by every
/// object loaded after (the same kernel variable has one address). Per-CPU symbols hold one
/// copy per CPU, back to back, for `bpf_per_cpu_ptr` / `bpf_this_cpu_ptr`.
final class KernelObjects: Sendable {
    struct Object: Sendable {
        let address: UInt64
        /// The size of one copy.
        let size: Int
        let isPerCPU: Bool
    }

    private let objects = Mutex<[String: Object]>([:])
    /// Per-CPU objects by the address of CPU 0's copy (the `__ksym` value programs pass).
    private let perCPU = Mutex<[UInt64: Object]>([:])

    /// The object named `name`, made in `vm`'s shared memory on first use.
    func object(named name: String, symbol: KernelSymbol, size: Int, cpuCount: Int, in vm: VM) throws(LoadError.Reason)
        -> Object
    {
        try objects.withLock { objects throws(LoadError.Reason) in
            if let existing = objects[name] { return existing }
            let size = max(1, symbol.bytes.isEmpty ? size : symbol.bytes.count)
            let copies = symbol.isPerCPU ? cpuCount : 1
            let (total, overflow) = size.multipliedReportingOverflow(by: copies)
            guard !overflow, total <= AddressSpace.regionLimit else {
                throw .unsupported("kernel symbol \(name): \(size) bytes x \(copies) copies is too large to emulate")
            }
            // Charged to the VM's memory budget before anything is allocated: the size comes from
            // the object's BTF, so it is outside data (a 4 GiB `__ksym` array is a few bytes of BTF).
            let storage: RegionStorage
            do {
                storage = try RegionStorage(count: total, charging: vm.memoryBudget, for: "kernel symbol \(name)")
            } catch {
                throw .unsupported("kernel symbol \(name): \(error)")
            }
            if !symbol.bytes.isEmpty {
                for copy in 0..<copies { storage.write(symbol.bytes, at: copy * size) }
            }
            let address: UInt64
            do {
                address = try vm.mapShared(storage, name: "ksym \(name)", kind: .readOnly)
            } catch {
                throw .unsupported("cannot map kernel symbol \(name): \(error)")
            }
            let object = Object(address: address, size: size, isPerCPU: symbol.isPerCPU)
            objects[name] = object
            if symbol.isPerCPU { perCPU.withLock { $0[address] = object } }
            return object
        }
    }

    /// The address of the object made for symbol `name`, if an object named it.
    func address(named name: String) -> UInt64? { objects.withLock { $0[name]?.address } }

    /// The per-CPU object whose CPU-0 address is `address`.
    func perCPUObject(at address: UInt64) -> Object? { perCPU.withLock { $0[address] } }

    /// Makes `bpf_per_cpu_ptr` / `bpf_this_cpu_ptr` reach the copies of `size` bytes at
    /// `address` (a `bpf_percpu_obj_new` object), until `unregisterPerCPU(at:)`.
    func registerPerCPU(at address: UInt64, size: Int) {
        perCPU.withLock { $0[address] = Object(address: address, size: size, isPerCPU: true) }
    }

    func unregisterPerCPU(at address: UInt64) { _ = perCPU.withLock { $0.removeValue(forKey: address) } }
}

extension LinuxEmulator {
    /// The `.kconfig` section of `object` with its `__kconfig` externs resolved as a load with
    /// `configuration` resolves them (`resolveExterns`), for a verifier that reads them as the
    /// constants libbpf writes before loading; nil when the object has no such section. A
    /// strong extern the configuration cannot give is the load's error.
    public static func resolvedKconfig(
        of object: ObjectFile, configuration: LinuxConfiguration = LinuxConfiguration()
    ) throws -> [UInt8]? {
        guard object.global(named: ObjectExtern.kconfigSection) != nil else { return nil }
        let loaded = try VM(emulator: LinuxEmulator(configuration: configuration)).load(object: object)
        return loaded.globals[ObjectExtern.kconfigSection]?.storage.bytes
    }

    /// Gives `__kconfig` externs their values and `__ksym` variables their addresses, as libbpf's
    /// `bpf_object__resolve_externs` does against a running kernel, from `configuration.kernel`:
    ///
    /// - `LINUX_KERNEL_VERSION`, `LINUX_HAS_SYSCALL_WRAPPER`, `LINUX_HAS_BPF_COOKIE` from its
    ///   settings; another `LINUX_*` name is 0 when weak and an error when strong;
    /// - `CONFIG_*` from `values`, stored by the extern's type (`ObjectExtern.Kconfig.encode`);
    ///   a missing one is 0 when weak and an error naming it when strong; other names are errors;
    /// - each `__ksym` variable the address of an emulated kernel object (`symbols`, or a
    ///   zero-filled one unless `resolvesUnlistedSymbols` is false).
    public func resolveExterns(_ externs: [ObjectExtern], kconfig: inout [UInt8], in vm: VM) throws(LoadError.Reason)
        -> [String: UInt64]
    {
        try layOutSystem(in: vm)
        let kernel = configuration.kernel
        var addresses: [String: UInt64] = [:]
        for external in externs {
            let name = external.name
            switch external.kind {
            case .kconfig(let layout):
                let known = ["LINUX_KERNEL_VERSION", "LINUX_HAS_SYSCALL_WRAPPER", "LINUX_HAS_BPF_COOKIE"]
                guard known.contains(name) || name.hasPrefix("CONFIG_") || (name.hasPrefix("LINUX_") && external.isWeak)
                else {
                    throw .unresolvedReference(
                        "extern (kcfg) \(name): unrecognized virtual extern (only CONFIG_* and \(known.joined(separator: ", ")) are known; another LINUX_* one must be __weak)"
                    )
                }
                let bytes: [UInt8]?
                do throws(ObjectExtern.Kconfig.ValueError) {
                    switch name {
                    case "LINUX_KERNEL_VERSION": bytes = try layout.encode(number: UInt64(kernel.kernelVersion))
                    case "LINUX_HAS_SYSCALL_WRAPPER":
                        bytes = try layout.encode(number: kernel.hasSyscallWrapper ? 1 : 0)
                    case "LINUX_HAS_BPF_COOKIE": bytes = try layout.encode(number: kernel.hasBPFCookie ? 1 : 0)
                    default:
                        if name.hasPrefix("CONFIG_") {
                            bytes = try kernel.values[name].map { value throws(ObjectExtern.Kconfig.ValueError) in
                                try layout.encode(value)
                            }
                        } else {
                            bytes = nil // a weak LINUX_* extern libbpf does not know: 0
                        }
                    }
                } catch {
                    throw .unresolvedReference("extern (kcfg) \(name): \(error)")
                }
                if let bytes {
                    guard layout.offset >= 0, layout.offset + bytes.count <= kconfig.count else {
                        throw .unresolvedReference(
                            "extern (kcfg) \(name): offset \(layout.offset) is outside .kconfig (\(kconfig.count) bytes)"
                        )
                    }
                    kconfig.replaceSubrange(layout.offset..<(layout.offset + bytes.count), with: bytes)
                } else if !external.isWeak {
                    throw .unresolvedReference(
                        "extern \(name) (strong __kconfig) is not set: the kernel configuration has no \(name) (set it in LinuxConfiguration.kernel.values or a --kconfig file, or declare it __weak to read 0)"
                    )
                }
            case .ksymVariable(let typeID, let size):
                let symbol: KernelSymbol
                if let listed = kernel.symbols[name] {
                    symbol = listed
                } else if kernel.resolvesUnlistedSymbols {
                    symbol = KernelSymbol()
                } else if external.isWeak {
                    continue // missing: a weak ksym's address is 0
                } else {
                    throw .unresolvedReference(
                        "extern \(name) (strong __ksym) is not a symbol of the emulated kernel (KernelConfig.symbols)")
                }
                let object = try kernelObjects.object(
                    named: name, symbol: symbol, size: typeID == nil ? 8 : (size ?? 8),
                    cpuCount: configuration.cpuCount, in: vm)
                addresses[name] = object.address
            case .kfunc:
                continue
            }
        }
        return addresses
    }
}
