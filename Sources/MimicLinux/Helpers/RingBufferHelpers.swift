import MimicCore
import MimicMemory

/// `HelperID.ringbufOutput`, `_reserve`, `_submit`, `_discard` and `_query`.
enum RingBufferHelpers {
    static func all(for emulator: LinuxEmulator) -> [Helper] {
        [
            output(emulator), reserve(emulator), commit(emulator, discard: false), commit(emulator, discard: true),
            query(emulator),
        ]
    }

    /// `long HelperID.ringbufOutput(ringbuf, data, size, flags)`: 0, `-EINVAL` for flags
    /// other than `BPF_RB_NO_WAKEUP` / `BPF_RB_FORCE_WAKEUP`, `-EAGAIN` without room.
    static func output(_ emulator: LinuxEmulator) -> Helper {
        Helper(.ringbufOutput) { [weak emulator] process throws(HelperFailure) in
            let ring = try MapHelpers.map(emulator, process, as: RingBufferMap.self, "a BPF_MAP_TYPE_RINGBUF")
            let size = process.argument(3)
            let flags = process.argument(4)
            guard flags & ~UInt64(3) == 0 else { return MapHelpers.result(.invalid) }
            guard size <= RingBufferMap.maxRecordSize, size + 8 <= ring.query(RingBufferMap.Query.ringSize.rawValue)
            else {
                return MapHelpers.result(.tryAgain)
            }
            let data = try MapHelpers.read(process, process.argument(2), count: Int(size))
            return MapHelpers.result(ring.output(data, flags: flags))
        }
    }

    /// `void *HelperID.ringbufReserve(ringbuf, size, flags)`: the address of the record's
    /// data in the ring, or NULL.
    static func reserve(_ emulator: LinuxEmulator) -> Helper {
        Helper(.ringbufReserve) { [weak emulator] process throws(HelperFailure) in
            let ring = try MapHelpers.map(emulator, process, as: RingBufferMap.self, "a BPF_MAP_TYPE_RINGBUF")
            return .value(ring.reserve(size: process.argument(2), flags: process.argument(3)) ?? 0)
        }
    }

    /// `void HelperID.ringbufSubmit(data, flags)` / `void HelperID.ringbufDiscard(data, flags)`
    /// (133): commits a reserved record. A pointer that is not a reserved record stops the
    /// program (the kernel's verifier guarantees one).
    static func commit(_ emulator: LinuxEmulator, discard: Bool) -> Helper {
        Helper(discard ? .ringbufDiscard : .ringbufSubmit) { [weak emulator] process throws(HelperFailure) in
            let address = process.argument(1)
            guard commit(emulator, process, record: address, discard: discard) else {
                throw .message("0x\(String(address, radix: 16)) is not a reserved ring buffer record")
            }
            return .value(0)
        }
    }

    /// Submits or discards the reserved record at `address` in whichever ring buffer holds it;
    /// false if it is not a reserved record.
    static func commit(_ emulator: LinuxEmulator?, _ process: MimicCore.Process, record address: UInt64, discard: Bool)
        -> Bool
    {
        guard let emulator, let (storage, _) = process.memory.storage(containing: address),
            let ring = emulator.allMaps.lazy.compactMap({ $0 as? RingBufferMap }).first(where: {
                $0.storage === storage
            })
        else { return false }
        return ring.commit(address: address, discard: discard)
    }

    /// `u64 HelperID.ringbufQuery(ringbuf, flags)`.
    static func query(_ emulator: LinuxEmulator) -> Helper {
        Helper(.ringbufQuery) { [weak emulator] process throws(HelperFailure) in
            let ring = try MapHelpers.map(emulator, process, as: RingBufferMap.self, "a BPF_MAP_TYPE_RINGBUF")
            return .value(ring.query(process.argument(2)))
        }
    }
}

/// `HelperID.perfEventOutput`.
enum PerfEventHelpers {
    static func all(for emulator: LinuxEmulator) -> [Helper] { [output(emulator)] }

    /// `BPF_F_INDEX_MASK` and `BPF_F_CTXLEN_MASK`.
    static let indexMask: UInt64 = 0xFFFF_FFFF
    static let contextLengthMask: UInt64 = 0xF_FFFF << 32

    /// `long HelperID.perfEventOutput(ctx, map, flags, data, size)`: appends a record to the
    /// perf buffer of the CPU the event at `flags & BPF_F_INDEX_MASK` is bound to
    /// (`BPF_F_CURRENT_CPU` selects the process's vCPU). For packet contexts (`xdp_md` and
    /// `__sk_buff`, the kernel's `bpf_xdp_event_output` and `bpf_skb_event_output`), `flags >> 32`
    /// bytes of the packet from `data` are appended after the record's data
    /// (`BPF_F_CTXLEN_MASK`), `-EFAULT` if the packet is shorter; other programs may not set
    /// them. Other flag bits are `-EINVAL`; errors of the map as `PerfEventArrayMap.output`
    /// describes.
    static func output(_ emulator: LinuxEmulator) -> Helper {
        Helper(.perfEventOutput) { [weak emulator] process throws(HelperFailure) in
            let map = try MapHelpers.map(
                emulator, process, argument: 2, as: PerfEventArrayMap.self,
                "a BPF_MAP_TYPE_PERF_EVENT_ARRAY")
            let flags = process.argument(3)
            let contextLength = (flags & contextLengthMask) >> 32
            let packet = LinuxProcessState.of(process)?.packet
            let allowed = indexMask | (packet != nil ? contextLengthMask : 0)
            guard flags & ~allowed == 0 else { return MapHelpers.result(.invalid) }
            let size = process.argument(5)
            guard size <= UInt64(Int32.max) else { return MapHelpers.result(.invalid) }
            var data = try MapHelpers.read(process, process.argument(4), count: Int(size))
            if contextLength > 0, let packet {
                guard contextLength <= UInt64(packet.length) else { return MapHelpers.result(.fault) }
                data += try MapHelpers.read(process, packet.dataAddress, count: Int(contextLength))
            }
            return MapHelpers.result(map.output(data, index: flags & indexMask, cpu: process.vCPU))
        }
    }
}
