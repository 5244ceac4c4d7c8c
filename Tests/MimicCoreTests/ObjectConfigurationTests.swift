import MimicJSON
import Testing
@testable import MimicCore

@Suite("Section names as libbpf reads them")
struct SectionDefinitionTests {
    /// libbpf's `section_defs` (src/libbpf.c, libbpf f7081a6), one row per entry: the pattern as
    /// libbpf writes it, a name that matches it, the program type and attach type libbpf gives.
    static let libbpfRows: [(String, String, ProgramType, AttachType?)] = [
        ("socket", "socket", .socketFilter, nil),
        ("sk_reuseport/migrate", "sk_reuseport/migrate", .skReuseport, .skReuseportSelectOrMigrate),
        ("sk_reuseport", "sk_reuseport", .skReuseport, .skReuseportSelect),
        ("kprobe+", "kprobe/do_exit", .kprobe, nil), ("uprobe+", "uprobe/bin:fn", .kprobe, nil),
        ("uprobe.s+", "uprobe.s/bin:fn", .kprobe, nil), ("kretprobe+", "kretprobe/x", .kprobe, nil),
        ("uretprobe+", "uretprobe", .kprobe, nil), ("uretprobe.s+", "uretprobe.s/b:f", .kprobe, nil),
        ("kprobe.multi+", "kprobe.multi/tcp_*", .kprobe, .traceKprobeMulti),
        ("kretprobe.multi+", "kretprobe.multi/x", .kprobe, .traceKprobeMulti),
        ("kprobe.session+", "kprobe.session/x", .kprobe, .traceKprobeSession),
        ("uprobe.multi+", "uprobe.multi/b:f", .kprobe, .traceUprobeMulti),
        ("uretprobe.multi+", "uretprobe.multi/b:f", .kprobe, .traceUprobeMulti),
        ("uprobe.session+", "uprobe.session/b:f", .kprobe, .traceUprobeSession),
        ("uprobe.multi.s+", "uprobe.multi.s/b:f", .kprobe, .traceUprobeMulti),
        ("uretprobe.multi.s+", "uretprobe.multi.s/b:f", .kprobe, .traceUprobeMulti),
        ("uprobe.session.s+", "uprobe.session.s/b:f", .kprobe, .traceUprobeSession),
        ("ksyscall+", "ksyscall/openat", .kprobe, nil), ("kretsyscall+", "kretsyscall/openat", .kprobe, nil),
        ("usdt+", "usdt/lib:prov:name", .kprobe, nil), ("usdt.s+", "usdt.s/lib:p:n", .kprobe, nil),
        ("tc/ingress", "tc/ingress", .schedCls, .tcxIngress), ("tc/egress", "tc/egress", .schedCls, .tcxEgress),
        ("tcx/ingress", "tcx/ingress", .schedCls, .tcxIngress), ("tcx/egress", "tcx/egress", .schedCls, .tcxEgress),
        ("tc", "tc", .schedCls, nil), ("classifier", "classifier", .schedCls, nil),
        ("action", "action", .schedAct, nil),
        ("netkit/primary", "netkit/primary", .schedCls, .netkitPrimary),
        ("netkit/peer", "netkit/peer", .schedCls, .netkitPeer),
        ("tracepoint+", "tracepoint/syscalls/x", .tracepoint, nil), ("tp+", "tp/sched/y", .tracepoint, nil),
        ("tracepoint.s+", "tracepoint.s/a/b", .tracepoint, nil), ("tp.s+", "tp.s/a/b", .tracepoint, nil),
        ("raw_tracepoint+", "raw_tracepoint/x", .rawTracepoint, nil), ("raw_tp+", "raw_tp/x", .rawTracepoint, nil),
        ("raw_tracepoint.s+", "raw_tracepoint.s/x", .rawTracepoint, nil),
        ("raw_tp.s+", "raw_tp.s/x", .rawTracepoint, nil),
        ("raw_tracepoint.w+", "raw_tracepoint.w/x", .rawTracepointWritable, nil),
        ("raw_tp.w+", "raw_tp.w/x", .rawTracepointWritable, nil),
        ("tp_btf+", "tp_btf/sched_switch", .tracing, .traceRawTp), ("tp_btf.s+", "tp_btf.s/x", .tracing, .traceRawTp),
        ("fentry+", "fentry/do_exit", .tracing, .traceFentry), ("fmod_ret+", "fmod_ret/f", .tracing, .modifyReturn),
        ("fexit+", "fexit/f", .tracing, .traceFexit), ("fentry.s+", "fentry.s/f", .tracing, .traceFentry),
        ("fmod_ret.s+", "fmod_ret.s/f", .tracing, .modifyReturn), ("fexit.s+", "fexit.s/f", .tracing, .traceFexit),
        ("fsession+", "fsession/f", .tracing, AttachType(rawValue: 58)),
        ("fsession.s+", "fsession.s/f", .tracing, AttachType(rawValue: 58)),
        ("fsession.multi+", "fsession.multi/f*", .tracing, AttachType(rawValue: 61)),
        ("fsession.multi.s+", "fsession.multi.s/f*", .tracing, AttachType(rawValue: 61)),
        ("fentry.multi+", "fentry.multi/f*", .tracing, AttachType(rawValue: 59)),
        ("fexit.multi+", "fexit.multi/f*", .tracing, AttachType(rawValue: 60)),
        ("fentry.multi.s+", "fentry.multi.s/f*", .tracing, AttachType(rawValue: 59)),
        ("fexit.multi.s+", "fexit.multi.s/f*", .tracing, AttachType(rawValue: 60)),
        ("freplace+", "freplace/f", .ext, nil), ("lsm+", "lsm/file_open", .lsm, .lsmMac),
        ("lsm.s+", "lsm.s/file_open", .lsm, .lsmMac), ("lsm_cgroup+", "lsm_cgroup/x", .lsm, .lsmCgroup),
        ("iter+", "iter/task", .tracing, .traceIter), ("iter.s+", "iter.s/task", .tracing, .traceIter),
        ("syscall", "syscall", .syscall, nil),
        ("xdp.frags/devmap", "xdp.frags/devmap", .xdp, .xdpDevmap), ("xdp/devmap", "xdp/devmap", .xdp, .xdpDevmap),
        ("xdp.frags/cpumap", "xdp.frags/cpumap", .xdp, .xdpCpumap), ("xdp/cpumap", "xdp/cpumap", .xdp, .xdpCpumap),
        ("xdp.frags", "xdp.frags", .xdp, .xdp), ("xdp", "xdp", .xdp, .xdp),
        ("perf_event", "perf_event", .perfEvent, nil),
        ("lwt_in", "lwt_in", .lwtIn, nil), ("lwt_out", "lwt_out", .lwtOut, nil),
        ("lwt_xmit", "lwt_xmit", .lwtXmit, nil),
        ("lwt_seg6local", "lwt_seg6local", .lwtSeg6Local, nil), ("sockops", "sockops", .sockOps, .cgroupSockOps),
        ("sk_skb/stream_parser", "sk_skb/stream_parser", .skSkb, .skSkbStreamParser),
        ("sk_skb/stream_verdict", "sk_skb/stream_verdict", .skSkb, .skSkbStreamVerdict),
        ("sk_skb/verdict", "sk_skb/verdict", .skSkb, .skSkbVerdict), ("sk_skb", "sk_skb", .skSkb, nil),
        ("sk_msg", "sk_msg", .skMsg, .skMsgVerdict), ("lirc_mode2", "lirc_mode2", .lircMode2, .lircMode2),
        ("flow_dissector", "flow_dissector", .flowDissector, .flowDissector),
        ("cgroup_skb/ingress", "cgroup_skb/ingress", .cgroupSkb, .cgroupInetIngress),
        ("cgroup_skb/egress", "cgroup_skb/egress", .cgroupSkb, .cgroupInetEgress),
        ("cgroup/skb", "cgroup/skb", .cgroupSkb, nil),
        ("cgroup/sock_create", "cgroup/sock_create", .cgroupSock, .cgroupInetSockCreate),
        ("cgroup/sock_release", "cgroup/sock_release", .cgroupSock, .cgroupInetSockRelease),
        ("cgroup/sock", "cgroup/sock", .cgroupSock, .cgroupInetSockCreate),
        ("cgroup/post_bind4", "cgroup/post_bind4", .cgroupSock, .cgroupInet4PostBind),
        ("cgroup/post_bind6", "cgroup/post_bind6", .cgroupSock, .cgroupInet6PostBind),
        ("cgroup/bind4", "cgroup/bind4", .cgroupSockAddr, .cgroupInet4Bind),
        ("cgroup/bind6", "cgroup/bind6", .cgroupSockAddr, .cgroupInet6Bind),
        ("cgroup/connect4", "cgroup/connect4", .cgroupSockAddr, .cgroupInet4Connect),
        ("cgroup/connect6", "cgroup/connect6", .cgroupSockAddr, .cgroupInet6Connect),
        ("cgroup/connect_unix", "cgroup/connect_unix", .cgroupSockAddr, .cgroupUnixConnect),
        ("cgroup/sendmsg4", "cgroup/sendmsg4", .cgroupSockAddr, .cgroupUdp4Sendmsg),
        ("cgroup/sendmsg6", "cgroup/sendmsg6", .cgroupSockAddr, .cgroupUdp6Sendmsg),
        ("cgroup/sendmsg_unix", "cgroup/sendmsg_unix", .cgroupSockAddr, .cgroupUnixSendmsg),
        ("cgroup/recvmsg4", "cgroup/recvmsg4", .cgroupSockAddr, .cgroupUdp4Recvmsg),
        ("cgroup/recvmsg6", "cgroup/recvmsg6", .cgroupSockAddr, .cgroupUdp6Recvmsg),
        ("cgroup/recvmsg_unix", "cgroup/recvmsg_unix", .cgroupSockAddr, .cgroupUnixRecvmsg),
        ("cgroup/getpeername4", "cgroup/getpeername4", .cgroupSockAddr, .cgroupInet4Getpeername),
        ("cgroup/getpeername6", "cgroup/getpeername6", .cgroupSockAddr, .cgroupInet6Getpeername),
        ("cgroup/getpeername_unix", "cgroup/getpeername_unix", .cgroupSockAddr, .cgroupUnixGetpeername),
        ("cgroup/getsockname4", "cgroup/getsockname4", .cgroupSockAddr, .cgroupInet4Getsockname),
        ("cgroup/getsockname6", "cgroup/getsockname6", .cgroupSockAddr, .cgroupInet6Getsockname),
        ("cgroup/getsockname_unix", "cgroup/getsockname_unix", .cgroupSockAddr, .cgroupUnixGetsockname),
        ("cgroup/sysctl", "cgroup/sysctl", .cgroupSysctl, .cgroupSysctl),
        ("cgroup/getsockopt", "cgroup/getsockopt", .cgroupSockopt, .cgroupGetsockopt),
        ("cgroup/setsockopt", "cgroup/setsockopt", .cgroupSockopt, .cgroupSetsockopt),
        ("cgroup/dev", "cgroup/dev", .cgroupDevice, .cgroupDevice),
        ("struct_ops+", "struct_ops/init", .structOps, nil), ("struct_ops.s+", "struct_ops.s/init", .structOps, nil),
        ("sk_lookup", "sk_lookup", .skLookup, .skLookup), ("netfilter", "netfilter", .netfilter, .netfilter),
    ]

    @Test("the table has libbpf's rows, in libbpf's order")
    func tableMatchesLibbpf() {
        let patterns = SectionDefinition.table.map { $0.pattern + ($0.match == .prefix ? "+" : "") }
        #expect(patterns == Self.libbpfRows.map(\.0))
    }

    @Test("each row gives its program and attach type", arguments: libbpfRows.indices)
    func row(index: Int) {
        let (pattern, name, type, attach) = Self.libbpfRows[index]
        let found = SectionDefinition.find(name)
        #expect(found?.programType == type, "\(pattern): \(name)")
        #expect(found?.attachType == attach, "\(pattern): \(name)")
        if pattern.hasSuffix("+") {
            let base = String(pattern.dropLast())
            #expect(SectionDefinition.find(base)?.pattern == base, "\(pattern) matches its bare name")
            #expect(SectionDefinition.find(base + "x")?.pattern != base, "\(pattern) needs a '/' after the name")
        }
    }

    @Test("names outside the table have no type; flags follow the suffixes")
    func unknownNamesAndFlags() {
        for name in ["xdp_vlan01", "xdp/foo", "socket/x", "kprobex", ".text", "tc/other", "classifier/x"] {
            #expect(ProgramType.guess(sectionName: name) == .unspec, "\(name)")
        }
        #expect(SectionDefinition.find("xdp.frags")?.hasXDPFrags == true)
        #expect(SectionDefinition.find("xdp")?.hasXDPFrags == false)
        #expect(SectionDefinition.find("fentry.s/f")?.isSleepable == true)
        #expect(SectionDefinition.find("fentry/f")?.isSleepable == false)
        #expect(SectionDefinition.find("syscall")?.isSleepable == true)
    }
}

@Suite("ObjectConfiguration: configure before load")
struct ObjectConfigurationTests {
    func globals() throws -> ObjectFile { try Fixtures.object("globals") }

    func bytes(_ object: ObjectFile, _ section: String) -> [UInt8] { object.global(named: section)?.contents ?? [] }

    @Test("globals are found by name in every data section, with their BTF types")
    func variables() throws {
        let object = try globals()
        let names = object.globalVariables.map { "\($0.section):\($0.name)" }
        #expect(
            names.contains(".rodata:threshold") && names.contains(".data.tuning:tuned")
                && names.contains(".rodata.ports:ports"))
        #expect(try object.globalVariable(named: "threshold").isReadOnly)
        #expect(try !object.globalVariable(named: "counter").isReadOnly)
    }

    @Test("integers, arrays and strings are encoded by their BTF types")
    func encode() throws {
        var object = try globals()
        try object.setGlobal("threshold", to: .number("70000"))
        try object.setGlobal("counter", to: .number("-2"))
        try object.setGlobal("ports", to: .array([.number("1"), .string("0x10")]))
        try object.setGlobal("banner", to: .string("ab"))
        try object.setGlobal(".bss:total", to: .number("18446744073709551615"))
        #expect(bytes(object, ".rodata").prefix(4) == [0x70, 0x11, 0x01, 0x00])
        #expect(bytes(object, ".rodata")[4..<10] == [0x61, 0x62, 0, 0, 0, 0])
        #expect(bytes(object, ".data") == [0xFE, 0xFF, 0xFF, 0xFF])
        #expect(bytes(object, ".rodata.ports") == [1, 0, 0x10, 0, 0, 0], "elements left out are zeroed")
        #expect(Array(bytes(object, ".bss").prefix(8)) == [UInt8](repeating: 0xFF, count: 8))
    }

    @Test("errors name the variable: unknown (with close names), out of range, wrong shape")
    func errors() throws {
        var object = try globals()
        func message(_ name: String, _ value: JSONValue) -> String {
            do {
                try object.setGlobal(name, to: value)
                return "no error"
            } catch {
                return error.message
            }
        }
        #expect(message("treshold", .number("1")).contains("did you mean threshold"))
        #expect(message("threshold", .number("-1")).contains("out of range (0...4294967295)"))
        #expect(message("counter", .number("2147483648")).contains("out of range (-2147483648...2147483647)"))
        #expect(message("threshold", .number("1.5")).contains("expected an integer"))
        #expect(
            message("ports", .array([.number("1"), .number("2"), .number("3"), .number("4")])).contains("at most 3 fit")
        )
        #expect(message("ports", .number("1")).contains("expected an array"))
        #expect(message("banner", .string("too long!")).contains("longer than 6"))
        #expect(message("ports", .array([.number("70000")])).contains("ports[0]"))
    }

    @Test("map sizes, program types and slots; the unsized-map problem names the option")
    func mapsAndPrograms() throws {
        var object = try Fixtures.object("btf_maps")
        let map = try #require(object.maps.first)
        try object.setMapSize(map.name, to: 7)
        #expect(object.map(named: map.name)?.attributes.maxEntries == 7)
        #expect(throws: ObjectConfigurationError.self) { try object.setMapSize("nope", to: 1) }
        #expect(throws: ObjectConfigurationError.self) { try object.setMapSize(map.name, to: 0) }
        let program = try #require(object.programs.first)
        try object.configure(
            ObjectConfiguration(programTypes: [program.name: .schedCls], attachTypes: [program.name: .tcxIngress]))
        #expect(object.program(named: program.name)?.type == .schedCls)
        #expect(object.program(named: program.name)?.attachType == .tcxIngress)
        #expect(throws: ObjectConfigurationError.self) {
            try object.configure(ObjectConfiguration(programTypes: ["nope": .xdp]))
        }
        #expect(object.unsizedMapProblem == nil)
        object.maps[0].attributes.maxEntries = 0
        #expect(object.unsizedMapProblem?.contains("--map-size \(map.name)=N") == true)
    }

    @Test("prog-array and map-of-maps slots are checked against the maps' types and sizes")
    func slots() throws {
        var object = try Fixtures.object("map_in_map")
        let outer = try #require(
            object.maps.first { $0.attributes.type == .arrayOfMaps || $0.attributes.type == .hashOfMaps })
        let inner = try #require(
            object.maps.first {
                $0.source != .innerTemplate && $0.name != outer.name && $0.attributes.type != .arrayOfMaps
                    && $0.attributes.type != .hashOfMaps
            })
        try object.configure(ObjectConfiguration(slots: [.init(map: outer.name, index: 1, target: .map(inner.name))]))
        #expect(
            object.map(named: outer.name)?.initialSlots.contains(MapSpec.Slot(index: 1, target: .map(inner.name)))
                == true)
        #expect(throws: ObjectConfigurationError.self) {
            try object.configure(ObjectConfiguration(slots: [.init(map: outer.name, index: 0, target: .program("x"))]))
        }
        #expect(throws: ObjectConfigurationError.self) {
            try object.configure(
                ObjectConfiguration(slots: [.init(map: inner.name, index: 0, target: .map(inner.name))]))
        }
        try object.configure(
            ObjectConfiguration(slots: [.init(map: "jump_table", index: 2, target: .program("tail_b"))]))
        #expect(object.map(named: "jump_table")?.initialSlots.map(\.index) == [1, 2, 5])
        #expect(throws: ObjectConfigurationError.self) {
            try object.configure(
                ObjectConfiguration(slots: [.init(map: "jump_table", index: 1000, target: .program("tail_b"))]))
        }
    }

    @Test("a configuration read from JSON, with errors naming the path")
    func fromJSON() throws {
        let text =
            #"{"globals": {"threshold": 7, "banner": "hi"}, "map_sizes": {"m": 4}, "program_types": {"p": "tc"}, "prog_array": [{"map": "j", "index": 1, "program": "q"}], "map_of_maps": [{"map": "o", "index": 0, "inner": "i"}]}"#
        let configuration = try ObjectConfiguration(json: JSONField(try JSONValue.parse(text), path: ""))
        #expect(
            configuration.globals == [
                .init(name: "threshold", value: .number("7")), .init(name: "banner", value: .string("hi")),
            ])
        #expect(configuration.mapSizes == ["m": 4] && configuration.programTypes == ["p": .schedCls])
        #expect(
            configuration.slots == [
                .init(map: "j", index: 1, target: .program("q")), .init(map: "o", index: 0, target: .map("i")),
            ])
        #expect(throws: JSONError.self) {
            try ObjectConfiguration(json: JSONField(try JSONValue.parse(#"{"map_size": {}}"#), path: ""))
        }
        do {
            _ = try ObjectConfiguration(
                json: JSONField(try JSONValue.parse(#"{"program_types": {"p": "nope"}}"#), path: "configuration"))
            Issue.record("an unknown program type was accepted")
        } catch {
            #expect(error.description.contains("configuration.program_types.p"), "\(error)")
        }
        var object = try globals()
        try object.configure(ObjectConfiguration(globals: configuration.globals))
        #expect(bytes(object, ".rodata").prefix(6) == [7, 0, 0, 0, 0x68, 0x69])
    }
}
