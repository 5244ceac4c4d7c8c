import Foundation
import MimicCore
import Testing

/// The generated tables of `linux/bpf.h` (Linux 6.18): helper ids, map, program and attach types.
@Suite struct KernelNamesTests {
    /// 211 helpers, ids 1...211 in `__BPF_FUNC_MAPPER` order (id 0, `unspec`, is no helper).
    @Test func helperTableHasEveryHelperOfLinux618InOrder() {
        #expect(HelperID.known.count == 211)
        #expect(HelperID.known.map(\.rawValue) == Array(1...211))
        #expect(HelperID.known.first?.name == "bpf_map_lookup_elem")
        #expect(HelperID.known.last?.name == "bpf_cgrp_storage_delete")
        #expect(Set(HelperID.known.compactMap(\.kernelName)).count == 211)
    }

    @Test(
        arguments: [
            (HelperID.mapLookupElem, 1, "bpf_map_lookup_elem"), (.mapUpdateElem, 2, "bpf_map_update_elem"),
            (.tracePrintk, 6, "bpf_trace_printk"), (.tailCall, 12, "bpf_tail_call"), (.csumDiff, 28, "bpf_csum_diff"),
            (.xdpAdjustHead, 44, "bpf_xdp_adjust_head"), (.redirectMap, 51, "bpf_redirect_map"),
            (.ringbufOutput, 130, "bpf_ringbuf_output"), (.forEachMapElem, 164, "bpf_for_each_map_elem"),
            (.loop, 181, "bpf_loop"), (.userRingbufDrain, 209, "bpf_user_ringbuf_drain"),
            (.cgrpStorageGet, 210, "bpf_cgrp_storage_get"), (.cgrpStorageDelete, 211, "bpf_cgrp_storage_delete"),
        ] as [(HelperID, Int32, String)])
    func helperSpotChecks(helper: HelperID, id: Int32, name: String) {
        #expect(helper.rawValue == id)
        #expect(helper.kernelName == name)
        #expect(helper.name == name)
        #expect("\(helper)" == name)
        #expect(HelperID(rawValue: id) == helper)
    }

    @Test func helperNamesRoundTrip() {
        for helper in HelperID.known {
            let name = helper.name
            #expect(HelperID(kernelName: name) == helper, "\(name)")
            #expect(HelperID(kernelName: String(name.dropFirst("bpf_".count))) == helper, "\(name)")
        }
    }

    @Test func idsLinuxDoesNotDefineHaveNoKernelName() {
        for id: Int32 in [0, -1, 212, 10_000, .max, .min] {
            #expect(HelperID(rawValue: id).kernelName == nil, "\(id)")
            #expect(HelperID(rawValue: id).name == "#\(id)")
        }
        #expect(HelperID.unspec.rawValue == 0)
        #expect(HelperID(kernelName: "bpf_no_such_helper") == nil)
        #expect(HelperID(kernelName: "unspec") == nil)
        #expect(HelperID(kernelName: "") == nil)
    }

    @Test func helpersAreNamedByTheirID() throws {
        let helper = Helper(.csumDiff) { _ throws(HelperFailure) in .value(0) }
        #expect(helper.id == 28)
        #expect(helper.name == "bpf_csum_diff")
        #expect(helper.helperID == .csumDiff)
    }

    /// `enum bpf_map_type` values, spot-checked; `CGROUP_STORAGE` is the newer name of 19.
    @Test func mapTypes() {
        #expect(MapType.known.count == 34)
        let expected: [(MapType, UInt32, String)] = [
            (.unspec, 0, "BPF_MAP_TYPE_UNSPEC"), (.hash, 1, "BPF_MAP_TYPE_HASH"), (.array, 2, "BPF_MAP_TYPE_ARRAY"),
            (.progArray, 3, "BPF_MAP_TYPE_PROG_ARRAY"), (.perCPUHash, 5, "BPF_MAP_TYPE_PERCPU_HASH"),
            (.lpmTrie, 11, "BPF_MAP_TYPE_LPM_TRIE"), (.devMap, 14, "BPF_MAP_TYPE_DEVMAP"),
            (.sockHash, 18, "BPF_MAP_TYPE_SOCKHASH"), (.cgroupStorage, 19, "BPF_MAP_TYPE_CGROUP_STORAGE"),
            (.perCPUCgroupStorage, 21, "BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE"), (.queue, 22, "BPF_MAP_TYPE_QUEUE"),
            (.ringBuffer, 27, "BPF_MAP_TYPE_RINGBUF"), (.userRingBuffer, 31, "BPF_MAP_TYPE_USER_RINGBUF"),
            (.cgrpStorage, 32, "BPF_MAP_TYPE_CGRP_STORAGE"), (.arena, 33, "BPF_MAP_TYPE_ARENA"),
        ]
        for (type, value, name) in expected {
            #expect(type.rawValue == value, "\(name)")
            #expect(type.cName == name)
            #expect(MapType(kernelName: name) == type)
        }
        #expect(MapType.perCPUArray.description == "percpu_array")
        #expect(MapType(kernelName: "lru_percpu_hash") == .lruPerCPUHash)
        #expect(MapType(kernelName: "BPF_MAP_TYPE_CGROUP_STORAGE_DEPRECATED") == .cgroupStorage)
        #expect(MapType(kernelName: "BPF_MAP_TYPE_NO_SUCH") == nil)
        #expect(MapType(rawValue: 999).cName == "BPF_MAP_TYPE_999")
        #expect(MapType(rawValue: 999).kernelName == nil)
        for type in MapType.known { #expect(MapType(kernelName: type.cName) == type) }
    }

    /// `enum bpf_prog_type`: an open struct like `MapType`, so values from outside are kept.
    @Test func programTypes() {
        #expect(ProgramType.known.count == 33)
        let expected: [(ProgramType, UInt32, String)] = [
            (.unspec, 0, "BPF_PROG_TYPE_UNSPEC"), (.socketFilter, 1, "BPF_PROG_TYPE_SOCKET_FILTER"),
            (.kprobe, 2, "BPF_PROG_TYPE_KPROBE"), (.schedCls, 3, "BPF_PROG_TYPE_SCHED_CLS"),
            (.xdp, 6, "BPF_PROG_TYPE_XDP"), (.cgroupSkb, 8, "BPF_PROG_TYPE_CGROUP_SKB"),
            (.lwtSeg6Local, 19, "BPF_PROG_TYPE_LWT_SEG6LOCAL"), (.tracing, 26, "BPF_PROG_TYPE_TRACING"),
            (.syscall, 31, "BPF_PROG_TYPE_SYSCALL"), (.netfilter, 32, "BPF_PROG_TYPE_NETFILTER"),
        ]
        for (type, value, name) in expected {
            #expect(type.rawValue == value, "\(name)")
            #expect(type.cName == name)
            #expect(ProgramType(kernelName: name) == type)
        }
        #expect(ProgramType.schedCls.description == "sched_cls")
        #expect(ProgramType(kernelName: "xdp") == .xdp)
        let unknown = ProgramType(rawValue: 77)
        #expect(unknown.kernelName == nil && unknown.cName == "BPF_PROG_TYPE_77" && unknown.description == "type 77")
        for type in ProgramType.known { #expect(ProgramType(kernelName: type.cName) == type) }
    }

    /// `enum bpf_attach_type`.
    @Test func attachTypes() {
        #expect(AttachType.known.count == 58)
        let expected: [(AttachType, UInt32, String)] = [
            (.cgroupInetIngress, 0, "BPF_CGROUP_INET_INGRESS"), (.cgroupInetEgress, 1, "BPF_CGROUP_INET_EGRESS"),
            (.skSkbStreamVerdict, 5, "BPF_SK_SKB_STREAM_VERDICT"), (.traceFentry, 24, "BPF_TRACE_FENTRY"),
            (.xdpDevmap, 33, "BPF_XDP_DEVMAP"), (.xdp, 37, "BPF_XDP"), (.tcxIngress, 46, "BPF_TCX_INGRESS"),
            (.netkitPrimary, 54, "BPF_NETKIT_PRIMARY"), (.traceUprobeSession, 57, "BPF_TRACE_UPROBE_SESSION"),
        ]
        for (type, value, name) in expected {
            #expect(type.rawValue == value, "\(name)")
            #expect(type.cName == name)
            #expect(AttachType(kernelName: name) == type)
        }
        #expect(AttachType.cgroupInetIngress.description == "cgroup_inet_ingress")
        #expect(AttachType(kernelName: "tcx_egress") == .tcxEgress)
        #expect(AttachType(rawValue: 500).kernelName == nil)
        for type in AttachType.known { #expect(AttachType(kernelName: type.cName) == type) }
    }

    static let vmlinux = "/sys/kernel/btf/vmlinux"

    /// The running kernel's own BTF names every value of the four enumerations; where both know
    /// a value, the names agree (a newer kernel may know more, an older one less).
    @Test(.enabled(if: FileManager.default.isReadableFile(atPath: vmlinux), "\(vmlinux) is not readable"))
    func tablesAgreeWithTheRunningKernel() throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.vmlinux)))
        let btf = try BTF(bytes: bytes)
        func enumerators(_ name: String) throws -> [UInt32: [String]] {
            let id = try #require(btf.typeIDs(named: name).first, "enum \(name)")
            guard case .enumeration(_, _, let values, _, _)? = btf.type(id) else {
                Issue.record("\(name) is not an enum")
                return [:]
            }
            return Dictionary(grouping: values.filter { !$0.name.hasPrefix("__") }, by: { UInt32($0.value) })
                .mapValues { $0.map(\.name) }
        }
        let functions = try enumerators("bpf_func_id")
        for helper in HelperID.known {
            guard let names = functions[UInt32(helper.rawValue)] else { continue }
            #expect(names == ["BPF_FUNC_" + helper.name.dropFirst("bpf_".count)])
        }
        #expect(functions.count >= HelperID.known.count) // 6.18 or newer
        for (name, known) in [
            ("bpf_map_type", MapType.known.map { ($0.rawValue, $0.cName) }),
            ("bpf_prog_type", ProgramType.known.map { ($0.rawValue, $0.cName) }),
            ("bpf_attach_type", AttachType.known.map { ($0.rawValue, $0.cName) }),
        ] {
            let kernel = try enumerators(name)
            for (value, cName) in known {
                guard let names = kernel[value] else { continue }
                #expect(names.contains(cName), "\(name) \(value): the kernel says \(names)")
            }
        }
    }
}

@Suite struct ErrnoTests {
    @Test func swiftNamesCarryTheLinuxValuesAndCSpellings() {
        let expected: [(Errno, Int32, String)] = [
            (.notPermitted, 1, "EPERM"), (.noEntry, 2, "ENOENT"), (.tooBig, 7, "E2BIG"),
            (.badFileDescriptor, 9, "EBADF"),
            (.tryAgain, 11, "EAGAIN"), (.noMemory, 12, "ENOMEM"), (.accessDenied, 13, "EACCES"), (.fault, 14, "EFAULT"),
            (.busy, 16, "EBUSY"), (.exists, 17, "EEXIST"), (.noDevice, 19, "ENODEV"), (.invalid, 22, "EINVAL"),
            (.noSpace, 28, "ENOSPC"), (.outOfRange, 34, "ERANGE"), (.notImplemented, 38, "ENOSYS"),
            (.overflow, 75, "EOVERFLOW"), (.notSupported, 95, "EOPNOTSUPP"), (.kernelNotSupported, 524, "ENOTSUPP"),
        ]
        for (errno, value, name) in expected {
            #expect(errno.rawValue == value, "\(name)")
            #expect(errno.description == name)
        }
        #expect(Errno.noEntry.helperReturnValue == UInt64(bitPattern: -2))
        #expect(Errno(rawValue: 200).description == "errno 200")
    }
}
