import MimicCore

/// Every helper of this folder: all but the map helpers.
enum NonMapHelpers {
    static func all(for emulator: LinuxEmulator) -> [Helper] {
        TraceHelpers.all(for: emulator) + TimeHelpers.all(for: emulator) + TaskHelpers.all(for: emulator)
            + ProbeHelpers.all(for: emulator) + StringHelpers.all(for: emulator) + LoopHelpers.all(for: emulator)
            + ChecksumHelpers.all(for: emulator) + PacketHelpers.all(for: emulator)
    }
}

/// Helpers the emulator does not implement still answer from a captured context's records: for
/// every helper id the kernel defines, a stand-in replays recorded calls and otherwise stops the
/// program with an error naming the helper. Real implementations registered after these replace
/// them (`LinuxHelperSet.standard` lists the stand-ins first).
enum ReplayHelpers {
    static func fallbacks() -> [Helper] {
        HelperID.known.map { id in
            LinuxHelper.make(id) { call throws(HelperFailure) in try needsRecording(call) }
        }
    }

    /// The end of the road for a helper without emulation: no (more) recorded calls.
    static func needsRecording(_ call: HelperCall) throws(HelperFailure) -> UInt64 {
        if let replay = call.state?.replay, replay.hasRecords(for: call.id) {
            throw .message(
                "ran out of recorded calls: the captured context has \(replay.replayedCount(of: call.id)) for \(call.name), which cannot be emulated"
            )
        }
        throw .unsupported("\(call.name) cannot be emulated; it needs a captured context with recorded calls")
    }
}
