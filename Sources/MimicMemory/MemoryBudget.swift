import Synchronization

/// A limit on the bytes one VM allocates for what programs and their inputs declare: maps,
/// global data, contexts and packet buffers.
///
/// Every such allocation takes a `MemoryReservation` first; a reservation that would pass the
/// limit fails with a `MemoryBudgetError` naming what asked and the sizes, before anything is
/// allocated. Reservations give their bytes back when they are released (when the storage
/// holding them goes away). Thread-safe.
public final class MemoryBudget: Sendable {
    /// The default limit of a VM: 1 GiB.
    public static let defaultLimit = 1 << 30

    /// The most bytes reservations may hold at once.
    public let limit: Int
    private let used = Atomic<Int>(0)

    /// A budget of `limit` bytes (negative limits count as 0).
    public init(limit: Int = MemoryBudget.defaultLimit) {
        self.limit = max(0, limit)
    }

    /// The bytes reservations hold now.
    public var inUse: Int { used.load(ordering: .relaxed) }

    /// Takes `bytes` from the budget for `purpose` (e.g. "map 'counters'").
    ///
    /// - Throws: `MemoryBudgetError` when the budget does not have `bytes` left.
    public func reserve(_ bytes: Int, for purpose: String) throws(MemoryBudgetError) -> MemoryReservation {
        guard take(bytes) else {
            throw MemoryBudgetError(purpose: purpose, requested: bytes, inUse: inUse, limit: limit)
        }
        return MemoryReservation(budget: self, bytes: bytes)
    }

    /// Takes `bytes` if they fit; false (taking nothing) otherwise.
    func take(_ bytes: Int) -> Bool {
        guard bytes >= 0 else { return false }
        var current = used.load(ordering: .relaxed)
        while true {
            guard bytes <= limit - current else { return false }
            let (exchanged, original) = used.compareExchange(
                expected: current, desired: current + bytes, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    func give(_ bytes: Int) {
        used.subtract(bytes, ordering: .relaxed)
    }
}

/// Bytes held from a `MemoryBudget`, given back when the reservation is released.
///
/// A reservation can grow (`grow(by:)`), for storage that is charged as it is used (maps the
/// kernel does not preallocate).
public final class MemoryReservation: Sendable {
    public let budget: MemoryBudget
    private let held: Atomic<Int>

    init(budget: MemoryBudget, bytes: Int) {
        self.budget = budget
        held = Atomic(bytes)
    }

    /// The bytes held.
    public var bytes: Int { held.load(ordering: .relaxed) }

    /// Takes `bytes` more from the budget; false (taking nothing) when they do not fit.
    public func grow(by bytes: Int) -> Bool {
        guard budget.take(bytes) else { return false }
        held.add(bytes, ordering: .relaxed)
        return true
    }

    deinit { budget.give(held.load(ordering: .relaxed)) }
}

/// A reservation that did not fit in a VM's memory budget.
public struct MemoryBudgetError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What asked for the memory, e.g. "map 'counters'", "packet buffer".
    public var purpose: String
    public var requested: Int
    /// The bytes already held when the request was made.
    public var inUse: Int
    public var limit: Int

    public init(purpose: String, requested: Int, inUse: Int, limit: Int) {
        self.purpose = purpose
        self.requested = requested
        self.inUse = inUse
        self.limit = limit
    }

    public var description: String {
        "\(purpose) needs \(requested) bytes, more than the VM's memory budget has left "
            + "(\(inUse) of \(limit) bytes in use; raise it with VMConfiguration.memoryLimit or --memory-limit)"
    }
}
