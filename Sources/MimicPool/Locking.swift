#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A pthread mutex that condition variables can wait on.
///
/// The `Synchronization` module's `Mutex` has no condition variable, and the pool needs several
/// conditions (work available, room in the backlog, the watchdog's timer) over one lock.
final class PoolLock: @unchecked Sendable {
    // @unchecked: the pthread mutex is itself the synchronisation; its storage never moves.
    let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        #if canImport(Glibc)
            // Spin briefly before sleeping in the kernel: the pool's critical sections are a few
            // hundred nanoseconds, far shorter than a futex sleep and wake.
            pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        #endif
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// A pthread condition variable on the monotonic clock, used with a `PoolLock`.
final class PoolCondition: @unchecked Sendable {
    // @unchecked: the pthread condition is itself thread-safe; its storage never moves.
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    init() {
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if !canImport(Darwin)
            pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deinitialize(count: 1)
        condition.deallocate()
    }

    /// Waits for a signal; `lock` must be held and is held again on return.
    func wait(_ lock: PoolLock) { pthread_cond_wait(condition, lock.mutex) }

    /// Waits for a signal or until the monotonic clock reaches `deadline` (nanoseconds).
    func wait(_ lock: PoolLock, until deadline: UInt64) {
        var time = timespec()
        time.tv_sec = Int(deadline / 1_000_000_000)
        time.tv_nsec = Int(deadline % 1_000_000_000)
        pthread_cond_timedwait(condition, lock.mutex, &time)
    }

    func signal() { pthread_cond_signal(condition) }
    func broadcast() { pthread_cond_broadcast(condition) }
}

/// The monotonic clock, in nanoseconds (the clock `PoolCondition` waits on).
func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
}

/// Converts a duration to whole nanoseconds, saturating (negative durations are 0).
func nanoseconds(_ duration: Duration) -> UInt64 {
    let (seconds, attoseconds) = duration.components
    guard seconds >= 0 else { return 0 }
    let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
    if overflow { return .max }
    let (sum, overflow2) = whole.addingReportingOverflow(UInt64(max(0, attoseconds) / 1_000_000_000))
    return overflow2 ? .max : sum
}

/// A started pthread that can be joined.
struct WorkerThread: @unchecked Sendable {
    // @unchecked: a pthread_t is an opaque id; joining and detaching are done once, by the pool
    // under its join lock.
    let id: pthread_t

    /// Starts a thread running `body`; nil if the system refuses.
    static func start(_ body: @escaping @Sendable () -> Void) -> WorkerThread? {
        final class Start {
            let body: @Sendable () -> Void
            init(body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let start = Unmanaged.passRetained(Start(body: body)).toOpaque()
        #if canImport(Darwin)
            var thread: pthread_t?
        #else
            var thread = pthread_t()
        #endif
        let result = pthread_create(
            &thread, nil,
            { raw in
                guard let raw else { return nil }
                let start = Unmanaged<Start>.fromOpaque(raw).takeRetainedValue()
                start.body()
                return nil
            }, start)
        guard result == 0 else {
            Unmanaged<Start>.fromOpaque(start).release()
            return nil
        }
        #if canImport(Darwin)
            guard let thread else { return nil }
        #endif
        return WorkerThread(id: thread)
    }

    func join() { pthread_join(id, nil) }
    func detach() { pthread_detach(id) }
    var isCurrent: Bool { pthread_equal(id, pthread_self()) != 0 }
}
