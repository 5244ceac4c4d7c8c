import Testing
import MimicLinux

@Suite struct LinuxHelpersTests {
    /// Ids from the kernel's UAPI (`enum bpf_func_id`), spot-checked across the table.
    @Test(arguments: [
        ("bpf_map_lookup_elem", 1), ("bpf_trace_printk", 6), ("bpf_tail_call", 12),
        ("bpf_get_current_comm", 16), ("bpf_redirect_map", 51), ("bpf_ringbuf_output", 130),
        ("bpf_loop", 181), ("bpf_user_ringbuf_drain", 209),
    ] as [(String, Int32)])
    func knownIDs(name: String, id: Int32) {
        #expect(LinuxHelpers.name(of: id) == name)
        #expect(LinuxHelpers.id(named: name) == id)
        #expect(LinuxHelpers.id(named: String(name.dropFirst(4))) == id)
    }

    @Test func unknownIDsHaveNoName() {
        #expect(LinuxHelpers.name(of: 0) == nil)
        #expect(LinuxHelpers.name(of: -1) == nil)
        #expect(LinuxHelpers.name(of: 100_000) == nil)
        #expect(LinuxHelpers.id(named: "bpf_no_such_helper") == nil)
        #expect(LinuxHelpers.id(named: "unspec") == nil)
    }
}

@Suite struct EmulatedHelperSetTests {
    /// The emulator lists the helpers it emulates, not the replay-only stand-ins, and names
    /// every kernel helper.
    @Test func implementedHelpersAreTheEmulatedOnes() {
        let emulator = LinuxEmulator()
        let ids = Set(emulator.implementedHelperIDs)
        for name in ["bpf_map_lookup_elem", "bpf_trace_printk", "bpf_tail_call", "bpf_xdp_adjust_head",
                     "bpf_l4_csum_replace", "bpf_ringbuf_reserve", "bpf_loop", "bpf_get_current_comm"] {
            #expect(ids.contains(LinuxHelpers.id(named: name) ?? -1), "\(name) is not emulated")
        }
        #expect(ids.count < LinuxHelpers.names.count - 1)
        #expect(emulator.helper(id: LinuxHelpers.id(named: "bpf_sk_lookup_tcp") ?? 0) != nil)  // replay stand-in
        #expect(emulator.helperName(id: 1) == "bpf_map_lookup_elem")
    }
}
