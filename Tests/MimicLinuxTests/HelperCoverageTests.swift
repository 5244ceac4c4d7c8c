import Testing
import MimicCore
@testable import MimicLinux

/// Every helper id of Linux 6.18 (1...211, `HelperID.known`) is emulated: one generated program
/// per id calls it with plausible arguments (maps of the type it takes, buffers on the stack, the
/// context in R1) under each kind of context (generic, `__sk_buff`, `xdp_md`), and none stops as
/// "unknown or unsupported". Ids still being added by the networking work are listed, by name,
/// in `pending`: the list shrinks to empty as they land.
@Suite struct HelperCoverageTests {
    /// Networking helpers the `network` / `netprogs` work adds (sockets, sockmap, sock_ops,
    /// sk_msg, lwt/seg6, tunnels, syncookies, cgroup sockopt/retval, cgroup storage).
    static let pendingNetworking: Set<String> = []
    /// Helpers of the current task that the `system-events` work adds with its task model.
    static let pendingSystemEvents: Set<String> = []
    static var pending: Set<String> { pendingNetworking.union(pendingSystemEvents) }
    /// Emulated helpers whose call can only return normally with state a generated program
    /// cannot make (a socket reference it holds, an iterator's `seq_file`, a file or task of the
    /// emulated system, a kernel BTF), each with the tests that run it so; the coverage test
    /// still checks they are implemented and stop with a named error, not as unknown.
    static let exercisedByTheirOwnTests: [String: String] = [
        "bpf_sk_release": "NetworkHelperTests, NetworkNamespaceTests",
        "bpf_seq_printf": "TracingFixtureTests (task_iter)", "bpf_seq_write": "TracingFixtureTests (task_iter)",
        "bpf_d_path": "SystemTests.helpersReadTheCurrentTask",
        "bpf_probe_write_user": "SystemTests.helpersReadTheCurrentTask",
        "bpf_copy_from_user_task": "SystemTests.helpersReadTheCurrentTask",
        "bpf_get_current_task_btf": "SystemTests, TracingFixtureTests",
        "bpf_task_pt_regs": "SystemTests.helpersReadTheCurrentTask",
        // Helpers of socket program contexts (bpf_sock_ops, sk_msg_md, bpf_sock_addr, bpf_sk_lookup,
        // cgroup storage of an attached program): their fixtures netprog_*.c.
        "bpf_setsockopt": "SocketContextTests (sock_ops)", "bpf_getsockopt": "SocketContextTests (sock_ops)",
        "bpf_sock_ops_cb_flags_set": "SocketContextTests (sock_ops)", "bpf_bind": "SocketContextTests (connect4)",
        "bpf_msg_apply_bytes": "SocketContextTests (sk_msg)", "bpf_msg_cork_bytes": "SocketContextTests (sk_msg)",
        "bpf_msg_pull_data": "SocketContextTests (sk_msg)", "bpf_msg_push_data": "SocketContextTests (sk_msg)",
        "bpf_msg_pop_data": "SocketContextTests (sk_msg)",
        "bpf_get_local_storage": "SocketContextTests, NetProgramKernelTests (cgroup storage)",
        "bpf_sk_storage_get": "SocketContextTests (sk storage)",
        "bpf_sk_storage_delete": "SocketContextTests (sk storage)",
        "bpf_sk_assign": "NetProgramKernelTests (sk_lookup)",
        // Socket map helpers of sk_msg, sock_ops and sk_reuseport contexts; a file of the
        // emulated system's kernel objects: netprog_sockmap.c.
        "bpf_msg_redirect_map": "SocketMapTests.skMsg", "bpf_msg_redirect_hash": "SocketMapTests.skMsg",
        "bpf_sock_map_update": "SocketMapTests.sockOps", "bpf_sock_hash_update": "SocketMapTests.sockOps",
        "bpf_sk_select_reuseport": "SocketMapTests.skReuseport",
        "bpf_sock_from_file": "SocketMapTests.sockFromFile",
        // The sock_ops header-option helpers: a bpf_sock_ops context with a segment, netprog_hdr_opt.c.
        "bpf_load_hdr_opt": "TCPHeaderOptionTests", "bpf_store_hdr_opt": "TCPHeaderOptionTests",
        "bpf_reserve_hdr_opt": "TCPHeaderOptionTests",
        // Helpers of an sk_buff fitted to lwt_in / lwt_xmit, or of End.BPF's SRH state
        // (lwt_seg6local): net_lwt.c, net_seg6.c.
        "bpf_lwt_push_encap": "LWTHelperTests, FixtureComparisonTests (net_lwt)",
        "bpf_lwt_seg6_store_bytes": "LWTHelperTests (seg6local)",
        "bpf_lwt_seg6_adjust_srh": "LWTHelperTests (seg6local)",
        "bpf_lwt_seg6_action": "LWTHelperTests (seg6local)",
    ]

    /// The maps a call may take, made once per VM.
    struct Maps {
        let hash, array, lockArray, timerArray, perCPUArray, queue, ring, userRing, perf, stack, programs,
            devices: UInt64
        let task, inode, cgroup: UInt64
        let sockMap, sockHash, cgroupArray: UInt64

        init(_ emulator: LinuxEmulator, _ vm: VM) throws {
            func make(_ type: MapType, key: Int, value: Int, max: Int, flags: MapFlags = [], lock: Int? = nil) throws
                -> UInt64
            {
                try emulator.createMap(
                    MapAttributes(
                        name: "\(type.cName)\(lock.map { "_lock\($0)" } ?? "")", type: type, keySize: key,
                        valueSize: value, maxEntries: max, flags: flags.rawValue, spinLockOffset: lock), in: vm
                ).handle
            }
            hash = try make(.hash, key: 8, value: 8, max: 4)
            array = try make(.array, key: 4, value: 8, max: 4)
            lockArray = try make(.array, key: 4, value: 8, max: 1, lock: 0)
            timerArray = try make(.array, key: 4, value: 16, max: 1)
            perCPUArray = try make(.perCPUArray, key: 4, value: 8, max: 1)
            queue = try make(.queue, key: 0, value: 8, max: 4)
            ring = try make(.ringBuffer, key: 0, value: 0, max: 4096)
            userRing = try make(.userRingBuffer, key: 0, value: 0, max: 4096)
            perf = try make(.perfEventArray, key: 4, value: 4, max: 2)
            stack = try make(.stackTrace, key: 4, value: 64, max: 4)
            programs = try make(.progArray, key: 4, value: 4, max: 1)
            devices = try make(.devMap, key: 4, value: 4, max: 1)
            task = try make(.taskStorage, key: 4, value: 8, max: 0, flags: .noPrealloc)
            inode = try make(.inodeStorage, key: 4, value: 8, max: 0, flags: .noPrealloc)
            cgroup = try make(.cgrpStorage, key: 4, value: 8, max: 0, flags: .noPrealloc)
            sockMap = try make(.sockMap, key: 4, value: 8, max: 2)
            sockHash = try make(.sockHash, key: 8, value: 8, max: 2)
            cgroupArray = try make(.cgroupArray, key: 4, value: 4, max: 2)
        }
    }

    /// Helpers whose first argument is the context (packet and socket helpers).
    static func takesContext(_ id: HelperID) -> Bool {
        [
            "bpf_skb", "bpf_xdp", "bpf_l3", "bpf_l4", "bpf_clone", "bpf_csum", "bpf_get_hash", "bpf_set_hash",
            "bpf_get_route", "bpf_check_mtu", "bpf_get_socket", "bpf_get_netns", "bpf_get_cgroup_classid",
            "bpf_override", "bpf_read_branch", "bpf_perf_prog", "bpf_lwt",
        ]
        .contains { id.name.hasPrefix($0) }
    }

    /// `lddw %r2, callbackMarker` is patched into a `BPF_PSEUDO_FUNC` load of the program's
    /// callback (`mov %r0, 0; exit` after the main function).
    static let callbackMarker: Int32 = 0x7777

    /// The program calling `id`: R6 = context, R7 = a zeroed 256-byte stack buffer, R8 another;
    /// arguments by default R1 = R7, R2 = 8, R3 = R8, R4 = 8, R5 = 0, or for helpers taking the
    /// context R1 = context, R2 = 0 (an offset), R3 = R8, R4 = 8, R5 = 0.
    static func source(_ id: HelperID, _ m: Maps, perCPU: UInt64) -> String {
        func map(_ handle: UInt64) -> String { "lddw %r1, 0x\(String(handle, radix: 16))" }
        let prelude = "mov %r6, %r1\nmov %r7, %r10\nadd %r7, -256\nmov %r8, %r10\nadd %r8, -512\n"
        let defaults =
            takesContext(id)
            ? "mov %r1, %r6\nmov %r2, 0\nmov %r3, %r8\nmov %r4, 8\nmov %r5, 0\n"
            : "mov %r1, %r7\nmov %r2, 8\nmov %r3, %r8\nmov %r4, 8\nmov %r5, 0\n"
        let callback = "lddw %r2, \(callbackMarker)\n"
        /// Looks up element 0 of `handle` into R0 (exits when missing).
        func element(_ handle: UInt64) -> String {
            "\(map(handle))\nmov %r2, %r7\ncall 1\njne %r0, 0, +1\nexit\n"
        }
        let call = "call \(id.rawValue)\nexit"
        let body: String
        switch id {
        case .mapLookupElem, .mapUpdateElem, .mapDeleteElem:
            body = "\(map(m.hash))\nmov %r2, %r7\nmov %r3, %r8\nmov %r4, 0\n"
        case .mapPushElem:
            body = "\(map(m.queue))\nmov %r2, %r8\nmov %r3, 0\n"
        case .mapPopElem, .mapPeekElem:
            body = "\(map(m.queue))\nmov %r2, %r8\n"
        case .tailCall:
            body = "mov %r1, %r6\nlddw %r2, 0x\(String(m.programs, radix: 16))\nmov %r3, 0\n"
        case .redirectMap:
            body = "\(map(m.devices))\nmov %r2, 0\nmov %r3, 0\n"
        case .perfEventOutput, .xdpOutput, .skbOutput:
            body =
                "mov %r1, %r6\nlddw %r2, 0x\(String(m.perf, radix: 16))\nlddw %r3, 0xffffffff\nmov %r4, %r8\nmov %r5, 8\n"
        case .perfEventRead:
            body = "\(map(m.perf))\nmov %r2, 0\n"
        case .perfEventReadValue:
            body = "\(map(m.perf))\nmov %r2, 0\nmov %r3, %r8\nmov %r4, 24\n"
        case .perfProgReadValue:
            body = "mov %r1, %r6\nmov %r2, %r8\nmov %r3, 24\n"
        case .getStackid:
            body = "mov %r1, %r6\nlddw %r2, 0x\(String(m.stack, radix: 16))\nmov %r3, 0\n"
        case .getStack, .getTaskStack:
            body = "mov %r1, %r7\nmov %r2, %r8\nmov %r3, 64\nmov %r4, 0\n"
        case .spinLock, .spinUnlock:
            // Both: take the lock, then release it.
            return prelude + element(m.lockArray) + "mov %r6, %r0\nmov %r1, %r6\ncall 93\nmov %r1, %r6\ncall 94\nexit"
        case .timerInit:
            body =
                element(m.timerArray)
                + "mov %r1, %r0\n\(map(m.timerArray).replacingOccurrences(of: "%r1", with: "%r2"))\nmov %r3, 1\n"
        case .timerSetCallback, .timerStart, .timerCancel:
            // Initialised, with a callback, then the call (start: in 1 ms).
            return prelude + element(m.timerArray) + "mov %r9, %r0\nmov %r1, %r9\n"
                + map(m.timerArray).replacingOccurrences(of: "%r1", with: "%r2") + "\nmov %r3, 1\ncall 169\n"
                + "mov %r1, %r9\n\(callback)call 170\nmov %r1, %r9\nmov %r2, 1000000\nmov %r3, 0\n"
                + "mov %r1, %r9\n" + (id == .timerSetCallback ? callback : "mov %r2, 1000000\nmov %r3, 0\n")
                + "call \(id.rawValue)\nexit\nmov %r0, 0\nexit"
        case .ringbufOutput:
            body = "\(map(m.ring))\nmov %r2, %r8\nmov %r3, 8\nmov %r4, 0\n"
        case .ringbufReserve, .ringbufSubmit, .ringbufDiscard:
            let commit = id == .ringbufDiscard ? 133 : 132
            return prelude + "\(map(m.ring))\nmov %r2, 8\nmov %r3, 0\ncall 131\njne %r0, 0, +1\nexit\n"
                + "mov %r1, %r0\nmov %r2, 0\ncall \(commit)\nexit"
        case .ringbufQuery:
            body = "\(map(m.ring))\nmov %r2, 0\n"
        case .ringbufReserveDynptr, .ringbufSubmitDynptr, .ringbufDiscardDynptr:
            let commit = id == .ringbufDiscardDynptr ? 200 : 199
            return prelude + "\(map(m.ring))\nmov %r2, 8\nmov %r3, 0\nmov %r4, %r7\ncall 198\n"
                + "mov %r1, %r7\nmov %r2, 0\ncall \(commit)\nexit"
        case .dynptrFromMem, .dynptrRead, .dynptrWrite, .dynptrData:
            // A dynptr over R8's buffer at R7, then the call on it.
            let make = "mov %r1, %r8\nmov %r2, 64\nmov %r3, 0\nmov %r4, %r7\ncall 197\n"
            switch id {
            case .dynptrRead: body = make + "mov %r1, %r8\nmov %r2, 8\nmov %r3, %r7\nmov %r4, 0\nmov %r5, 0\n"
            case .dynptrWrite: body = make + "mov %r1, %r7\nmov %r2, 0\nmov %r3, %r8\nmov %r4, 8\nmov %r5, 0\n"
            case .dynptrData: body = make + "mov %r1, %r7\nmov %r2, 0\nmov %r3, 8\n"
            default: body = "mov %r1, %r8\nmov %r2, 64\nmov %r3, 0\nmov %r4, %r7\n"
            }
        case .mapLookupPercpuElem:
            body = "\(map(m.perCPUArray))\nmov %r2, %r7\nmov %r3, 0\n"
        case .taskStorageGet, .inodeStorageGet, .cgrpStorageGet:
            let handle = id == .taskStorageGet ? m.task : id == .inodeStorageGet ? m.inode : m.cgroup
            body = "\(map(handle))\nmov %r2, %r7\nmov %r3, 0\nmov %r4, 1\n"
        case .taskStorageDelete, .inodeStorageDelete, .cgrpStorageDelete:
            let handle = id == .taskStorageDelete ? m.task : id == .inodeStorageDelete ? m.inode : m.cgroup
            body = "\(map(handle))\nmov %r2, %r7\n"
        case .forEachMapElem, .userRingbufDrain:
            return prelude + map(id == .forEachMapElem ? m.array : m.userRing) + "\n\(callback)mov %r3, 0\nmov %r4, 0\n"
                + "call \(id.rawValue)\nexit\nmov %r0, 0\nexit"
        case .loop:
            body = "mov %r1, 0\nmov %r2, 0\nmov %r3, 0\nmov %r4, 0\n"
        case .sysctlGetName, .sysctlGetCurrentValue, .sysctlGetNewValue, .sysctlSetNewValue:
            body = "mov %r1, %r6\nmov %r2, %r8\nmov %r3, 8\nmov %r4, 0\n"
        case .getFuncRet:
            body = "mov %r1, %r7\nmov %r2, %r8\n"
        case .strtol, .strtoul:
            body = "mov %r1, %r7\nmov %r2, 8\nmov %r3, 0\nmov %r4, %r8\n"
        case .perCpuPtr, .thisCpuPtr:
            body = "lddw %r1, 0x\(String(perCPU, radix: 16))\nmov %r2, 1\n"
        case .fibLookup:
            // Zeroed parameters: family 0, which the kernel answers with -EAFNOSUPPORT.
            body = "mov %r1, %r6\nmov %r2, %r8\nmov %r3, 64\nmov %r4, 0\n"
        case .skLookupTcp, .skLookupUdp, .skcLookupTcp:
            // A zeroed IPv4 tuple in the current netns: no socket, so no reference to release.
            body = "mov %r1, %r6\nmov %r2, %r8\nmov %r3, 12\nmov %r4, -1\nmov %r5, 0\n"
        case .skbGetTunnelKey, .skbGetTunnelOpt:
            body = "mov %r1, %r6\nmov %r2, %r8\nmov %r3, 44\nmov %r4, 0\n"
        case .skRedirectMap, .msgRedirectMap:
            body = "mov %r1, %r6\nlddw %r2, 0x\(String(m.sockMap, radix: 16))\nmov %r3, 0\nmov %r4, 0\n"
        case .skRedirectHash, .msgRedirectHash:
            body = "mov %r1, %r6\nlddw %r2, 0x\(String(m.sockHash, radix: 16))\nmov %r3, %r7\nmov %r4, 0\n"
        case .skbUnderCgroup:
            body = "mov %r1, %r6\nlddw %r2, 0x\(String(m.cgroupArray, radix: 16))\nmov %r3, 0\n"
        case .currentTaskUnderCgroup:
            body = "\(map(m.cgroupArray))\nmov %r2, 0\n"
        case .tcpRawGenSyncookieIpv4, .tcpRawGenSyncookieIpv6, .tcpRawCheckSyncookieIpv4, .tcpRawCheckSyncookieIpv6:
            body = "mov %r1, %r7\nmov %r2, %r8\nmov %r3, 20\n"
        case .sysBpf, .sysClose:
            body = "mov %r1, 0\nmov %r2, %r8\nmov %r3, 8\n"
        default:
            body = defaults
        }
        return prelude + body + call
    }

    static var contexts: [(String, any Context)] {
        [
            ("generic", GenericContext()),
            ("__sk_buff", SKBContext(packet: ContextTestSupport.udpPacket)),
            ("xdp_md", XDPContext(packet: ContextTestSupport.udpPacket)),
        ]
    }

    @Test func everyHelperIdIsEmulated() throws {
        let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 2, randomSeed: 1))
        let vm = VM(emulator: emulator)
        let maps = try Maps(emulator, vm)
        let perCPU = try emulator.kernelObjects.object(
            named: "runqueues", symbol: KernelSymbol(bytes: [1, 2, 3, 4], isPerCPU: true), size: 4, cpuCount: 2, in: vm)
        let implemented = Set(emulator.implementedHelperIDs)
        var unknown: [String] = []
        var ranCleanly = 0
        var stopped: [String] = []
        for id in HelperID.known where !Self.pending.contains(id.name) {
            if !implemented.contains(id.rawValue) { unknown.append("\(id.name) (#\(id.rawValue)): not implemented") }
            var instructions = try Assembler.assemble(Self.source(id, maps, perCPU: perCPU.address))
            // The callback is the last two instructions.
            for slot in instructions.indices
            where instructions[slot].opcode == 0x18 && instructions[slot].imm == Self.callbackMarker {
                instructions[slot].source = 4
                instructions[slot].imm = Int32(instructions.count - 2 - (slot + 1))
            }
            let program = try vm.load(instructions, name: id.name)
            var exited = false
            var failures: [String] = []
            for (name, context) in Self.contexts {
                let process = try vm.makeProcess(for: program, context: context)
                let state = try #require(LinuxProcessState.of(process))
                state.sysctl = SysctlAccess(
                    name: "net/ipv4/tcp_mem", currentValue: Array("1\t2\t3".utf8), newValue: Array("4\t5\t6".utf8))
                state.stacks = TaskStacks(kernel: [0xFFFF_FFFF_8100_0000, 0xFFFF_FFFF_8100_0100], user: [0x40_1000])
                state.tracedFunction = TracedFunction(argumentCount: 2, hasReturnValue: true)
                do {
                    _ = try process.run(instructionLimit: 100_000)
                    exited = true
                } catch {
                    if error.code == .unknownHelper {
                        unknown.append("\(id.name) (#\(id.rawValue)) under \(name): \(error)")
                    }
                    failures.append("\(name): \(error.kind)")
                }
            }
            if exited || Self.exercisedByTheirOwnTests[id.name] != nil {
                ranCleanly += 1
            } else {
                stopped.append("\(id.name): \(failures.joined(separator: "; "))")
            }
        }
        #expect(unknown.isEmpty, "\(unknown.joined(separator: "\n"))")
        // Plausible arguments: every call returns to the program in some context.
        #expect(
            ranCleanly == HelperID.known.count - Self.pending.count,
            "only \(ranCleanly) ran to the end:\n\(stopped.joined(separator: "\n"))")
    }

    @Test func thePendingSetsNameOnlyRealHelpersThatAreNotEmulatedYet() {
        let implemented = Set(LinuxEmulator().implementedHelperIDs)
        for name in Self.pending.sorted() {
            guard let id = HelperID(kernelName: name) else {
                Issue.record("\(name) is not a Linux helper")
                continue
            }
            // Once a pending helper is emulated, take it off the list.
            #expect(!implemented.contains(id.rawValue), "\(name) is emulated now: remove it from the pending set")
        }
    }
}
