import MimicCore

/// Runs a process's program callbacks elsewhere (`LinuxProcessState.callbackBridge`).
///
/// MimicLinux as a plugin runs helpers on a stand-in ("shadow") process that has no program of
/// its own: its bridge forwards callbacks to the host, which runs them in the real program.
public protocol CallbackBridge: AnyObject {
    /// Runs the function at `slot` with `arguments` (at most five) and returns its R0, or throws
    /// the error it stopped with.
    func callFunction(at slot: Int, arguments: [UInt64], of process: MimicCore.Process) throws(ExecutionError) -> UInt64
}

/// How Linux helpers call back into the program (`bpf_loop`, `bpf_for_each_map_elem`): in the
/// process (`Process.callFunction`), or through the process's callback bridge when its program
/// lives elsewhere.
enum ProgramCallbacks {
    /// The slot of the function `value` (an `lddw` `BPF_PSEUDO_FUNC` result) points at, or nil.
    /// With a bridge any tagged value passes: the bridge's side checks it.
    static func functionSlot(_ process: MimicCore.Process, fromAddress value: UInt64) -> Int? {
        guard LinuxProcessState.of(process)?.callbackBridge != nil else {
            return process.functionSlot(fromAddress: value)
        }
        guard value & ~UInt64(0xFFFF_FFFF) == Program.functionAddressTag else { return nil }
        return Int(value & 0xFFFF_FFFF)
    }

    /// Calls the program function at `slot` with up to five arguments and returns its R0.
    static func call(_ process: MimicCore.Process, at slot: Int, arguments: [UInt64]) throws(ExecutionError) -> UInt64 {
        if let bridge = LinuxProcessState.of(process)?.callbackBridge {
            return try callThroughBridge(bridge, process, at: slot, arguments: arguments)
        }
        return try process.callFunction(at: slot, arguments: arguments)
    }

    /// A callback through the bridge. Registers are restored afterwards, as for a local callback:
    /// the bridge's side may run helpers on this process again.
    @inline(never)
    private static func callThroughBridge(
        _ bridge: any CallbackBridge, _ process: MimicCore.Process, at slot: Int,
        arguments: [UInt64]
    ) throws(ExecutionError) -> UInt64 {
        let saved = process.registers.all
        defer { for (index, value) in saved.enumerated() { process.registers[index] = value } }
        return try bridge.callFunction(at: slot, arguments: arguments, of: process)
    }
}
