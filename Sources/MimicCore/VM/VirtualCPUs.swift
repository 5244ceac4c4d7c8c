import Foundation

/// The vCPUs an emulator serves: processes run as vCPU `0..<cpuCount`, and per-CPU state (per-CPU
/// map values, random streams) exists for that many CPUs. `ProcessPool(workers:vm:)` checks its
/// workers against it.
public protocol VirtualCPUs: AnyObject {
    /// The number of vCPUs; a process with another vCPU id is refused.
    var cpuCount: Int { get }
}

/// The host's CPUs.
public enum HostCPUs {
    /// The CPUs this process may run on: the default of `LinuxConfiguration.cpuCount` and of a
    /// `ProcessPool`'s workers, so the two agree.
    public static var count: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }
}

extension CompositeEmulator: VirtualCPUs {
    /// The fewest vCPUs of the emulators that have a fixed number (`Int.max` when none has).
    public var cpuCount: Int {
        emulators.compactMap { ($0 as? any VirtualCPUs)?.cpuCount }.min() ?? .max
    }
}

extension VM {
    /// The vCPUs the VM's emulator serves, or nil when it does not limit them.
    public var cpuCount: Int? {
        guard let counted = emulator as? any VirtualCPUs else { return nil }
        return counted.cpuCount == .max ? nil : counted.cpuCount
    }
}
