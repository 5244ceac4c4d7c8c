#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import MimicCore
import MimicLinux

/// A map in the kernel; its file descriptor is closed when the object goes away.
public final class KernelMap: Sendable {
    public let descriptor: KernelFileDescriptor
    /// What the map was created with. For maps of maps the kernel takes `innerMap`'s fd, not
    /// `attributes.innerMap`.
    public let attributes: MapAttributes
    /// For maps of maps: the map of the inner kind whose fd was passed as `inner_map_fd`.
    public let innerMap: KernelMap?

    init(descriptor: KernelFileDescriptor, attributes: MapAttributes, innerMap: KernelMap?) {
        self.descriptor = descriptor
        self.attributes = attributes
        self.innerMap = innerMap
    }

    /// Whether a value holds one copy per possible CPU when read from user space.
    public var isPerCPU: Bool {
        let type = attributes.type
        return type == .perCPUHash || type == .perCPUArray || type == .lruPerCPUHash || type == .perCPUCgroupStorage
    }

    /// The file descriptor (what `BPF_PSEUDO_MAP_FD` instructions name).
    public var fd: Int32 { descriptor.rawValue }

    /// The bytes of a value as user space reads and writes it: for per-CPU maps, one value
    /// (rounded up to 8 bytes) per possible CPU, CPU 0 first.
    public var userValueSize: Int {
        let size = attributes.valueSize
        return isPerCPU ? ((size + 7) & ~7) * KernelBPF.possibleCPUs : size
    }

    func checkKey(_ key: [UInt8]) throws(KernelError) {
        guard key.count == attributes.keySize else {
            throw KernelError.invalidArgument(
                "map \(attributes.name): key has \(key.count) bytes, the map's keys have \(attributes.keySize)")
        }
    }

    /// The value for `key` (`BPF_MAP_LOOKUP_ELEM`), or nil when there is none; `userValueSize` bytes.
    public func lookup(key: [UInt8]) throws(KernelError) -> [UInt8]? {
        try checkKey(key)
        var value = [UInt8](repeating: 0, count: max(1, userValueSize))
        let result: Result<Int32, KernelErrno> = key.withUnsafeBytes { keyBuffer in
            value.withUnsafeMutableBytes { valueBuffer in
                var attr = BPFAttributes(size: 32)
                attr.set32(0, UInt32(bitPattern: fd))
                attr.setPointer(8, keyBuffer.baseAddress)
                attr.setPointer(16, valueBuffer.baseAddress)
                return KernelBPF.call(.mapLookupElem, &attr)
            }
        }
        switch result {
        case .success: return Array(value.prefix(userValueSize))
        case .failure(let code) where code.rawValue == ENOENT: return nil
        case .failure(let code):
            throw KernelError.systemCall(
                command: KernelBPF.Command.mapLookupElem.name, errno: code.rawValue,
                detail: "reading map \(attributes.name)")
        }
    }

    /// Creates or replaces the value for `key` (`BPF_MAP_UPDATE_ELEM`); `value` must have
    /// `userValueSize` bytes. `flags`: 0 `BPF_ANY`, 1 `BPF_NOEXIST`, 2 `BPF_EXIST`.
    public func update(key: [UInt8], value: [UInt8], flags: UInt64 = 0) throws(KernelError) {
        try checkKey(key)
        guard value.count == userValueSize else {
            throw KernelError.invalidArgument(
                "map \(attributes.name): value has \(value.count) bytes, expected \(userValueSize)")
        }
        let result: Result<Int32, KernelErrno> = key.withUnsafeBytes { keyBuffer in
            value.withUnsafeBytes { valueBuffer in
                var attr = BPFAttributes(size: 32)
                attr.set32(0, UInt32(bitPattern: fd))
                attr.setPointer(8, keyBuffer.baseAddress)
                attr.setPointer(16, valueBuffer.baseAddress)
                attr.set64(24, flags)
                return KernelBPF.call(.mapUpdateElem, &attr)
            }
        }
        if case .failure(let code) = result {
            throw KernelError.systemCall(
                command: KernelBPF.Command.mapUpdateElem.name, errno: code.rawValue,
                detail: "writing map \(attributes.name)")
        }
    }

    /// Deletes the value for `key`; returns false when there was none.
    @discardableResult
    public func delete(key: [UInt8]) throws(KernelError) -> Bool {
        try checkKey(key)
        let result: Result<Int32, KernelErrno> = key.withUnsafeBytes { keyBuffer in
            var attr = BPFAttributes(size: 32)
            attr.set32(0, UInt32(bitPattern: fd))
            attr.setPointer(8, keyBuffer.baseAddress)
            return KernelBPF.call(.mapDeleteElem, &attr)
        }
        switch result {
        case .success: return true
        case .failure(let code) where code.rawValue == ENOENT: return false
        case .failure(let code):
            throw KernelError.systemCall(
                command: KernelBPF.Command.mapDeleteElem.name, errno: code.rawValue,
                detail: "deleting from map \(attributes.name)")
        }
    }

    /// The key after `key` (`BPF_MAP_GET_NEXT_KEY`; the first key when `key` is nil), nil at the end.
    public func nextKey(after key: [UInt8]?) throws(KernelError) -> [UInt8]? {
        if let key { try checkKey(key) }
        var next = [UInt8](repeating: 0, count: max(1, attributes.keySize))
        let result: Result<Int32, KernelErrno> = (key ?? []).withUnsafeBytes { keyBuffer in
            next.withUnsafeMutableBytes { nextBuffer in
                var attr = BPFAttributes(size: 32)
                attr.set32(0, UInt32(bitPattern: fd))
                attr.setPointer(8, key == nil ? nil : keyBuffer.baseAddress)
                attr.setPointer(16, nextBuffer.baseAddress)
                return KernelBPF.call(.mapGetNextKey, &attr)
            }
        }
        switch result {
        case .success: return Array(next.prefix(attributes.keySize))
        case .failure(let code) where code.rawValue == ENOENT: return nil
        case .failure(let code):
            throw KernelError.systemCall(
                command: KernelBPF.Command.mapGetNextKey.name, errno: code.rawValue,
                detail: "iterating map \(attributes.name)")
        }
    }

    /// Every key, in the kernel's iteration order (bounded by `max_entries`).
    public func keys() throws(KernelError) -> [[UInt8]] {
        var result: [[UInt8]] = []
        var cursor = try nextKey(after: nil)
        while let key = cursor, result.count <= attributes.maxEntries {
            result.append(key)
            cursor = try nextKey(after: key)
        }
        return result
    }

    /// Every entry, keys in iteration order.
    public func entries() throws(KernelError) -> [(key: [UInt8], value: [UInt8])] {
        var result: [(key: [UInt8], value: [UInt8])] = []
        for key in try keys() {
            if let value = try lookup(key: key) { result.append((key, value)) }
        }
        return result
    }

    /// Every entry, read `batchSize` at a time with `BPF_MAP_LOOKUP_BATCH` (one system call per
    /// batch instead of two per entry); for map types without batch operations (LPM tries:
    /// `ENOTSUPP`) it falls back to `entries()`. The kernel walks a hash map's buckets, so the
    /// cost is what the map holds plus a scan of its (empty) buckets inside the kernel.
    public func entriesInBatches(batchSize: Int = 1024) throws(KernelError) -> [(key: [UInt8], value: [UInt8])] {
        let keySize = attributes.keySize
        let valueSize = userValueSize
        var count = max(1, batchSize)
        var result: [(key: [UInt8], value: [UInt8])] = []
        var cursor: UInt32? = nil
        while true {
            var keys = [UInt8](repeating: 0, count: max(1, count * keySize))
            var values = [UInt8](repeating: 0, count: max(1, count * valueSize))
            var inBatch = cursor ?? 0
            var outBatch: UInt32 = 0
            var attr = BPFAttributes(size: 56)
            let outcome: Result<Int32, KernelErrno> = withUnsafeMutableBytes(of: &inBatch) { inBuffer in
                withUnsafeMutableBytes(of: &outBatch) { outBuffer in
                    keys.withUnsafeMutableBytes { keyBuffer in
                        values.withUnsafeMutableBytes { valueBuffer in
                            attr.setPointer(0, cursor == nil ? nil : UnsafeRawPointer(inBuffer.baseAddress))
                            attr.setPointer(8, outBuffer.baseAddress)
                            attr.setPointer(16, keyBuffer.baseAddress)
                            attr.setPointer(24, valueBuffer.baseAddress)
                            attr.set32(32, UInt32(count))
                            attr.set32(36, UInt32(bitPattern: fd))
                            return KernelBPF.call(.mapLookupBatch, &attr)
                        }
                    }
                }
            }
            var finished = false
            switch outcome {
            case .success:
                break
            case .failure(let code) where code.rawValue == ENOENT:
                finished = true // the last batch (possibly empty)
            case .failure(let code) where code.rawValue == ENOSPC && count < 1 << 20:
                count *= 2 // one bucket holds more elements than a batch: retry larger
                continue
            case .failure(let code)
            where cursor == nil && (code.rawValue == Errno.kernelNotSupported.rawValue || code.rawValue == EINVAL):
                return try entries()
            case .failure(let code):
                throw KernelError.systemCall(
                    command: KernelBPF.Command.mapLookupBatch.name, errno: code.rawValue,
                    detail: "reading map \(attributes.name) in batches")
            }
            let returned = min(Int(attr.get32(32)), count)
            for index in 0..<returned {
                result.append(
                    (
                        Array(keys[index * keySize..<(index + 1) * keySize]),
                        Array(values[index * valueSize..<(index + 1) * valueSize])
                    ))
            }
            if finished || result.count > attributes.maxEntries { return result }
            cursor = outBatch
        }
    }

    /// Makes the map read-only to user space (`BPF_MAP_FREEZE`), as libbpf does for `.rodata`.
    public func freeze() throws(KernelError) {
        var attr = BPFAttributes(size: 8)
        attr.set32(0, UInt32(bitPattern: fd))
        _ = try KernelBPF.check(.mapFreeze, &attr, "freezing map \(attributes.name)")
    }
}

/// What `BPF_PROG_TEST_RUN` reported.
public struct KernelTestRun: Sendable, Equatable {
    /// The program's return value: the low 32 bits of R0 (all the kernel reports).
    public var returnValue: UInt32
    /// The packet after the run (`data_out`).
    public var data: [UInt8]
    /// The context after the run (`ctx_out`), when one was passed in.
    public var context: [UInt8]?
    /// Mean run time of one repetition in nanoseconds, as the kernel measured it.
    public var durationNanoseconds: UInt32
}

/// A program loaded into the kernel; its file descriptor is closed when the object goes away.
public final class KernelProgram: Sendable {
    public let descriptor: KernelFileDescriptor
    public let name: String
    public let type: ProgramType
    /// The maps the program references, kept alive with it.
    public let maps: [KernelMap]

    init(descriptor: KernelFileDescriptor, name: String, type: ProgramType, maps: [KernelMap]) {
        self.descriptor = descriptor
        self.name = name
        self.type = type
        self.maps = maps
    }

    public var fd: Int32 { descriptor.rawValue }

    /// Runs the program on `data` (`BPF_PROG_TEST_RUN`) `repeat` times.
    ///
    /// XDP programs get the packet with the kernel's 256 bytes of headroom, ingress on the
    /// loopback device; tc (`sched_cls`) programs see it from the Ethernet header; socket filters
    /// from the network header (the kernel pulls the 14-byte Ethernet header first and puts a
    /// zeroed one back in `data`). `context` is an optional `struct xdp_md` / `struct __sk_buff`
    /// (`ctx_in`; the kernel accepts only some fields).
    public func testRun(data: [UInt8], context: [UInt8]? = nil, repeat count: Int = 1) throws(KernelError)
        -> KernelTestRun
    {
        try KernelBPF.requireAvailable()
        return try testRunUnchecked(data: data, context: context, repeat: count)
    }

    /// Runs a `BPF_PROG_TYPE_SYSCALL` program once with `context` as its `ctx_in`, the only
    /// input such a run takes (no data, no output buffers, no repeat); returns R0.
    public func testRunSyscall(context: [UInt8] = []) throws(KernelError) -> UInt32 {
        try KernelBPF.requireAvailable()
        let contextIn = context.isEmpty ? [0] : context
        let (result, attr): (Result<Int32, KernelErrno>, BPFAttributes) = contextIn.withUnsafeBytes { ctxInBuffer in
            var attr = BPFAttributes(size: 80)
            attr.set32(0, UInt32(bitPattern: fd))
            if !context.isEmpty {
                attr.set32(40, UInt32(context.count))
                attr.setPointer(48, ctxInBuffer.baseAddress)
            }
            let result = KernelBPF.call(.progTestRun, &attr)
            return (result, attr)
        }
        if case .failure(let code) = result {
            throw KernelError.systemCall(
                command: KernelBPF.Command.progTestRun.name, errno: code.rawValue,
                detail: "test-running syscall program \(name)")
        }
        return attr.get32(4)
    }

    /// Attaches a tracing program (fentry, fexit, fmod_ret, loaded with its `attach_btf_id`) to
    /// its function's trampoline (`BPF_RAW_TRACEPOINT_OPEN` without a name, as libbpf's
    /// `bpf_program__attach_trace`); it stays attached until the returned link is released.
    public func attachTracing() throws(KernelError) -> KernelFileDescriptor {
        try KernelBPF.requireAvailable()
        var attr = BPFAttributes(size: 24)
        attr.set32(8, UInt32(bitPattern: fd)) // raw_tracepoint.prog_fd; name stays NULL
        let link = try KernelBPF.check(.rawTracepointOpen, &attr, "attaching tracing program \(name)")
        return KernelFileDescriptor(link)
    }

    /// Runs the program once on `context` alone (`ctx_in` and `ctx_out`, no data), as
    /// `BPF_PROG_TEST_RUN` runs an sk_lookup program; returns R0 and `ctx_out`.
    public func testRunContextOnly(context: [UInt8]) throws(KernelError) -> KernelTestRun {
        try KernelBPF.requireAvailable()
        var contextOut = [UInt8](repeating: 0, count: max(1, context.count))
        let contextIn = context.isEmpty ? [0] : context
        let (result, attr): (Result<Int32, KernelErrno>, BPFAttributes) = contextIn.withUnsafeBytes { ctxInBuffer in
            contextOut.withUnsafeMutableBytes { ctxOutBuffer in
                var attr = BPFAttributes(size: 80)
                attr.set32(0, UInt32(bitPattern: fd))
                attr.set32(32, 1)
                attr.set32(40, UInt32(context.count))
                attr.set32(44, UInt32(context.count))
                attr.setPointer(48, ctxInBuffer.baseAddress)
                attr.setPointer(56, ctxOutBuffer.baseAddress)
                let result = KernelBPF.call(.progTestRun, &attr)
                return (result, attr)
            }
        }
        if case .failure(let code) = result {
            throw KernelError.systemCall(
                command: KernelBPF.Command.progTestRun.name, errno: code.rawValue,
                detail: "test-running program \(name) (\(type)) on a \(context.count)-byte context")
        }
        let ctxSize = min(Int(attr.get32(44)), contextOut.count)
        return KernelTestRun(
            returnValue: attr.get32(4), data: [], context: Array(contextOut.prefix(ctxSize)),
            durationNanoseconds: attr.get32(36))
    }

    func testRunUnchecked(data: [UInt8], context: [UInt8]? = nil, repeat count: Int = 1) throws(KernelError)
        -> KernelTestRun
    {
        guard count >= 1, count <= Int(UInt32.max) else {
            throw KernelError.invalidArgument("repeat count \(count) is outside 1...\(UInt32.max)")
        }
        var output = [UInt8](repeating: 0, count: data.count + 4096)
        var contextOut = [UInt8](repeating: 0, count: max(1, context?.count ?? 0))
        let input = data.isEmpty ? [0] : data
        let contextIn = context ?? [0]
        let (result, attr): (Result<Int32, KernelErrno>, BPFAttributes) = input.withUnsafeBytes { inBuffer in
            output.withUnsafeMutableBytes { outBuffer in
                contextIn.withUnsafeBytes { ctxInBuffer in
                    contextOut.withUnsafeMutableBytes { ctxOutBuffer in
                        var attr = BPFAttributes(size: 80)
                        attr.set32(0, UInt32(bitPattern: fd))
                        attr.set32(8, UInt32(data.count))
                        attr.set32(12, UInt32(outBuffer.count))
                        attr.setPointer(16, inBuffer.baseAddress)
                        attr.setPointer(24, outBuffer.baseAddress)
                        attr.set32(32, UInt32(count))
                        if let context {
                            attr.set32(40, UInt32(context.count))
                            attr.set32(44, UInt32(context.count))
                            attr.setPointer(48, ctxInBuffer.baseAddress)
                            attr.setPointer(56, ctxOutBuffer.baseAddress)
                        }
                        let result = KernelBPF.call(.progTestRun, &attr)
                        return (result, attr)
                    }
                }
            }
        }
        if case .failure(let code) = result {
            throw KernelError.systemCall(
                command: KernelBPF.Command.progTestRun.name, errno: code.rawValue,
                detail: "test-running program \(name) (\(type)) on \(data.count) bytes")
        }
        let outSize = min(Int(attr.get32(12)), output.count)
        let ctxSize = min(Int(attr.get32(44)), contextOut.count)
        return KernelTestRun(
            returnValue: attr.get32(4), data: Array(output.prefix(outSize)),
            context: context == nil ? nil : Array(contextOut.prefix(ctxSize)),
            durationNanoseconds: attr.get32(36))
    }
}
