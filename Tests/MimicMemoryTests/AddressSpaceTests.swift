import Testing
import MimicMemory

/// Loads through the fast path: the translation table's host pointer, little-endian.
private func fastLoad(_ space: AddressSpace, _ address: UInt64, size: Int) -> UInt64? {
    guard let p = space.table.pointer(forReading: address, size: UInt64(size)) else { return nil }
    var value: UInt64 = 0
    for i in 0..<size { value |= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) << (8 * i) }
    return value
}

/// Stores through the fast path; false if the table refuses.
private func fastStore(_ space: AddressSpace, _ value: UInt64, at address: UInt64, size: Int) -> Bool {
    guard let p = space.table.pointer(forWriting: address, size: UInt64(size)) else { return false }
    for i in 0..<size { p.storeBytes(of: UInt8(truncatingIfNeeded: value >> (8 * i)), toByteOffset: i, as: UInt8.self) }
    return true
}

/// The fault `body` throws, or nil.
/// Maps `packet` in the 32-bit window and `context` read-only, as an XDP attach maps its buffer
/// and `xdp_md`; returns their bases.
private func mapPacketAndContext(_ packet: RegionStorage, _ context: RegionStorage, in space: AddressSpace) throws
    -> (UInt64, UInt64)
{
    (try space.map(packet, name: "packet", placement: .low32), try space.map(context, name: "xdp_md", kind: .readOnly))
}

private func fault(_ body: () throws -> Void) -> MemoryFault? {
    do {
        try body()
        return nil
    } catch {
        return error as? MemoryFault
    }
}

private let sizes = [1, 2, 4, 8]

@Suite("AddressSpace: mapping")
struct MappingTests {
    @Test func mapListsAndUnmapRemoves() throws {
        let space = AddressSpace()
        let storage = RegionStorage(count: 32)
        let base = try space.map(storage, name: "data")
        #expect(space.regions.map(\.name) == ["data"])
        #expect(space.region(containing: base)?.name == "data")
        #expect(space.region(containing: base + 31)?.name == "data")
        #expect(space.region(containing: base + 32) == nil)
        let found = try #require(space.storage(containing: base + 5))
        #expect(found.storage === storage)
        #expect(found.offset == 5)

        try space.unmap(base)
        #expect(space.regions.isEmpty)
        #expect(space.region(containing: base) == nil)
        #expect(fastLoad(space, base, size: 1) == nil)
        #expect(throws: AddressSpaceError.notMapped(base)) { try space.unmap(base) }
    }

    @Test func unmapAllKeepsTheSnapshotsRegionsOnly() throws {
        let space = AddressSpace()
        let shared = try space.map(RegionStorage(count: 8), name: "shared")
        let stack = try space.map(RegionStorage(count: 8), name: "stack")
        let replaced = try space.map(RegionStorage(count: 8), name: "replaced")
        let kept = space.snapshot()
        // After the snapshot: one region unmapped and its slot reused, a new one, the window.
        try space.unmap(replaced)
        let reused = try space.map(RegionStorage(count: 8), name: "reused")
        #expect(reused >> 32 & 0xFFFF == replaced >> 32 & 0xFFFF, "the freed slot is reused, with a new generation")
        _ = try space.map(RegionStorage(count: 8), name: "context")
        _ = try space.map(RegionStorage(count: 8), name: "packet", placement: .low32)

        space.unmapAll(except: kept)
        #expect(space.regions.map(\.name) == ["shared", "stack"])
        #expect(space.regions.map(\.base) == [shared, stack])
    }

    /// `retireAll` (a process's reset): a retired region faults and is not listed at once; mapping
    /// the same storage again gives it a new address (the window's as unmapping would, the same
    /// slot's next generation elsewhere); `releaseRetired` unmaps the rest.
    @Test func retiredRegionsFaultAndComeBackAtNewAddresses() throws {
        let space = AddressSpace()
        let shared = try space.map(RegionStorage(count: 8), name: "shared")
        let kept = space.snapshot()
        let packet = RegionStorage(count: 64)
        let context = RegionStorage(count: 24)
        let other = RegionStorage(count: 8)
        let (oldPacket, oldContext) = try mapPacketAndContext(packet, context, in: space)
        let oldOther = try space.map(other, name: "other")
        // What unmapping and mapping again would give the window.
        let twin = AddressSpace()
        let twinFirst = try twin.map(RegionStorage(count: 64), name: "packet", placement: .low32)
        try twin.unmap(twinFirst)
        let twinNext = try twin.map(RegionStorage(count: 64), name: "packet", placement: .low32)

        space.retireAll(except: kept)
        #expect(space.regions.map(\.name) == ["shared"])
        for address in [oldPacket, oldContext, oldOther] {
            #expect(fastLoad(space, address, size: 1) == nil)
            #expect(space.region(containing: address) == nil)
            #expect(fault { _ = try space.load(address, size: 1) }?.reason == .unmapped)
            #expect(throws: AddressSpaceError.notMapped(address)) { try space.unmap(address) }
        }

        let (newPacket, newContext) = try mapPacketAndContext(packet, context, in: space)
        space.releaseRetired()
        #expect(newPacket == twinNext && newPacket != oldPacket)
        #expect(newContext >> 32 & 0xFFFF == oldContext >> 32 & 0xFFFF && newContext >> 48 == (oldContext >> 48) + 1)
        #expect(space.regions.map(\.name) == ["packet", "shared", "xdp_md"])
        #expect(space.region(containing: newContext)?.kind == .readOnly)
        #expect(fastStore(space, 7, at: newPacket, size: 1) && packet.pointer.load(as: UInt8.self) == 7)
        #expect(!fastStore(space, 7, at: newContext, size: 1))
        #expect(fastLoad(space, oldContext, size: 1) == nil && fastLoad(space, oldPacket, size: 1) == nil)
        #expect(fault { _ = try space.load(oldOther, size: 1) }?.reason == .unmapped)
        // The slot of the region nobody mapped again is free: the next region takes it.
        let next = try space.map(RegionStorage(count: 8), name: "next")
        #expect(next >> 32 & 0xFFFF == oldOther >> 32 & 0xFFFF && next != oldOther)
        #expect(space.region(containing: shared)?.name == "shared")
    }

    /// `mapAgain(_:retiredFrom:)`, a revival by the old address: the same new addresses as `map`
    /// gives (the window's next base, the slot's next generation), the record's name and kind
    /// kept and its size the storage's count now; nil, changing nothing, for an address not
    /// retired from, another storage, an address never retired (or already revived), storage
    /// grown past the window, and an address space with a broker (which retires nothing).
    @Test func mappedAgainFromTheRetiredAddress() throws {
        let space = AddressSpace()
        let kept = space.snapshot()
        let twin = AddressSpace()
        let twinKept = twin.snapshot()
        let packet = RegionStorage(count: 64, capacity: 128)
        let context = RegionStorage(count: 24)
        let twinPacket = RegionStorage(count: 64, capacity: 128)
        let twinContext = RegionStorage(count: 24)
        var addresses = try mapPacketAndContext(packet, context, in: space)
        var twinAddresses = try mapPacketAndContext(twinPacket, twinContext, in: twin)
        for round in 0..<20 {
            space.retireAll(except: kept)
            twin.retireAll(except: twinKept)
            let count = 40 + round * 4
            #expect(packet.reuse(count: count) && twinPacket.reuse(count: count))
            // Wrong address, wrong storage: nothing happens.
            #expect(space.mapAgain(packet, retiredFrom: addresses.0 + 1) == nil)
            #expect(space.mapAgain(context, retiredFrom: addresses.0) == nil)
            #expect(space.mapAgain(packet, retiredFrom: addresses.1) == nil)
            let newPacket = try #require(space.mapAgain(packet, retiredFrom: addresses.0))
            let newContext = try #require(space.mapAgain(context, retiredFrom: addresses.1))
            #expect(space.mapAgain(packet, retiredFrom: addresses.0) == nil, "revived once")
            space.releaseRetired()
            let twinNew = try mapPacketAndContext(twinPacket, twinContext, in: twin)
            twin.releaseRetired()
            #expect(newPacket == twinNew.0 && newContext == twinNew.1)
            #expect(newPacket != addresses.0 && newContext != addresses.1)
            #expect(space.regions == twin.regions)
            #expect(space.region(containing: newPacket)?.size == count)
            #expect(fastLoad(space, newPacket + UInt64(count) - 1, size: 1) != nil)
            #expect(fastLoad(space, newPacket + UInt64(count), size: 1) == nil)
            #expect(!fastStore(space, 1, at: newContext, size: 1) && fastLoad(space, newContext, size: 1) != nil)
            for old in [addresses.0, addresses.1, twinAddresses.0] where old != newPacket {
                #expect(fastLoad(space, old, size: 1) == nil)
            }
            addresses = (newPacket, newContext)
            twinAddresses = twinNew
        }
        // Never retired (mapped, not retired): nil.
        #expect(space.mapAgain(packet, retiredFrom: addresses.0) == nil)
        // Grown past the window: not revived; `map` refuses it as well.
        space.retireAll(except: kept)
        let big = RegionStorage(count: 8, capacity: AddressSpace.lowWindowLimit + 1)
        #expect(space.mapAgain(big, retiredFrom: addresses.0) == nil)
        space.releaseRetired()
        #expect(space.regions.isEmpty)
        // A broker's address space retires nothing: `mapAgain` always declines.
        let host = AddressSpace()
        let mirror = AddressSpace()
        let broker = MirroringTests.Broker(host: host)
        mirror.broker = broker
        let mirrorKept = mirror.snapshot()
        let mirrored = try mirror.map(context, name: "xdp_md", kind: .readOnly)
        mirror.retireAll(except: mirrorKept)
        #expect(mirror.mapAgain(context, retiredFrom: mirrored) == nil)
        #expect(mirror.regions.isEmpty && host.regions.isEmpty && broker.released == [mirrored])
    }

    /// A retired window or slot that something else is mapped into is released first; storage
    /// that grew past the window is not revived there.
    @Test func retiredSlotsGiveWayToOtherRegions() throws {
        let space = AddressSpace()
        let kept = space.snapshot()
        let first = try space.map(RegionStorage(count: 64), name: "packet", placement: .low32)
        let slotBase = try space.map(RegionStorage(count: 8), name: "context")
        space.retireAll(except: kept)
        let second = try space.map(RegionStorage(count: 32), name: "packet", placement: .low32)
        #expect(second != first && space.regions.map(\.name) == ["packet"])
        let again = try space.map(RegionStorage(count: 8), name: "mirrored", at: slotBase + (1 << 48))
        space.releaseRetired()
        #expect(space.regions.map(\.name) == ["packet", "mirrored"])
        #expect(space.region(containing: again)?.name == "mirrored")
        #expect(fastLoad(space, slotBase, size: 1) == nil)
    }

    /// Retiring is in place (the slot keeps its record and its storage): over many resets the
    /// window gets the addresses unmapping and mapping would give, every earlier address of both
    /// regions faults (table, checked path, queries), a revived region takes its new name and
    /// kind, and the storage is held while retired and not lent (`RegionStorage.isLent`, which
    /// `PacketBuffer` looks at before it reuses its buffer) until a query hands it out.
    @Test func retiringInPlaceOverManyResets() throws {
        let space = AddressSpace()
        let shared = try space.map(RegionStorage(count: 8), name: "shared")
        let kept = space.snapshot()
        var packet = RegionStorage(count: 64)
        let context = RegionStorage(count: 24)
        let twin = AddressSpace()
        var twinAddress = try twin.map(RegionStorage(count: 64), name: "packet", placement: .low32)
        let first = try mapPacketAndContext(packet, context, in: space)
        var old = [first.0, first.1]
        #expect(old[0] == twinAddress)
        for round in 0..<40 {
            space.retireAll(except: kept)
            let unique = isKnownUniquelyReferenced(&packet)
            #expect(!unique, "round \(round): a retired region's storage is kept")
            #expect(packet.isLent == (round > 0) && !context.isLent)
            #expect(space.regions.map(\.name) == ["shared"])
            try twin.unmap(twinAddress)
            twinAddress = try twin.map(RegionStorage(count: 64), name: "packet", placement: .low32)
            let name = round.isMultiple(of: 2) ? "xdp_md" : "renamed"
            let kind: RegionKind = round.isMultiple(of: 2) ? .plain : .readOnly
            let newPacket = try space.map(packet, name: "packet", placement: .low32)
            let newContext = try space.map(context, name: name, kind: kind)
            space.releaseRetired()
            #expect(newPacket == twinAddress)
            #expect(space.region(containing: newContext)?.name == name)
            #expect(space.region(containing: newContext)?.kind == kind)
            #expect(fastStore(space, 1, at: newContext, size: 1) == (kind == .plain))
            #expect(space.storage(containing: newPacket + 3)?.storage === packet)
            let shared = isKnownUniquelyReferenced(&packet)
            #expect(!shared)
            for address in old {
                #expect(fastLoad(space, address, size: 1) == nil)
                #expect(space.region(containing: address) == nil)
                // In the window an old packet's address lies outside the new packet; elsewhere
                // the slot's generation moved on: "unmapped".
                let reason = fault { _ = try space.load(address, size: 1) }?.reason
                #expect(reason == (address >> 32 == 0 ? .outOfBounds : .unmapped))
                #expect(throws: AddressSpaceError.notMapped(address)) { try space.unmap(address) }
            }
            old += [newPacket, newContext]
            if old.count > 10 { old.removeFirst(2) }
        }
        #expect(space.regions.map(\.name).sorted() == ["packet", "renamed", "shared"])
        #expect(space.region(containing: shared)?.name == "shared")
    }

    /// `renew(_:at:count:_:at:)` over many rounds, the same pair again and again (after the first
    /// renewal nothing moved, so the next one trusts the epoch instead of checking the slots) and
    /// after what disarms that — another region mapped and unmapped, a stale base or storage, a
    /// lent storage, a broker — gives exactly the addresses, sizes and table rows of a twin space that
    /// retires both regions and maps them again (`mapAgain`), and every earlier address faults.
    @Test func renewingThePairAgainAsRetiringAndMapping() throws {
        let space = AddressSpace()
        let twin = AddressSpace()
        try space.map(RegionStorage(count: 8), name: "shared")
        try twin.map(RegionStorage(count: 8), name: "shared")
        let kept = twin.snapshot()
        let packet = RegionStorage(count: 64, capacity: 128)
        let context = RegionStorage(count: 24)
        let twinPacket = RegionStorage(count: 64, capacity: 128)
        let twinContext = RegionStorage(count: 24)
        var bases = try mapPacketAndContext(packet, context, in: space)
        var twinBases = try mapPacketAndContext(twinPacket, twinContext, in: twin)
        var old: [UInt64] = []
        for round in 0..<30 {
            let count = [64, 64, 100, 0, 128, 40][round % 6]
            switch round {
            case 7: // another region mapped and unmapped: the epoch moved, the checked path runs
                try space.unmap(try space.map(RegionStorage(count: 4), name: "other"))
                try twin.unmap(try twin.map(RegionStorage(count: 4), name: "other"))
            case 12: // a stale base or another pair is refused, changing nothing
                #expect(space.renew(packet, at: old[0], count: count, context, at: bases.1) == nil)
                #expect(space.renew(RegionStorage(count: 8), at: bases.0, count: 8, context, at: bases.1) == nil)
            default: break
            }
            let renewed = try #require(space.renew(packet, at: bases.0, count: count, context, at: bases.1))
            twin.retireAll(except: kept)
            #expect(twinPacket.reuse(count: count))
            twinBases = (
                try #require(twin.mapAgain(twinPacket, retiredFrom: twinBases.0)),
                try #require(twin.mapAgain(twinContext, retiredFrom: twinBases.1))
            )
            twin.releaseRetired()
            #expect(renewed == twinBases, "round \(round)")
            old += [bases.0, bases.1]
            bases = renewed
            #expect(packet.count == count)
            #expect(space.regions == twin.regions)
            #expect(fastStore(space, 7, at: bases.0 + UInt64(max(count, 1) - 1), size: 1) == (count > 0))
            #expect(fastLoad(space, bases.0 + UInt64(count), size: 1) == nil)
            #expect(fastLoad(space, bases.1 + 23, size: 1) != nil && fastStore(space, 1, at: bases.1, size: 1) == false)
            for address in old.suffix(8) {
                #expect(fastLoad(space, address, size: 1) == nil)
                #expect(space.region(containing: address) == nil)
            }
        }
        // A broker set since the last renewal must hear of every move: renewing declines.
        let brokered = AddressSpace()
        let brokeredPacket = RegionStorage(count: 16)
        let brokeredContext = RegionStorage(count: 24)
        var pair = try mapPacketAndContext(brokeredPacket, brokeredContext, in: brokered)
        for _ in 0..<2 {
            pair = try #require(brokered.renew(brokeredPacket, at: pair.0, count: 16, brokeredContext, at: pair.1))
        }
        brokered.broker = Mirror(into: AddressSpace())
        #expect(brokered.renew(brokeredPacket, at: pair.0, count: 16, brokeredContext, at: pair.1) == nil)
        #expect(brokered.region(containing: pair.0)?.size == 16)
        // A storage handed out (lent) is no longer renewed in place, trusted or not.
        _ = space.storage(containing: bases.1)
        #expect(space.renew(packet, at: bases.0, count: 64, context, at: bases.1) == nil)
        #expect(space.region(containing: bases.0)?.size == packet.count)
    }

    /// A retired region's storage lives while its slot is retired, even when its owner lets it
    /// go, and goes when `releaseRetired` frees the slot; another storage mapped meanwhile gets
    /// another slot. An address space copied while regions are retired sees none of them and
    /// frees their slots as the original does.
    @Test func retiredStorageIsKeptUntilReleased() throws {
        let space = AddressSpace()
        let kept = space.snapshot()
        var storage: RegionStorage? = RegionStorage(count: 32)
        weak var retiredStorage = storage
        let first = try space.map(storage!, name: "context")
        space.retireAll(except: kept)
        storage = nil
        #expect(retiredStorage != nil)
        let copy = AddressSpace(copying: space)
        #expect(copy.regions.isEmpty && copy.region(containing: first) == nil)
        let next = RegionStorage(count: 16)
        let second = try space.map(next, name: "context")
        #expect(second >> 32 & 0xFFFF != first >> 32 & 0xFFFF)
        space.releaseRetired()
        #expect(retiredStorage != nil) // the copy's retired slot holds it still
        copy.releaseRetired()
        #expect(retiredStorage == nil)
        #expect(second != first)
        #expect(space.region(containing: second)?.size == 16)
        #expect(fastLoad(space, first, size: 1) == nil)
        #expect(space.regions.count == 1)
        let reused = try copy.map(RegionStorage(count: 8), name: "other")
        #expect(reused >> 32 & 0xFFFF == first >> 32 & 0xFFFF && reused != first)
        #expect(copy.regions.map(\.name) == ["other"])
    }

    /// A storage is lent (`RegionStorage.isLent`) once the address space hands it to code that
    /// may keep it — a query of its storage, a copy of the address space, a broker — and not
    /// for mapping, retiring, renewing or unmapping.
    @Test func storageIsLentWhenHandedOut() throws {
        let space = AddressSpace()
        let kept = space.snapshot()
        let queried = RegionStorage(count: 8)
        let copied = RegionStorage(count: 8)
        let plain = RegionStorage(count: 8)
        let queriedBase = try space.map(queried, name: "queried")
        var plainBase = try space.map(plain, name: "plain", placement: .low32)
        #expect(!queried.isLent && !plain.isLent)
        #expect(space.storage(containing: queriedBase + 4)?.storage === queried)
        #expect(queried.isLent && !plain.isLent)
        space.retireAll(except: kept)
        plainBase = try #require(space.mapAgain(plain, retiredFrom: plainBase))
        space.releaseRetired()
        try space.unmap(plainBase)
        #expect(!plain.isLent)
        try space.map(copied, name: "copied")
        _ = AddressSpace(copying: space)
        #expect(copied.isLent && !plain.isLent)
        let mirrored = AddressSpace()
        mirrored.broker = Mirror(into: AddressSpace())
        let placed = RegionStorage(count: 8)
        try mirrored.map(placed, name: "placed")
        #expect(placed.isLent)
    }

    /// A broker that maps regions in another address space.
    final class Mirror: RegionBroker {
        let other: AddressSpace
        init(into other: AddressSpace) { self.other = other }
        func place(_ storage: RegionStorage, name: String, kind: RegionKind, placement: Placement)
            throws(AddressSpaceError) -> UInt64
        {
            try other.map(storage, name: name, kind: kind, placement: placement)
        }
        func release(_ base: UInt64) { try? other.unmap(base) }
    }

    @Test func unmapNeedsTheBaseAddress() throws {
        let space = AddressSpace()
        let base = try space.map(RegionStorage(count: 16), name: "data")
        #expect(throws: AddressSpaceError.notMapped(base + 1)) { try space.unmap(base + 1) }
        #expect(throws: AddressSpaceError.notMapped(0)) { try space.unmap(0) }
        #expect(space.regions.count == 1)
    }

    @Test func allocateGivesZeroedMappedStorage() throws {
        let space = AddressSpace()
        let (address, storage) = try space.allocate(size: 24, name: "heap")
        #expect(storage.count == 24)
        #expect(storage.bytes == [UInt8](repeating: 0, count: 24))
        #expect(try space.load(address + 16, size: 8) == 0)
        #expect(space.region(containing: address) == RegionInfo(name: "heap", kind: .plain, base: address, size: 24))
    }

    @Test func regionsAtDistinctAddresses() throws {
        let space = AddressSpace()
        let a = try space.map(RegionStorage(bytes: [1]), name: "a")
        let b = try space.map(RegionStorage(bytes: [2]), name: "b")
        #expect(a != b)
        #expect(try space.load(a, size: 1) == 1)
        #expect(try space.load(b, size: 1) == 2)
    }

    @Test func regionTooLarge() throws {
        let space = AddressSpace()
        let windowLimit = AddressSpace.lowWindowLimit
        #expect(throws: AddressSpaceError.regionTooLarge(name: "big", size: windowLimit + 1, limit: windowLimit)) {
            try space.allocate(size: windowLimit + 1, name: "big", placement: .low32)
        }
        let limit = AddressSpace.regionLimit
        #expect(throws: AddressSpaceError.regionTooLarge(name: "huge", size: limit + 1, limit: limit)) {
            try space.allocate(size: limit + 1, name: "huge")
        }
        #expect(throws: AddressSpaceError.self) { try space.allocate(size: -1, name: "negative") }
        #expect(space.regions.isEmpty)
        // Mapping existing storage checks the window limit too.
        let storage = RegionStorage(count: windowLimit + 1)
        #expect(throws: AddressSpaceError.regionTooLarge(name: "big", size: windowLimit + 1, limit: windowLimit)) {
            try space.map(storage, name: "big", placement: .low32)
        }
    }

    @Test func thousandRegionsMapAndTranslate() throws {
        let space = AddressSpace()
        var bases: [UInt64] = []
        for i in 0..<1000 {
            bases.append(try space.map(RegionStorage(bytes: leBytes(UInt64(i) * 0x1_0001, count: 8)), name: "r\(i)"))
        }
        #expect(Set(bases).count == 1000)
        #expect(space.regions.count == 1000)
        let table = space.table
        for (i, base) in bases.enumerated() {
            let p = try #require(table.pointer(forReading: base, size: 8))
            #expect(p.loadUnaligned(as: UInt64.self) == UInt64(i) * 0x1_0001)
            #expect(table.pointer(forReading: base + 8, size: 1) == nil)
            #expect(try space.load(base, size: 8) == UInt64(i) * 0x1_0001)
            #expect(space.region(containing: base + 7)?.name == "r\(i)")
        }
        // Unmapping half keeps the others reachable.
        for base in bases[..<500] { try space.unmap(base) }
        for base in bases[..<500] { #expect(fastLoad(space, base, size: 1) == nil) }
        for (i, base) in bases.enumerated().dropFirst(500) {
            #expect(fastLoad(space, base, size: 8) == UInt64(i) * 0x1_0001)
        }
    }
}

@Suite("AddressSpace: typed access")
struct AccessTests {
    @Test(arguments: sizes)
    func littleEndianThroughTheTable(size: Int) throws {
        let space = AddressSpace()
        let storage = RegionStorage(bytes: [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99])
        let base = try space.map(storage, name: "data")
        let expected: UInt64 =
            size == 8 ? 0x9988_7766_5544_3322 : (0x9988_7766_5544_3322 & ((1 << (8 * UInt64(size))) - 1))
        #expect(fastLoad(space, base + 1, size: size) == expected)
        #expect(try space.load(base + 1, size: size) == expected)

        #expect(fastStore(space, 0x0102_0304_0506_0708, at: base, size: size))
        #expect(storage.bytes(in: 0..<size) == Array([0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01][..<size]))
        #expect(storage.bytes(in: size..<9) == Array([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99][size...]))
    }

    @Test(arguments: sizes)
    func littleEndianThroughLoadAndStore(size: Int) throws {
        let space = AddressSpace()
        let storage = RegionStorage(count: 16)
        let base = try space.map(storage, name: "data")
        try space.store(0xF1E2_D3C4_B5A6_9788, at: base + 3, size: size)
        let bytes: [UInt8] = [0x88, 0x97, 0xA6, 0xB5, 0xC4, 0xD3, 0xE2, 0xF1]
        #expect(storage.bytes(in: 3..<(3 + size)) == Array(bytes[..<size]))
        #expect(storage.bytes(in: 0..<3) == [0, 0, 0])
        #expect(storage.bytes(in: (3 + size)..<16).allSatisfy { $0 == 0 })
        let mask: UInt64 = size == 8 ? .max : (1 << (8 * UInt64(size))) - 1
        #expect(try space.load(base + 3, size: size) == 0xF1E2_D3C4_B5A6_9788 & mask)
        #expect(fastLoad(space, base + 3, size: size) == 0xF1E2_D3C4_B5A6_9788 & mask)
    }

    @Test func readAndWriteBytes() throws {
        let space = AddressSpace()
        let storage = RegionStorage(count: 8)
        let base = try space.map(storage, name: "data")
        try space.write([1, 2, 3], at: base + 5)
        #expect(storage.bytes == [0, 0, 0, 0, 0, 1, 2, 3])
        #expect(try space.read(base + 4, count: 4) == [0, 1, 2, 3])
        #expect(try space.read(base + 8, count: 0) == [])
    }

    @Test func readCString() throws {
        let space = AddressSpace()
        let base = try space.map(RegionStorage(bytes: Array("hello\0world".utf8)), name: "strings")
        #expect(try space.readCString(base) == Array("hello".utf8))
        #expect(try space.readCString(base + 5) == [])
        #expect(try space.readCString(base, maxLength: 3) == Array("hel".utf8))
        // "world" has no terminator inside the region: reading runs off the end and faults.
        let error = fault { _ = try space.readCString(base + 6) }
        #expect(error?.reason == .outOfBounds)
        #expect(error?.address == base + 11)
        #expect(error?.access == .read)
        // From an unmapped address.
        #expect(fault { _ = try space.readCString(0) }?.reason == .unmapped)
    }
}

@Suite("AddressSpace: bounds")
struct BoundsTests {
    /// One plain region of 16 bytes, either anywhere or in the 32-bit window.
    static func region(_ placement: Placement) throws -> (AddressSpace, UInt64) {
        let space = AddressSpace()
        // Neighbours on both sides, so stray accesses could land in a mapped region.
        _ = try space.map(RegionStorage(count: 64), name: "before")
        let base = try space.map(RegionStorage(count: 16), name: "data", placement: placement)
        _ = try space.map(RegionStorage(count: 64), name: "after")
        return (space, base)
    }

    @Test(arguments: [Placement.anywhere, .low32], sizes)
    func lastBytesOkOnePastFaults(placement: Placement, size: Int) throws {
        let (space, base) = try Self.region(placement)
        let last = base + 16 - UInt64(size)
        #expect(fastLoad(space, last, size: size) != nil)
        #expect(fastStore(space, 0, at: last, size: size))
        _ = try space.load(last, size: size)

        #expect(fastLoad(space, last + 1, size: size) == nil)
        #expect(!fastStore(space, 0, at: last + 1, size: size))
        let error = fault { _ = try space.load(last + 1, size: size) }
        #expect(error?.reason == .outOfBounds)
        #expect(error?.region?.name == "data")
        #expect(fault { try space.store(0, at: last + 1, size: size) }?.access == .write)
        // One past the end, for any size.
        #expect(fastLoad(space, base + 16, size: size) == nil)
        #expect(fault { _ = try space.load(base + 16, size: size) } != nil)
    }

    @Test(arguments: [Placement.anywhere, .low32])
    func straddlingTheEndFaults(placement: Placement) throws {
        let (space, base) = try Self.region(placement)
        #expect(fastLoad(space, base + 12, size: 8) == nil)
        #expect(!fastStore(space, 0, at: base + 9, size: 8))
        #expect(fault { _ = try space.load(base + 15, size: 2) }?.reason == .outOfBounds)
        #expect(fault { try space.write([1, 2, 3, 4, 5], at: base + 12) }?.reason == .outOfBounds)
        #expect(fault { _ = try space.read(base, count: 17) }?.reason == .outOfBounds)
    }

    @Test(arguments: [Placement.anywhere, .low32], [(UInt64(1), 1), (1, 8), (4, 8), (8, 8), (7, 8), (1 << 20, 4)])
    func justBelowTheBaseFaults(placement: Placement, below: (distance: UInt64, size: Int)) throws {
        let (space, base) = try Self.region(placement)
        let address = base &- below.distance
        #expect(fastLoad(space, address, size: below.size) == nil)
        #expect(!fastStore(space, 0, at: address, size: below.size))
        let error = fault { _ = try space.load(address, size: below.size) }
        #expect(error != nil)
        #expect(fault { try space.store(0, at: address, size: below.size) } != nil)
    }

    @Test(arguments: [0, 1, 4, 8, 0x100, 0x1000, 0xFFF_FFFF] as [UInt64])
    func nullAndSmallIntegersAreUnmapped(address: UInt64) throws {
        let space = AddressSpace()
        _ = try space.map(RegionStorage(count: 64), name: "data")
        for size in sizes {
            #expect(fastLoad(space, address, size: size) == nil)
            #expect(!fastStore(space, 0, at: address, size: size))
            #expect(fault { _ = try space.load(address, size: size) }?.reason == .unmapped)
            #expect(fault { try space.store(1, at: address, size: size) }?.reason == .unmapped)
        }
        #expect(space.region(containing: address) == nil)
    }

    /// With a region in the 32-bit window, NULL and small integers must still be "unmapped":
    /// they are not an out-of-bounds access to the window's region.
    @Test(arguments: [0, 1, 8, 0x1000, 0xFFF_FFFF] as [UInt64])
    func nullIsUnmappedWhileTheWindowIsUsed(address: UInt64) throws {
        let space = AddressSpace()
        _ = try space.map(RegionStorage(count: 64), name: "packet", placement: .low32)
        #expect(fastLoad(space, address, size: 4) == nil)
        let error = fault { _ = try space.load(address, size: 4) }
        #expect(error?.reason == .unmapped)
        #expect(error?.region == nil)
        #expect(space.region(containing: address) == nil)
    }

    @Test func addressesOfOtherSlotsAndTagsFault() throws {
        let space = AddressSpace()
        let base = try space.map(RegionStorage(count: 16), name: "data")
        for address in [
            base ^ (1 << 48), base | (0xFFFF << 48), base + (1 << 32), base + (16 << 32), UInt64.max, UInt64.max - 7,
        ] {
            #expect(fastLoad(space, address, size: 1) == nil)
            #expect(fault { _ = try space.load(address, size: 1) } != nil)
        }
    }

    @Test func emptyRegionHasNoValidAddress() throws {
        let space = AddressSpace()
        let base = try space.map(RegionStorage(count: 0), name: "empty")
        #expect(fastLoad(space, base, size: 1) == nil)
        #expect(fault { _ = try space.load(base, size: 1) } != nil)
        #expect(try space.read(base, count: 0) == [])
    }
}

@Suite("AddressSpace: region kinds")
struct RegionKindTests {
    @Test(arguments: sizes)
    func readOnlyRefusesWritesAllowsReads(size: Int) throws {
        let space = AddressSpace()
        let storage = RegionStorage(bytes: [1, 2, 3, 4, 5, 6, 7, 8])
        let base = try space.map(storage, name: "rodata", kind: .readOnly)
        #expect(space.table.pointer(forWriting: base, size: UInt64(size)) == nil)
        #expect(fastLoad(space, base, size: size) != nil)
        #expect(
            try space.load(base, size: size) == 0x0807_0605_0403_0201
                & (size == 8 ? .max : (1 << (8 * UInt64(size))) - 1))
        let error = fault { try space.store(0xFF, at: base, size: size) }
        #expect(error?.reason == .readOnly)
        #expect(error?.access == .write)
        #expect(error?.region?.name == "rodata")
        #expect(fault { try space.write([0], at: base + 7) }?.reason == .readOnly)
        if case .failure(let f) = space.resolve(base, size: size, access: .write) {
            #expect(f.reason == .readOnly)
        } else {
            Issue.record("resolve allowed a write to a read-only region")
        }
        #expect(storage.bytes == [1, 2, 3, 4, 5, 6, 7, 8])
    }

    @Test func ringWrapsAround() throws {
        let space = AddressSpace()
        let storage = RegionStorage(count: 8)
        let base = try space.map(storage, name: "ring", kind: .ring)
        // Rings always take the slow path.
        #expect(space.table.pointer(forReading: base, size: 1) == nil)
        #expect(space.table.pointer(forWriting: base, size: 1) == nil)

        try space.store(0x4433_2211, at: base + 6, size: 4) // crosses the end
        #expect(storage.bytes == [0x33, 0x44, 0, 0, 0, 0, 0x11, 0x22])
        #expect(try space.load(base + 6, size: 4) == 0x4433_2211)
        // Offsets past the end wrap to the start.
        #expect(try space.load(base + 8, size: 2) == 0x4433)
        #expect(try space.load(base + 8 * 1000 + 6, size: 4) == 0x4433_2211)
        try space.write([9, 9, 9, 9, 9, 9, 9, 9, 7, 7], at: base + 3) // longer than the ring
        #expect(storage.bytes == [9, 9, 9, 7, 7, 9, 9, 9])
        #expect(try space.read(base + 3, count: 8) == [7, 7, 9, 9, 9, 9, 9, 9])
        // A read longer than the ring is refused before anything is allocated (its count may be
        // a program's: the elf fuzzer's `bpf_probe_read` of 3 GiB from a ring buffer).
        #expect(throws: MemoryFault.self) { try space.read(base + 3, count: 9) }
        #expect(throws: MemoryFault.self) { try space.read(base, count: 3 << 30) }
        #expect(space.region(containing: base + 100)?.name == "ring")
    }

    /// Host code gets an offset it can use with the storage: wrapped, inside the bytes.
    @Test func ringStorageOffsetIsWrapped() throws {
        let space = AddressSpace()
        let storage = RegionStorage(count: 8)
        let base = try space.map(storage, name: "ring", kind: .ring)
        for (address, offset) in [(base, 0), (base + 7, 7), (base + 10, 2), (base + 8 * 1000 + 5, 5)] {
            let found = try #require(space.storage(containing: address))
            #expect(found.storage === storage)
            #expect(found.offset == offset)
        }
        let empty = try space.map(RegionStorage(count: 0), name: "empty ring", kind: .ring)
        #expect(space.storage(containing: empty + 3) == nil)
    }

    @Test func storageIsSharedBetweenMappings() throws {
        let space = AddressSpace()
        let storage = RegionStorage(count: 8)
        let writable = try space.map(storage, name: "rw")
        let readable = try space.map(storage, name: "ro", kind: .readOnly)
        try space.store(0xAB, at: writable + 2, size: 1)
        #expect(try space.load(readable + 2, size: 1) == 0xAB)
        #expect(fault { try space.store(0, at: readable + 2, size: 1) }?.reason == .readOnly)
    }
}

@Suite("AddressSpace: stale addresses and the 32-bit window")
struct StaleAddressTests {
    @Test func reusedSlotDoesNotReviveOldAddresses() throws {
        let space = AddressSpace()
        let old = try space.map(RegionStorage(bytes: [1, 2, 3, 4, 5, 6, 7, 8]), name: "old")
        try space.unmap(old)
        let new = try space.map(RegionStorage(bytes: [9, 9, 9, 9, 9, 9, 9, 9]), name: "new")
        #expect((new >> 32) & 0xFFFF == (old >> 32) & 0xFFFF, "the slot is reused")
        #expect(new != old)
        for size in sizes {
            #expect(fastLoad(space, old, size: size) == nil)
            #expect(!fastStore(space, 0, at: old, size: size))
            let error = fault { _ = try space.load(old, size: size) }
            #expect(error?.reason == .unmapped)
            #expect(error?.region == nil)
        }
        #expect(space.region(containing: old) == nil)
        #expect(try space.load(new, size: 8) == 0x0909_0909_0909_0909)
        #expect(throws: AddressSpaceError.notMapped(old)) { try space.unmap(old) }
    }

    @Test func manyReusesKeepOldAddressesDead() throws {
        let space = AddressSpace()
        var old: [UInt64] = []
        for _ in 0..<100 {
            let base = try space.map(RegionStorage(count: 8), name: "r")
            old.append(base)
            try space.unmap(base)
        }
        let current = try space.map(RegionStorage(count: 8), name: "current")
        #expect(!old.contains(current))
        for base in old { #expect(fastLoad(space, base, size: 8) == nil) }
    }

    @Test func lowWindowAddressesFit32Bits() throws {
        let space = AddressSpace()
        let base = try space.map(RegionStorage(count: 4096), name: "packet", placement: .low32)
        #expect(base < 1 << 32)
        #expect(base + 4096 <= 1 << 32)
        #expect(base >= 0x1000_0000, "small integers stay unmapped")
        #expect(try space.load(base + 4092, size: 4) == 0)
        // Other regions live above 4 GiB.
        let other = try space.map(RegionStorage(count: 16), name: "other")
        #expect(other >= 1 << 32)
    }

    @Test func lowWindowHoldsOneRegion() throws {
        let space = AddressSpace()
        _ = try space.map(RegionStorage(count: 16), name: "first", placement: .low32)
        #expect(throws: AddressSpaceError.lowWindowOccupied(by: "first")) {
            try space.map(RegionStorage(count: 16), name: "second", placement: .low32)
        }
        #expect(space.regions.map(\.name) == ["first"])
    }

    @Test func lowWindowMovesAfterUnmap() throws {
        let space = AddressSpace()
        let first = try space.map(RegionStorage(bytes: [1, 2, 3, 4]), name: "packet1", placement: .low32)
        try space.unmap(first)
        let second = try space.map(RegionStorage(bytes: [5, 6, 7, 8]), name: "packet2", placement: .low32)
        #expect(second != first)
        #expect(second < 1 << 32)
        for offset: UInt64 in 0..<4 {
            #expect(fastLoad(space, first + offset, size: 1) == nil)
            #expect(fault { _ = try space.load(first + offset, size: 1) } != nil)
        }
        #expect(try space.load(second, size: 4) == 0x0807_0605)
        #expect(throws: AddressSpaceError.notMapped(first)) { try space.unmap(first) }

        // Many packets in a row: no stale address of the last 100 reaches the current one.
        var old: [UInt64] = [first, second]
        try space.unmap(second)
        for _ in 0..<100 {
            let base = try space.map(RegionStorage(count: 1500), name: "p", placement: .low32)
            #expect(!old.contains(base))
            for stale in old.suffix(20) { #expect(fastLoad(space, stale, size: 1) == nil) }
            old.append(base)
            try space.unmap(base)
        }
    }

    @Test func largeWindowRegionsRotate() throws {
        let space = AddressSpace()
        let size = AddressSpace.lowWindowLimit
        var bases: Set<UInt64> = []
        for _ in 0..<4 {
            let (base, _) = try space.allocate(size: size, name: "big", placement: .low32)
            #expect(base + UInt64(size) <= 1 << 32)
            #expect(base >= 0x1000_0000)
            #expect(fastLoad(space, base + UInt64(size) - 8, size: 8) == 0)
            bases.insert(base)
            try space.unmap(base)
        }
        #expect(bases.count > 1)
    }
}

@Suite("AddressSpace: copies and faults")
struct CopyAndFaultTests {
    @Test func copySeesTheSameRegions() throws {
        let original = AddressSpace()
        let storage = RegionStorage(count: 8)
        let shared = try original.map(storage, name: "map:counters")
        let rodata = try original.map(RegionStorage(bytes: [42]), name: ".rodata", kind: .readOnly)

        let copy = AddressSpace(copying: original)
        #expect(copy.regions == original.regions)
        try copy.store(0x1234, at: shared, size: 2)
        #expect(try original.load(shared, size: 2) == 0x1234)
        #expect(fastLoad(original, shared, size: 2) == 0x1234)
        #expect(fastLoad(copy, shared, size: 2) == 0x1234)
        #expect(try copy.load(rodata, size: 1) == 42)
        #expect(fault { try copy.store(0, at: rodata, size: 1) }?.reason == .readOnly)

        // Mapping and unmapping in the copy leaves the original alone.
        let local = try copy.map(RegionStorage(count: 8), name: "stack")
        #expect(original.region(containing: local) == nil)
        #expect(fastLoad(original, local, size: 1) == nil)
        try copy.unmap(shared)
        #expect(try original.load(shared, size: 2) == 0x1234)
        #expect(original.regions.count == 2)
    }

    @Test func copyOfALargeSpace() throws {
        let original = AddressSpace()
        var bases: [UInt64] = []
        for i in 0..<100 { bases.append(try original.map(RegionStorage(bytes: [UInt8(i)]), name: "r\(i)")) }
        let copy = AddressSpace(copying: original)
        for (i, base) in bases.enumerated() { #expect(fastLoad(copy, base, size: 1) == UInt64(i)) }
        // New regions in the copy do not collide with the copied ones.
        let fresh = try copy.map(RegionStorage(bytes: [0xEE]), name: "fresh")
        #expect(!bases.contains(fresh))
        for (i, base) in bases.enumerated() { #expect(fastLoad(copy, base, size: 1) == UInt64(i)) }
    }

    @Test func faultDescriptionNamesEverything() throws {
        let space = AddressSpace()
        let base = try space.map(RegionStorage(count: 16), name: "packet")
        let read = try #require(fault { _ = try space.load(base + 12, size: 8) })
        let text = read.description
        #expect(text.contains("read"))
        #expect(text.contains("8 bytes"))
        #expect(text.contains("0x" + String(base + 12, radix: 16)))
        #expect(text.contains("packet"))
        #expect(text.contains("out of bounds"))

        let ro = try space.map(RegionStorage(count: 4), name: "rodata", kind: .readOnly)
        let write = try #require(fault { try space.store(1, at: ro + 1, size: 1) })
        #expect(write.description.contains("write"))
        #expect(write.description.contains("1 byte"))
        #expect(write.description.contains("rodata"))
        #expect(write.description.contains("read-only"))

        let null = try #require(fault { _ = try space.load(0, size: 4) })
        #expect(null.description.contains("0x0"))
        #expect(null.description.contains("no region mapped"))
    }

    @Test func errorDescriptions() {
        #expect(AddressSpaceError.lowWindowOccupied(by: "pkt").description.contains("pkt"))
        #expect(AddressSpaceError.regionTooLarge(name: "big", size: 10, limit: 5).description.contains("big"))
        #expect(AddressSpaceError.notMapped(0x1234).description.contains("0x1234"))
    }
}

private func leBytes(_ value: UInt64, count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}
