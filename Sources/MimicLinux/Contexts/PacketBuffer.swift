import MimicCore
import MimicMemory

/// The live packet of an `xdp_md` or `__sk_buff` context: one buffer in the 32-bit window
/// (headroom, metadata, packet data, tailroom) and the context struct whose `data`, `data_end`
/// and `data_meta` fields point into it.
///
/// Packet helpers (`bpf_xdp_adjust_head`, `bpf_skb_store_bytes`, ...) change it and keep the
/// context fields in step, as the kernel's `bpf_compute_data_pointers` does. When a helper needs
/// more room than the buffer has, the buffer is re-mapped at a new base address, so packet
/// pointers the program kept from before the call fault — the kernel's verifier likewise
/// invalidates them after such calls.
public final class PacketBuffer {
    /// Which context owns the buffer.
    public enum Kind: String, Sendable, Equatable {
        case xdp = "xdp_md"
        case skb = "sk_buff"
    }

    public let kind: Kind
    // `@exclusivity(unchecked)` on the fields every packet touches: a buffer belongs to one
    // process, used by one thread at a time, and none is lent out `inout` across a call that
    // could reach it again (the same reasoning as `Process`).
    /// The bytes of the whole buffer (headroom, metadata, data, tailroom). Not public: host code
    /// reads the bytes (`data`, `dataInPlace`, `frame`), so nothing outside this module keeps the
    /// storage, which `refill` relies on (`mayRefill`).
    @exclusivity(unchecked) private(set) var storage: RegionStorage
    /// The VM address of the buffer's first byte (below 2^32).
    @exclusivity(unchecked) public private(set) var base: UInt64
    /// Offsets in `storage`: metadata start, data start, data end.
    @exclusivity(unchecked) public internal(set) var metaOffset: Int
    @exclusivity(unchecked) public internal(set) var dataOffset: Int
    @exclusivity(unchecked) public internal(set) var dataEndOffset: Int
    /// Bytes at the start of an XDP buffer that `bpf_xdp_adjust_head/meta` may not move `data`
    /// or `data_meta` into: the kernel keeps them for `struct xdp_frame` (40 bytes on 64-bit).
    @exclusivity(unchecked) public private(set) var reserved: Int
    /// The context struct (`struct xdp_md` / `struct __sk_buff`) and its storage.
    @exclusivity(unchecked) public private(set) var contextAddress: UInt64
    @exclusivity(unchecked) private(set) var contextStorage: RegionStorage
    @exclusivity(unchecked) private(set) var regionName: String
    /// The name of the context whose attach last set the buffer up (`XDPContext.name`; empty
    /// for other contexts): `rearm` compares it with the next context's, which names the region
    /// the same way, instead of formatting and comparing region names.
    @exclusivity(unchecked) var attachName = ""

    // sk_buff state the kernel keeps outside the packet bytes.
    /// `skb->protocol` as a host-order EtherType (0x0800 for IPv4).
    @exclusivity(unchecked) public internal(set) var protocolType: UInt16 = 0 { didSet { skbStateSet = true } }
    /// The hardware-accelerated VLAN tag (`skb->vlan_*`), which `bpf_skb_vlan_push` sets.
    @exclusivity(unchecked) public internal(set) var vlanTag: (proto: UInt16, tci: UInt16)? { didSet { skbStateSet = true } }
    /// Bytes from `data` to the network header (the MAC header length, 14 for Ethernet).
    @exclusivity(unchecked) public internal(set) var networkOffset: Int = 0 { didSet { skbStateSet = true } }
    /// Bytes of the frame's Ethernet header kept before the metadata when an sk_buff starts at
    /// the network header (`SKBContext.DataStart.network`); 0 otherwise.
    @exclusivity(unchecked) public internal(set) var pulledLength: Int = 0 { didSet { skbStateSet = true } }
    /// Whether `skb->hash` holds a hash (the kernel's `sw_hash` / `l4_hash` bits): set by
    /// `bpf_set_hash` and `bpf_get_hash_recalc`, cleared by `bpf_set_hash_invalid`.
    @exclusivity(unchecked) public internal(set) var hashIsValid = false { didSet { skbStateSet = true } }
    /// `skb->ip_summed == CHECKSUM_UNNECESSARY` (else `CHECKSUM_NONE`, a test run's state) and
    /// `skb->csum_level`, which `bpf_csum_level` changes.
    @exclusivity(unchecked) public internal(set) var checksumUnnecessary = false { didSet { skbStateSet = true } }
    @exclusivity(unchecked) public internal(set) var checksumLevel = 0 { didSet { skbStateSet = true } }
    /// Whether one of the sk_buff fields above was set since the buffer was made or last
    /// cleared for a new packet: an XDP buffer's stay as made, so its rearm (`rearm`) tests this
    /// once instead of clearing each.
    @exclusivity(unchecked) var skbStateSet = false

    /// The frame: the pulled Ethernet header (if any) and the packet data.
    public var frame: [UInt8] { storage.bytes(in: max(0, metaOffset - pulledLength)..<metaOffset) + data }

    init(
        kind: Kind, storage: RegionStorage, base: UInt64, metaOffset: Int, dataOffset: Int, dataEndOffset: Int,
        reserved: Int, contextAddress: UInt64, contextStorage: RegionStorage, regionName: String
    ) {
        self.kind = kind
        self.storage = storage
        self.base = base
        self.metaOffset = metaOffset
        self.dataOffset = dataOffset
        self.dataEndOffset = dataEndOffset
        self.reserved = reserved
        self.contextAddress = contextAddress
        self.contextStorage = contextStorage
        self.regionName = regionName
    }

    /// The packet data (`data` ..< `data_end`).
    public var data: [UInt8] { storage.bytes(in: dataOffset..<dataEndOffset) }
    /// The packet data in place, without a copy: valid until the buffer is changed or reused
    /// (the next helper call or reset). One call for host code in other modules, which would
    /// make a dynamic exclusivity check on each stored property it read.
    public var dataInPlace: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage.pointer + dataOffset, count: dataEndOffset - dataOffset)
    }
    /// The metadata area (`data_meta` ..< `data`).
    public var metadata: [UInt8] { storage.bytes(in: metaOffset..<dataOffset) }
    /// The packet length in bytes.
    public var length: Int { dataEndOffset - dataOffset }
    /// The VM addresses of `data`, `data_end` and `data_meta`.
    public var dataAddress: UInt64 { base + UInt64(dataOffset) }
    public var dataEndAddress: UInt64 { base + UInt64(dataEndOffset) }
    public var metaAddress: UInt64 { base + UInt64(metaOffset) }
    /// Free bytes before the metadata and after the data.
    public var headroom: Int { metaOffset }
    public var tailroom: Int { storage.count - dataEndOffset }

    /// Maps a fresh buffer of `headroom + bytes + tailroom` in the 32-bit window.
    static func map(
        _ bytes: [UInt8], headroom: Int, tailroom: Int, name: String,
        into process: MimicCore.Process
    ) throws(SetupError) -> (RegionStorage, UInt64) {
        let mapped = bytes.withUnsafeBytes { bytes in
            Result { () throws(SetupError) in
                try map(bytes, headroom: headroom, tailroom: tailroom, name: name, reusing: nil, into: process)
            }
        }
        return try mapped.get()
    }

    /// `map` of bytes in place (a memory-mapped capture's packet).
    static func map(
        _ bytes: UnsafeRawBufferPointer, headroom: Int, tailroom: Int, name: String,
        into process: MimicCore.Process
    ) throws(SetupError) -> (RegionStorage, UInt64) {
        try map(bytes, headroom: headroom, tailroom: tailroom, name: name, reusing: nil, into: process)
    }

    /// Spare capacity given to packet storage that is being reused, so the next packets of a
    /// capture (up to an Ethernet frame plus the usual headroom) fit it without a new allocation.
    static let reusableCapacity = 2048

    /// `map`, with the bytes of `spare` (a previous buffer's storage, mapped nowhere and held by
    /// nobody else) when they are big enough: the packet is copied in and the rest cleared, so the
    /// buffer reads exactly as a fresh one. It is mapped at a new address all the same (the window
    /// rotates), so pointers into the previous packet fault.
    private static func map(
        _ bytes: UnsafeRawBufferPointer, headroom: Int, tailroom: Int, name: String, reusing spare: RegionStorage?,
        into process: MimicCore.Process
    ) throws(SetupError) -> (RegionStorage, UInt64) {
        let total = headroom + bytes.count + tailroom
        guard headroom >= 0, tailroom >= 0, total <= AddressSpace.lowWindowLimit else {
            throw .message(
                "the \(name) buffer (\(headroom) + \(bytes.count) + \(tailroom) bytes) does not fit the 32-bit window of \(AddressSpace.lowWindowLimit) bytes"
            )
        }
        let storage: RegionStorage
        if let spare, spare.reuse(count: total) {
            storage = spare
            storage.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: headroom)
            (storage.pointer + headroom + bytes.count).initializeMemory(as: UInt8.self, repeating: 0, count: tailroom)
        } else {
            // Reuse under way but this packet bigger than the spare: leave room for the next.
            let capacity = spare != nil ? max(total, reusableCapacity) : total
            do {
                storage = try budgeted(count: total, capacity: capacity, for: "the \(name) buffer", in: process)
            } catch {
                throw .message(error.description)
            }
        }
        if let source = bytes.baseAddress, !bytes.isEmpty {
            (storage.pointer + headroom).copyMemory(from: source, byteCount: bytes.count)
        }
        do {
            return (storage, try process.memory.map(storage, name: name, placement: .low32))
        } catch {
            throw .message("cannot map the \(name) buffer: \(error)")
        }
    }

    /// Makes this buffer — the previous run's (`LinuxProcessState.sparePacket`), of the context's
    /// kind, held by nobody else (the caller checks both) — the buffer of a new packet: it reads
    /// exactly as a new buffer (headroom and tailroom zeroed, the context struct zeroed, the
    /// sk_buff state cleared) and is mapped at new addresses, so pointers into the previous packet
    /// and context fault; the caller then sets the context fields, as for a new one.
    ///
    /// The common case, a process reset per packet: both storages are refilled in place and their
    /// regions, retired by the reset (their slots kept the storages), are renewed in place
    /// (`AddressSpace.mapAgain`). A storage something else may hold (`mayRefill`), or too small,
    /// is replaced; a region that cannot be mapped again (renamed, or no reset retired it) is
    /// mapped anew.
    func refill(
        packet bytes: UnsafeRawBufferPointer, headroom: Int, tailroom: Int, reserved: Int, regionName: String,
        contextName: String, contextKind: RegionKind, contextSize: Int, into process: MimicCore.Process
    ) throws(SetupError) {
        let memory = process.memory // read once for both maps
        let total = headroom + bytes.count + tailroom
        if headroom >= 0, tailroom >= 0, total <= AddressSpace.lowWindowLimit,
            Self.mayRefill(&storage), storage.reuse(count: total)
        {
            // The common case, the storage refilled in place (as `map(reusing:)` does, without
            // handing the storage reference in and out).
            let pointer = storage.pointer
            pointer.initializeMemory(as: UInt8.self, repeating: 0, count: headroom)
            if let source = bytes.baseAddress, !bytes.isEmpty {
                (pointer + headroom).copyMemory(from: source, byteCount: bytes.count)
            }
            (pointer + headroom + bytes.count).initializeMemory(as: UInt8.self, repeating: 0, count: tailroom)
            let previous = base
            // Borrowed (`self` holds it): no reference count around the call.
            if regionName == self.regionName,
                let renewed = Unmanaged.passUnretained(storage)._withUnsafeGuaranteedRef({
                    memory.mapAgain($0, retiredFrom: previous)
                })
            {
                base = renewed
            } else {
                do {
                    base = try memory.map(storage, name: regionName, placement: .low32)
                } catch {
                    throw .message("cannot map the \(regionName) buffer: \(error)")
                }
            }
        } else {
            let packetSpare: RegionStorage? = Self.mayRefill(&storage) ? storage : nil
            (storage, base) = try Self.map(
                bytes, headroom: headroom, tailroom: tailroom, name: regionName,
                reusing: packetSpare, into: process)
        }
        var renewedContext: UInt64?
        if contextStorage.count == contextSize, Self.mayRefill(&contextStorage) {
            contextStorage.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: contextSize)
            let previous = contextAddress
            renewedContext = Unmanaged.passUnretained(contextStorage)._withUnsafeGuaranteedRef {
                memory.mapAgain($0, retiredFrom: previous)
            }
        } else {
            do {
                contextStorage = try Self.budgeted(count: contextSize, for: "the \(contextName) struct", in: process)
            } catch {
                throw .message(error.description)
            }
        }
        if let renewedContext {
            contextAddress = renewedContext
        } else {
            do {
                contextAddress = try memory.map(contextStorage, name: contextName, kind: contextKind)
            } catch {
                throw .message("cannot map the \(contextName) struct: \(error)")
            }
        }
        metaOffset = headroom
        dataOffset = headroom
        dataEndOffset = headroom + bytes.count
        self.reserved = reserved
        if self.regionName != regionName { self.regionName = regionName }
        clearSKBState()
    }

    /// The sk_buff fields as a new buffer has them.
    @inline(__always)
    private func clearSKBState() {
        protocolType = 0
        vlanTag = nil
        networkOffset = 0
        pulledLength = 0
        hashIsValid = false
        checksumUnnecessary = false
        checksumLevel = 0
        skbStateSet = false // after the clears, whose `didSet`s set it again
    }

    /// The kernel's `XDP_PACKET_HEADROOM`, every captured packet's headroom: `rearm` zeroes
    /// this many bytes in line.
    static let usualHeadroom = 256

    /// `refill` for `Process.reset(context:)`'s quick path: this buffer — the one the previous
    /// reset's context attached, still mapped where it put it, held by nobody else (the caller
    /// checks that), with an `xdp_md` struct — made the buffer of a new packet with both regions
    /// renewed in place (`Process.renewAttachedRegions`), at the addresses `refill` would give
    /// them. Its bytes read as `refill` leaves them, and the whole `xdp_md` is written with these
    /// indexes (as the attach's `storeXDPContext`). False, changing nothing, when a storage is
    /// lent (`RegionStorage.isLent`: host code may hold it), the packet does not fit the
    /// storage's capacity, the struct is not an `xdp_md`'s 24 bytes, or the region would be
    /// renamed (`attachName`): then the reset takes its general path (`refill`).
    @inline(__always) // into the XDP context's `rearm`, its one caller
    func rearm(
        packet bytes: UnsafeRawBufferPointer, headroom: Int, tailroom: Int, reserved: Int, name: String,
        ingressIfindex: UInt32, rxQueueIndex: UInt32, egressIfindex: UInt32, into process: MimicCore.Process
    ) -> Bool {
        // The storages' fields read borrowed (`self` holds both): a read through the stored
        // reference would retain and release it around each.
        let (pointer, capacity) = Unmanaged.passUnretained(storage)._withUnsafeGuaranteedRef { ($0.pointer, $0.capacity) }
        let (contextPointer, contextCount) = Unmanaged.passUnretained(contextStorage)._withUnsafeGuaranteedRef {
            ($0.pointer, $0.count)
        }
        let total = headroom &+ bytes.count &+ tailroom
        guard headroom >= 0, tailroom >= 0, total <= capacity, contextCount == 24, name == attachName else {
            return false
        }
        // Borrowed (`self` holds both): no reference count around the call.
        let base = base
        let contextAddress = contextAddress
        let renewal = Unmanaged.passUnretained(storage)._withUnsafeGuaranteedRef { storage in
            Unmanaged.passUnretained(contextStorage)._withUnsafeGuaranteedRef { contextStorage in
                process.renewAttachedRegions(storage, at: base, count: total, contextStorage, at: contextAddress)
            }
        }
        guard let (renewed, renewedContext) = renewal else { return false }
        if headroom == Self.usualHeadroom {
            // A constant count: zeroed with sixteen 16-byte stores in line, not a `memset` call.
            pointer.initializeMemory(as: UInt8.self, repeating: 0, count: Self.usualHeadroom)
        } else {
            pointer.initializeMemory(as: UInt8.self, repeating: 0, count: headroom)
        }
        if let source = bytes.baseAddress, !bytes.isEmpty {
            (pointer + headroom).copyMemory(from: source, byteCount: bytes.count)
        }
        if tailroom > 0 {
            (pointer + headroom + bytes.count).initializeMemory(as: UInt8.self, repeating: 0, count: tailroom)
        }
        self.base = renewed
        self.contextAddress = renewedContext
        metaOffset = headroom
        dataOffset = headroom
        dataEndOffset = headroom + bytes.count
        self.reserved = reserved
        // The sk_buff state, as `refill` clears it, when a helper set it.
        if skbStateSet { clearSKBState() }
        Self.storeXDPContext(
            at: contextPointer, base: renewed, dataOffset: headroom, dataEndOffset: headroom + bytes.count,
            metaOffset: headroom, ingressIfindex: ingressIfindex, rxQueueIndex: rxQueueIndex,
            egressIfindex: egressIfindex)
        return true
    }

    /// Whether `refill` may write `storage` (the buffer's or its context struct's) for a new
    /// packet: nothing but this buffer — which the caller found held by nobody else — and the
    /// address spaces that mapped it can reach it. Either no address space handed it out
    /// (`RegionStorage.isLent`; the buffer does not make it public), so the only other
    /// references are those slots', which the reset retired (they keep it, to renew it in place:
    /// `AddressSpace.retireAll(except:)`), or nothing else holds it at all.
    @inline(__always)
    private static func mayRefill(_ storage: inout RegionStorage) -> Bool {
        !storage.isLent || isKnownUniquelyReferenced(&storage)
    }

    /// New zeroed storage charged to the VM's memory budget (a packet, a context struct).
    static func budgeted(
        count: Int, capacity: Int? = nil, for purpose: String,
        in process: MimicCore.Process
    ) throws(MemoryBudgetError) -> RegionStorage {
        try RegionStorage(count: count, capacity: capacity, charging: process.vm.memoryBudget, for: purpose)
    }

    /// Makes sure there are at least `head` free bytes before the metadata and `tail` after the
    /// data, re-mapping the buffer (at a new base address) when it is too small.
    func ensureRoom(head: Int, tail: Int, in process: MimicCore.Process) throws(HelperFailure) {
        guard headroom < head || tailroom < tail else { return }
        let extraHead = max(0, head - headroom)
        let newCount = storage.count + extraHead + max(0, tail - tailroom)
        guard newCount <= AddressSpace.lowWindowLimit else {
            throw .message("the packet would grow beyond the 32-bit window's \(AddressSpace.lowWindowLimit) bytes")
        }
        let grown: RegionStorage
        do {
            grown = try Self.budgeted(count: newCount, for: "the grown \(regionName) buffer", in: process)
        } catch {
            throw .message(error.description)
        }
        grown.write(storage.bytes, at: extraHead)
        do {
            try process.memory.unmap(base)
            base = try process.memory.map(grown, name: regionName, placement: .low32)
        } catch {
            throw .message("cannot re-map the packet buffer: \(error)")
        }
        storage = grown
        metaOffset += extraHead
        dataOffset += extraHead
        dataEndOffset += extraHead
    }

    /// Replaces `removing` bytes at `data + offset` with `inserting`, moving the bytes before
    /// `offset` towards or away from the head, so the bytes after the span stay where they are:
    /// the shape of the kernel's header pushes and pops (`skb_push` / `skb_pull` + `memmove`).
    /// The metadata area is dropped, as pushes and pops in the kernel do for an sk_buff.
    func replaceAtHead(offset: Int, removing: Int, inserting: [UInt8], in process: MimicCore.Process)
        throws(HelperFailure)
    {
        let delta = inserting.count - removing
        if delta > 0 { try ensureRoom(head: delta, tail: 0, in: process) }
        let prefix = storage.bytes(in: dataOffset..<dataOffset + offset)
        let newData = dataOffset - delta
        storage.write(prefix + inserting, at: newData)
        dataOffset = newData
        metaOffset = newData
    }

    /// Writes `data`, `data_end`, `data_meta` (and for `__sk_buff`: `len`, `protocol`, the VLAN
    /// fields) into the context struct, and points `process.packet` at the data.
    func syncContext(_ process: MimicCore.Process) {
        switch kind {
        case .xdp:
            storeU32(UInt32(truncatingIfNeeded: dataAddress), at: 0)
            storeU32(UInt32(truncatingIfNeeded: dataEndAddress), at: 4)
            storeU32(UInt32(truncatingIfNeeded: metaAddress), at: 8)
        case .skb:
            storeU32(UInt32(length), at: SKBLayout.len)
            storeU32(UInt32(protocolType.bigEndian), at: SKBLayout.protocol)
            storeU32(vlanTag == nil ? 0 : 1, at: SKBLayout.vlanPresent)
            storeU32(UInt32(vlanTag?.tci ?? 0), at: SKBLayout.vlanTCI)
            storeU32(UInt32((vlanTag?.proto ?? 0).bigEndian), at: SKBLayout.vlanProto)
            storeU32(UInt32(truncatingIfNeeded: dataAddress), at: SKBLayout.data)
            storeU32(UInt32(truncatingIfNeeded: dataEndAddress), at: SKBLayout.dataEnd)
            storeU32(UInt32(truncatingIfNeeded: metaAddress), at: SKBLayout.dataMeta)
            process.packet = PacketBounds(address: dataAddress, length: length)
        }
    }

    /// Writes all six fields of an `xdp_md` context struct: `data`, `data_end`, `data_meta` (as
    /// `syncContext` does) and the three given ones, with one bounds check (nothing is written to
    /// a struct shorter than `xdp_md`'s 24 bytes, as `storeU32` ignores offsets outside it).
    @inline(__always) // into the XDP attach, once per packet
    func storeXDPContext(ingressIfindex: UInt32, rxQueueIndex: UInt32, egressIfindex: UInt32) {
        guard contextStorage.count >= 24 else { return }
        Self.storeXDPContext(
            at: contextStorage.pointer, base: base, dataOffset: dataOffset, dataEndOffset: dataEndOffset,
            metaOffset: metaOffset, ingressIfindex: ingressIfindex, rxQueueIndex: rxQueueIndex,
            egressIfindex: egressIfindex)
    }

    /// The six fields of an `xdp_md` at `pointer` (24 bytes) for a buffer at `base` with these
    /// offsets.
    @inline(__always)
    private static func storeXDPContext(
        at pointer: UnsafeMutableRawPointer, base: UInt64, dataOffset: Int, dataEndOffset: Int, metaOffset: Int,
        ingressIfindex: UInt32, rxQueueIndex: UInt32, egressIfindex: UInt32
    ) {
        pointer.storeBytes(
            of: UInt32(truncatingIfNeeded: base &+ UInt64(truncatingIfNeeded: dataOffset)).littleEndian, as: UInt32.self
        )
        pointer.storeBytes(
            of: UInt32(truncatingIfNeeded: base &+ UInt64(truncatingIfNeeded: dataEndOffset)).littleEndian,
            toByteOffset: 4, as: UInt32.self)
        pointer.storeBytes(
            of: UInt32(truncatingIfNeeded: base &+ UInt64(truncatingIfNeeded: metaOffset)).littleEndian,
            toByteOffset: 8, as: UInt32.self)
        pointer.storeBytes(of: ingressIfindex.littleEndian, toByteOffset: 12, as: UInt32.self)
        pointer.storeBytes(of: rxQueueIndex.littleEndian, toByteOffset: 16, as: UInt32.self)
        pointer.storeBytes(of: egressIfindex.littleEndian, toByteOffset: 20, as: UInt32.self)
    }

    /// Stores a little-endian u32 in the context struct (an offset outside it is ignored; the
    /// callers' offsets are fixed fields of the struct). No allocation: contexts set several
    /// fields per packet.
    func storeU32(_ value: UInt32, at offset: Int) {
        guard offset >= 0, offset <= contextStorage.count - 4 else { return }
        contextStorage.pointer.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self)
    }

    /// The little-endian u32 at `offset` of the context struct (0 outside it).
    func loadU32(at offset: Int) -> UInt32 {
        guard offset >= 0, offset <= contextStorage.count - 4 else { return 0 }
        return UInt32(littleEndian: contextStorage.pointer.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
}
