import Testing
import MimicMemory

/// Mapping at a given address, brokers and borrowed storage: how a plugin's address space mirrors
/// its host's.
@Suite struct MirroringTests {
    /// Maps into `host` first, and records what it was told.
    final class Broker: RegionBroker {
        let host: AddressSpace
        var released: [UInt64] = []
        init(host: AddressSpace) { self.host = host }

        func place(_ storage: RegionStorage, name: String, kind: RegionKind, placement: Placement)
            throws(AddressSpaceError) -> UInt64
        {
            try host.map(storage, name: name, kind: kind, placement: placement)
        }

        func release(_ base: UInt64) {
            released.append(base)
            try? host.unmap(base)
        }
    }

    @Test func brokeredRegionsHaveTheSameAddressOnBothSides() throws {
        let host = AddressSpace()
        // The host has regions of its own first, so its next slots are not the mirror's.
        try host.map(RegionStorage(count: 16), name: "stack")
        try host.map(RegionStorage(count: 16), name: "other")
        let mirror = AddressSpace()
        let broker = Broker(host: host)
        mirror.broker = broker

        let values = RegionStorage(bytes: [1, 2, 3, 4])
        let address = try mirror.map(values, name: "values")
        #expect(host.region(containing: address)?.name == "values")
        #expect(mirror.region(containing: address)?.name == "values")
        try host.write([9], at: address + 1)
        #expect(try mirror.read(address, count: 4) == [1, 9, 3, 4], "one storage, two address spaces")

        let packet = try mirror.map(RegionStorage(count: 64), name: "packet", placement: .low32)
        #expect(packet < 1 << 32)
        #expect(host.region(containing: packet)?.name == "packet")

        try mirror.unmap(address)
        #expect(broker.released == [address])
        #expect(host.region(containing: address) == nil)
    }

    @Test func mappingAtAnAddressChecksIt() throws {
        let space = AddressSpace()
        let storage = RegionStorage(count: 8)
        let address: UInt64 = 3 << 48 | 5 << 32
        #expect(try space.map(storage, name: "a", at: address) == address)
        #expect(space.region(containing: address + 7)?.name == "a")
        #expect(throws: AddressSpaceError.self) { try space.map(storage, name: "b", at: address) }
        #expect(throws: AddressSpaceError.self) { try space.map(storage, name: "c", at: address + 8) }
        #expect(throws: AddressSpaceError.self) { try space.map(storage, name: "d", at: 0x100) }
        // A slot given away at an address is not handed out again by `map`.
        let next = try space.map(RegionStorage(count: 8), name: "e")
        #expect(next >> 32 & 0xFFFF != 5)
    }

    @Test func borrowedStorageIsNeitherCopiedNorFreed() throws {
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: 4, alignment: 8)
        defer { bytes.deallocate() }
        bytes.initializeMemory(as: UInt8.self, repeating: 7, count: 4)
        do {
            let storage = RegionStorage(borrowing: bytes, count: 4)
            #expect(!storage.ownsMemory)
            let space = AddressSpace()
            let address = try space.map(storage, name: "borrowed")
            try space.write([1], at: address)
        }
        // The storage is gone; the bytes are still ours, with the write in them.
        #expect(bytes.load(as: UInt8.self) == 1)
    }
}
