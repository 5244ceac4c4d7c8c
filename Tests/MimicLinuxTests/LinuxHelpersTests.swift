import Testing
import MimicCore
import MimicLinux

@Suite struct EmulatedHelperSetTests {
    /// The emulator lists the helpers it emulates, not the replay-only stand-ins, and names
    /// every kernel helper. Every helper id of Linux 6.18 is emulated now (issues 14 and 15), so
    /// the replay stand-ins serve only captured contexts.
    @Test func implementedHelpersAreTheEmulatedOnes() {
        let emulator = LinuxEmulator()
        let ids = Set(emulator.implementedHelperIDs)
        for helper in [
            HelperID.mapLookupElem, .tracePrintk, .tailCall, .xdpAdjustHead, .l4CsumReplace,
            .ringbufReserve, .loop, .getCurrentComm,
        ] {
            #expect(ids.contains(helper.rawValue), "\(helper) is not emulated")
        }
        #expect(
            ids == Set(HelperID.known.map(\.rawValue)),
            "not emulated: \(HelperID.known.filter { !ids.contains($0.rawValue) })")
        #expect(emulator.helper(id: HelperID.skLookupTcp.rawValue) != nil)
        #expect(emulator.helper(id: HelperID.skLookupTcp.rawValue)?.name == "bpf_sk_lookup_tcp")
        #expect(emulator.helperName(id: 1) == "bpf_map_lookup_elem")
        #expect(emulator.helperName(id: 0) == nil)
    }

    /// Every kernel helper id has a helper (emulated or a replay stand-in) named by the table.
    @Test func everyHelperIsNamedByItsID() {
        let emulator = LinuxEmulator()
        for id in HelperID.known {
            #expect(emulator.helper(id: id.rawValue)?.name == id.kernelName, "\(id)")
            #expect(emulator.helperName(id: id.rawValue) == id.kernelName)
        }
        #expect(emulator.helper(id: HelperID.unspec.rawValue) == nil)
    }
}
