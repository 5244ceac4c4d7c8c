import MimicCore
import MimicMemory

/// The map helpers: lookup, update, delete, push / pop / peek, `HelperID.tailCall`,
/// `HelperID.redirectMap`, `HelperID.spinLock` / `HelperID.spinUnlock` and `HelperID.forEachMapElem`.
/// Ring buffer and perf event helpers live in their own file and are listed here too.
///
/// Helpers take the map from R1 as the handle `lddw` loaded (`MapHandle`) and read keys and
/// values through the process's memory with bounds checks: a bad pointer stops the program with
/// a memory fault naming the helper. Errors the kernel reports to the program come back as
/// `-errno` in R0.
enum MapHelpers {
    /// Every helper of this group, for `LinuxHelperSet`.
    static func all(for emulator: LinuxEmulator) -> [Helper] {
        [
            lookup(emulator), update(emulator), delete(emulator),
            push(emulator), pop(emulator, remove: true), pop(emulator, remove: false),
            tailCall(emulator), redirectMap(emulator), spinLock(), spinUnlock(), forEach(emulator),
        ] + RingBufferHelpers.all(for: emulator) + PerfEventHelpers.all(for: emulator)
    }

    // MARK: Shared pieces

    /// The map whose handle is in argument `n`.
    static func map(_ emulator: LinuxEmulator?, _ process: MimicCore.Process, argument n: Int = 1) throws(HelperFailure)
        -> any BPFMap
    {
        let handle = process.argument(n)
        guard let emulator, let map = emulator.map(handle: handle) else {
            throw .message("r\(n) = 0x\(String(handle, radix: 16)) is not a map")
        }
        if let placeholder = map as? UnsupportedMap { throw placeholder.failure }
        return map
    }

    /// The map in argument `n`, which must be of type `T` (`what` names the kind expected).
    static func map<T>(
        _ emulator: LinuxEmulator?, _ process: MimicCore.Process, argument n: Int = 1,
        as type: T.Type, _ what: String
    ) throws(HelperFailure) -> T {
        let found = try map(emulator, process, argument: n)
        guard let typed = found as? T else {
            throw .message("map \(found.name) is a \(found.attributes.type.cName), not \(what)")
        }
        return typed
    }

    /// `count` bytes of VM memory at `address`.
    static func read(_ process: MimicCore.Process, _ address: UInt64, count: Int) throws(HelperFailure) -> [UInt8] {
        do {
            return try process.memory.read(address, count: count)
        } catch {
            throw .memory(error)
        }
    }

    /// Writes `bytes` into VM memory at `address`.
    static func write(_ process: MimicCore.Process, _ bytes: [UInt8], at address: UInt64) throws(HelperFailure) {
        do {
            try process.memory.write(bytes, at: address)
        } catch {
            throw .memory(error)
        }
    }

    /// A helper's result: 0, or `-errno`.
    static func result(_ error: Errno?) -> HelperResult { .value(error?.helperReturnValue ?? 0) }

    // MARK: Lookup, update, delete

    /// `void *HelperID.mapLookupElem(map, key)`: the address of the value, or NULL. Maps of
    /// maps give the inner map's handle.
    ///
    /// Hash and array maps take a fast path, the helper's C-ABI entry (`DirectHelper`, which
    /// the interpreter and compiled code call first): the map comes from the emulator's
    /// `MapTable` and the key is read in place through the translation table (no copy, no
    /// allocation, no reference count). Keys the translation table does not reach directly
    /// (rings, a plugin's foreign memory, faults) take the general path, which reads them with
    /// full checks. Compiled code looks up arrays and per-CPU arrays inline
    /// (`ArrayMap.inlineLookup`) and calls a hash map's search directly
    /// (`HashTableMap.inlineLookup`).
    static func lookup(_ emulator: LinuxEmulator) -> Helper {
        // Not strong: the VM's prog arrays hold its programs, whose helpers are these closures
        // (a strong table would make map table → prog array → program → helper → table a cycle).
        // Not weak either: loading a weak reference retains and releases the table on every call,
        // a reference count that every core running the program would write. Unowned(unsafe) is
        // sound because a helper runs only inside a process, which holds its VM, which holds the
        // emulator, which holds the table.
        unowned(unsafe) let table = emulator.mapTable
        var helper = Helper(.mapLookupElem) { [weak emulator] process throws(HelperFailure) in
            let map = try map(emulator, process)
            if let result = try SocketMapHelpers.programOperation(map, process, .mapLookupElem, emulator: emulator) {
                return .value(result)
            }
            let key = try read(process, process.argument(2), count: map.attributes.keySize)
            return .value(map.lookupAddress(key: key, cpu: process.vCPU) ?? 0)
        }
        helper.direct = DirectHelper(directLookup, data: table.opaque)
        helper.inlineArrayLookup = { handle in table.entry(handle: handle)?.array?.takeUnretainedValue().inlineLookup }
        helper.inlineHashLookup = { handle in table.entry(handle: handle)?.hash?.takeUnretainedValue().inlineLookup }
        return helper
    }

    /// `bpf_map_lookup_elem`'s C-ABI entry (data: the `MapTable`).
    private static let directLookup: DirectHelper.Function = { r1, r2, _, _, _, call in
        MapTable.withEntry(of: call, handle: r1) { entry, process in fastLookup(entry, process, key: r2) } ?? 0
    }

    /// The lookup's result (the value's address, or 0 for none) for a hash or array map whose
    /// key is directly readable; nil to take the general path.
    @inline(__always)
    private static func fastLookup(_ entry: MapTable.Entry, _ process: MimicCore.Process, key keyAddress: UInt64)
        -> UInt64?
    {
        if let array = entry.array {
            return array._withUnsafeGuaranteedRef { array in
                guard array.attributes.keySize == 4,
                    let key = process.memory.table.pointer(forReading: keyAddress, size: 4)
                else { return nil }
                return array.lookupAddress(
                    index: Int(UInt32(littleEndian: key.loadUnaligned(as: UInt32.self))),
                    cpu: process.vCPU) ?? 0
            }
        }
        if let hash = entry.hash {
            return hash._withUnsafeGuaranteedRef { hash in
                let size = hash.attributes.keySize
                guard size > 0, let key = process.memory.table.pointer(forReading: keyAddress, size: UInt64(size))
                else { return nil }
                if size == 4 {
                    // A constant size lets the hash and the compare skip their dispatch.
                    return hash.lookupAddress(key: UnsafeRawBufferPointer(start: key, count: 4), cpu: process.vCPU) ?? 0
                }
                return hash.lookupAddress(key: UnsafeRawBufferPointer(start: key, count: size), cpu: process.vCPU) ?? 0
            }
        }
        return nil
    }

    /// `long HelperID.mapUpdateElem(map, key, value, flags)`. Hash and array maps take a fast
    /// path like `lookup`'s (its C-ABI entry): key and value are read in place.
    static func update(_ emulator: LinuxEmulator) -> Helper {
        unowned(unsafe) let table = emulator.mapTable // see `lookup`
        var helper = Helper(.mapUpdateElem) { [weak emulator] process throws(HelperFailure) in
            let map = try map(emulator, process)
            if let result = try SocketMapHelpers.programOperation(map, process, .mapUpdateElem, emulator: emulator) {
                return .value(result)
            }
            let key = try read(process, process.argument(2), count: map.attributes.keySize)
            let value = try read(process, process.argument(3), count: map.attributes.valueSize)
            return result(
                map.update(
                    key: key, value: value, flags: MapUpdateFlags(rawValue: process.argument(4)),
                    cpu: process.vCPU))
        }
        helper.direct = DirectHelper(directUpdate, data: table.opaque)
        return helper
    }

    /// `bpf_map_update_elem`'s C-ABI entry (data: the `MapTable`).
    private static let directUpdate: DirectHelper.Function = { r1, r2, r3, r4, _, call in
        MapTable.withEntry(of: call, handle: r1) { entry, process in
            fastUpdate(entry, process, key: r2, value: r3, flags: MapUpdateFlags(rawValue: r4)).map {
                $0?.helperReturnValue ?? 0
            }
        } ?? 0
    }

    /// The update's outcome (`.some(nil)`: done) for a hash or array map whose key and value
    /// are directly readable; nil to take the general path.
    @inline(__always)
    private static func fastUpdate(
        _ entry: MapTable.Entry, _ process: MimicCore.Process, key keyAddress: UInt64, value valueAddress: UInt64,
        flags: MapUpdateFlags
    ) -> Errno?? {
        let memory = process.memory.table
        if let array = entry.array {
            return array._withUnsafeGuaranteedRef { array in
                let valueSize = array.attributes.valueSize
                guard array.attributes.keySize == 4, valueSize > 0,
                    let key = memory.pointer(forReading: keyAddress, size: 4),
                    let value = memory.pointer(forReading: valueAddress, size: UInt64(valueSize))
                else { return nil }
                return .some(
                    array.update(
                        index: UInt32(littleEndian: key.loadUnaligned(as: UInt32.self)),
                        value: UnsafeRawBufferPointer(start: value, count: valueSize),
                        flags: flags, cpu: process.vCPU))
            }
        }
        if let hash = entry.hash {
            return hash._withUnsafeGuaranteedRef { hash in
                let keySize = hash.attributes.keySize
                let valueSize = hash.attributes.valueSize
                guard keySize > 0, valueSize > 0,
                    let key = memory.pointer(forReading: keyAddress, size: UInt64(keySize)),
                    let value = memory.pointer(forReading: valueAddress, size: UInt64(valueSize))
                else { return nil }
                return .some(
                    hash.update(
                        key: UnsafeRawBufferPointer(start: key, count: keySize),
                        value: UnsafeRawBufferPointer(start: value, count: valueSize),
                        flags: flags, cpu: process.vCPU))
            }
        }
        return nil
    }

    /// `long HelperID.mapDeleteElem(map, key)`. Hash and array maps take a fast path like
    /// `lookup`'s (its C-ABI entry): the key is read in place.
    static func delete(_ emulator: LinuxEmulator) -> Helper {
        unowned(unsafe) let table = emulator.mapTable // see `lookup`
        var helper = Helper(.mapDeleteElem) { [weak emulator] process throws(HelperFailure) in
            let map = try map(emulator, process)
            if let result = try SocketMapHelpers.programOperation(map, process, .mapDeleteElem, emulator: emulator) {
                return .value(result)
            }
            let key = try read(process, process.argument(2), count: map.attributes.keySize)
            return result(map.delete(key: key))
        }
        helper.direct = DirectHelper(directDelete, data: table.opaque)
        return helper
    }

    /// `bpf_map_delete_elem`'s C-ABI entry (data: the `MapTable`): arrays refuse with
    /// `-EINVAL` (their elements cannot be deleted), hash maps delete a key read in place.
    private static let directDelete: DirectHelper.Function = { r1, r2, _, _, _, call in
        MapTable.withEntry(of: call, handle: r1) { entry, process -> UInt64? in
            let memory = process.memory.table
            if let array = entry.array {
                // The general path reads the key first: a bad pointer faults there.
                let size = array._withUnsafeGuaranteedRef { $0.attributes.keySize }
                guard memory.pointer(forReading: r2, size: UInt64(size)) != nil else { return nil }
                return Errno.invalid.helperReturnValue
            }
            guard let hash = entry.hash else { return nil }
            return hash._withUnsafeGuaranteedRef { hash in
                let size = hash.attributes.keySize
                guard size > 0, let key = memory.pointer(forReading: r2, size: UInt64(size)) else { return nil }
                return hash.delete(key: UnsafeRawBufferPointer(start: key, count: size))?.helperReturnValue ?? 0
            }
        } ?? 0
    }

    // MARK: Queue and stack

    /// `long HelperID.mapPushElem(map, value, flags)`.
    static func push(_ emulator: LinuxEmulator) -> Helper {
        Helper(.mapPushElem) { [weak emulator] process throws(HelperFailure) in
            let map = try map(emulator, process)
            let value = try read(process, process.argument(2), count: map.attributes.valueSize)
            return result(map.push(value: value, flags: MapUpdateFlags(rawValue: process.argument(3))))
        }
    }

    /// `long HelperID.mapPopElem(map, value)` and `long HelperID.mapPeekElem(map, value)`:
    /// copy the value out; on `-ENOENT` the buffer is zeroed, as the kernel does. A bloom
    /// filter's peek instead tests the value at R2 (`BloomFilterMap`).
    static func pop(_ emulator: LinuxEmulator, remove: Bool) -> Helper {
        Helper(remove ? .mapPopElem : .mapPeekElem) { [weak emulator] process throws(HelperFailure) in
            let map = try map(emulator, process)
            let destination = process.argument(2)
            let size = map.attributes.valueSize
            if let bloom = map as? BloomFilterMap {
                // A bloom filter's peek tests the value the program passes; pop is not supported.
                guard !remove else { return result(.notSupported) }
                return result(bloom.mayContain(try read(process, destination, count: size)) ? nil : .noEntry)
            }
            // Check the buffer before taking a value out, so a bad pointer loses nothing.
            if size > 0, let fault = process.memory.fault(at: destination, size: size, access: .write) {
                throw .memory(fault)
            }
            switch remove ? map.pop() : map.peek() {
            case .success(let value):
                try write(process, value, at: destination)
                return .value(0)
            case .failure(let error):
                if error == .noEntry { try write(process, [UInt8](repeating: 0, count: size), at: destination) }
                return result(error)
            }
        }
    }

    // MARK: Tail calls

    /// `long HelperID.tailCall(ctx, prog_array, index)`: jumps into the program at `index`,
    /// keeping R1 (the context). When the index is past the end, the slot is empty or the
    /// process has made `tailCallLimit` (33) tail calls, the kernel falls through to the next
    /// instruction; Mimic does that with R0 = `-ENOENT` (the kernel leaves R0 undefined).
    static func tailCall(_ emulator: LinuxEmulator) -> Helper {
        Helper(.tailCall) { [weak emulator] process throws(HelperFailure) in
            let array = try map(emulator, process, argument: 2, as: ProgramArrayMap.self, "a BPF_MAP_TYPE_PROG_ARRAY")
            let index = UInt32(truncatingIfNeeded: process.argument(3))
            guard process.tailCallCount < process.vm.configuration.tailCallLimit,
                let program = array.program(at: Int(index))
            else {
                return .value(Errno.noEntry.helperReturnValue)
            }
            guard program.vm === process.vm else {
                throw .message("program \(program.name) in \(array.name)[\(index)] was loaded into another VM")
            }
            return .tailCall(program)
        }
    }

    // MARK: Redirects

    /// `long HelperID.redirectMap(map, key, flags)`: records the entry of a devmap,
    /// devmap_hash, cpumap or xskmap as the packet's redirect target and returns `XDP_REDIRECT`
    /// (4). On a miss it clears the record and returns the lower two bits of `flags` (an XDP
    /// action up to `XDP_TX`); flags other than those bits, `BPF_F_BROADCAST` and
    /// `BPF_F_EXCLUDE_INGRESS` (devmaps only) return `XDP_ABORTED` (0), as the kernel's
    /// `__bpf_xdp_redirect_map` does. The last redirect of a run (this or `HelperID.redirect`) wins:
    /// it replaces `LinuxProcessState.redirect`.
    static func redirectMap(_ emulator: LinuxEmulator) -> Helper {
        Helper(.redirectMap) { [weak emulator] process throws(HelperFailure) in
            let map = try map(emulator, process, as: RedirectMap.self, "a devmap, devmap_hash, cpumap or xskmap")
            let key = UInt32(truncatingIfNeeded: process.argument(2))
            let flags = process.argument(3)
            let actionMask: UInt64 = 3
            let isDevMap = map.attributes.type == .devMap || map.attributes.type == .devMapHash
            let allowed = actionMask | (isDevMap ? MapRedirect.broadcastFlag | MapRedirect.excludeIngressFlag : 0)
            guard flags & ~allowed == 0 else { return .value(0) }
            let state = LinuxProcessState.of(process)
            let broadcast = flags & MapRedirect.broadcastFlag != 0
            let value = map.target(forKey: key)
            guard value != nil || broadcast else {
                state?.redirect = nil
                return .value(flags & actionMask)
            }
            state?.redirect = .map(
                MapRedirect(
                    mapName: map.name, mapType: map.attributes.type, key: key, value: broadcast ? nil : value,
                    broadcastKeys: broadcast ? map.setKeys : [],
                    excludeIngress: flags & MapRedirect.excludeIngressFlag != 0))
            return .value(MapRedirect.xdpRedirect)
        }
    }

    // MARK: Spin locks

    /// `long HelperID.spinLock(lock)`: takes the lock word in a map value, waiting while
    /// another process holds it. Taking a lock the process already holds stops the program
    /// (the kernel's verifier refuses such programs; running one would deadlock).
    static func spinLock() -> Helper {
        Helper(.spinLock) { process throws(HelperFailure) in
            let (storage, offset) = try lockWord(process)
            guard let state = LinuxProcessState.of(process) else {
                throw .message("the process was not prepared by the Linux emulator")
            }
            guard !state.heldSpinLocks.holds(storage, offset) else {
                throw .message("the program already holds the spin lock at 0x\(String(process.argument(1), radix: 16))")
            }
            SpinLocks.shared.lock(storage.pointer + offset)
            state.heldSpinLocks.add(storage, offset)
            return .value(0)
        }
    }

    /// `long HelperID.spinUnlock(lock)`: releases a lock the process holds; releasing one it
    /// does not hold stops the program.
    static func spinUnlock() -> Helper {
        Helper(.spinUnlock) { process throws(HelperFailure) in
            let (storage, offset) = try lockWord(process)
            guard let state = LinuxProcessState.of(process), state.heldSpinLocks.remove(storage, offset) else {
                throw .message("the program does not hold the spin lock at 0x\(String(process.argument(1), radix: 16))")
            }
            SpinLocks.shared.unlock(storage.pointer + offset)
            return .value(0)
        }
    }

    /// The storage and offset of the 4-byte lock word R1 points to.
    private static func lockWord(_ process: MimicCore.Process) throws(HelperFailure) -> (RegionStorage, Int) {
        let address = process.argument(1)
        if case .failure(let fault) = process.memory.resolve(address, size: 4, access: .write) { throw .memory(fault) }
        guard let (storage, offset) = process.memory.storage(containing: address) else {
            throw .message("no region holds the spin lock at 0x\(String(address, radix: 16))")
        }
        guard offset % 4 == 0, offset + 4 <= storage.count else {
            throw .message("the spin lock at 0x\(String(address, radix: 16)) is not an aligned 4-byte word")
        }
        return (storage, offset)
    }

    // MARK: Iteration

    /// `long HelperID.forEachMapElem(map, callback_fn, callback_ctx, flags)`: calls
    /// `callback_fn(map, &key, &value, callback_ctx)` for each element of a hash, LRU hash,
    /// array or per-CPU map (per-CPU: the process's vCPU value) until it returns non-zero;
    /// returns the number of elements visited, or `-EINVAL` for non-zero flags. Keys are passed
    /// in a read-only scratch region; elements deleted during the walk are skipped.
    static func forEach(_ emulator: LinuxEmulator) -> Helper {
        Helper(.forEachMapElem) { [weak emulator] process throws(HelperFailure) in
            let map = try map(emulator, process)
            guard process.argument(4) == 0 else { return result(.invalid) }
            guard let slot = ProgramCallbacks.functionSlot(process, fromAddress: process.argument(2)) else {
                throw .message("r2 = 0x\(String(process.argument(2), radix: 16)) is not a function of the program")
            }
            let elements: [(key: [UInt8], address: UInt64)]
            let stillThere: ([UInt8]) -> Bool
            switch map {
            case let hash as HashTableMap:
                elements = hash.elements(cpu: process.vCPU)
                stillThere = hash.contains(key:)
            case let array as ArrayMap:
                elements = array.keys.compactMap { key in
                    array.lookupAddress(key: key, cpu: process.vCPU).map { (key, $0) }
                }
                stillThere = { _ in true }
            default:
                throw .message("\(HelperID.forEachMapElem.name) does not support \(map.attributes.type.cName) maps")
            }
            let keyStorage = RegionStorage(count: max(map.attributes.keySize, 1))
            let keyAddress: UInt64
            do {
                keyAddress = try process.memory.map(keyStorage, name: "for_each key of \(map.name)", kind: .readOnly)
            } catch {
                throw .message("cannot map the key buffer: \(error)")
            }
            defer { try? process.memory.unmap(keyAddress) }
            var visited: UInt64 = 0
            for element in elements where stillThere(element.key) {
                keyStorage.write(element.key, at: 0)
                visited += 1
                let stop: UInt64
                do throws(ExecutionError) {
                    stop = try ProgramCallbacks.call(
                        process, at: slot, arguments: [map.handle, keyAddress, element.address, process.argument(3)])
                } catch {
                    throw .callback(error)
                }
                if stop != 0 { break }
            }
            return .value(visited)
        }
    }
}

/// The spin locks a process holds; whatever it still holds when it goes away is released.
final class HeldSpinLocks {
    // One process's list, used by one thread at a time (see `LinuxProcessState`).
    @exclusivity(unchecked) private var locks: [(storage: RegionStorage, offset: Int)] = []

    /// Whether no lock is held.
    var isEmpty: Bool { locks.isEmpty }

    func holds(_ storage: RegionStorage, _ offset: Int) -> Bool {
        locks.contains { $0.storage === storage && $0.offset == offset }
    }

    func add(_ storage: RegionStorage, _ offset: Int) { locks.append((storage, offset)) }

    /// Forgets a held lock; false if it was not held.
    func remove(_ storage: RegionStorage, _ offset: Int) -> Bool {
        guard let index = locks.firstIndex(where: { $0.storage === storage && $0.offset == offset }) else {
            return false
        }
        locks.remove(at: index)
        return true
    }

    /// Releases every held lock (the process is being reset, or goes away).
    @inline(__always) // the common case, no lock held, is one test in the reset
    func releaseAll() {
        if !locks.isEmpty { unlockAll() }
    }

    private func unlockAll() {
        for lock in locks { SpinLocks.shared.unlock(lock.storage.pointer + lock.offset) }
        locks.removeAll()
    }

    deinit { releaseAll() }
}
