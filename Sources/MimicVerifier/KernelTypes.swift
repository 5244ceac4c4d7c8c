import MimicCore

/// The flags of a BTF-typed pointer (`PTR_TRUSTED`, `PTR_UNTRUSTED`, `MEM_RCU`, `MEM_USER`,
/// `MEM_PERCPU` on `PTR_TO_BTF_ID`), which the kernel prints before `ptr_`.
public struct BTFPointerFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let trusted = BTFPointerFlags(rawValue: 1)
    public static let untrusted = BTFPointerFlags(rawValue: 2)
    public static let rcu = BTFPointerFlags(rawValue: 4)
    public static let user = BTFPointerFlags(rawValue: 8)
    public static let percpu = BTFPointerFlags(rawValue: 16)

    /// The prefix `reg_type_str` gives them (kernel/bpf/log.c), in its order.
    var prefix: String {
        var text = ""
        if contains(.user) { text += "user_" }
        if contains(.percpu) { text += "percpu_" }
        if contains(.rcu) { text += "rcu_" }
        if contains(.untrusted) { text += "untrusted_" }
        if contains(.trusted) { text += "trusted_" }
        return text
    }
}

/// The kernel's BTF as the verifier reads it for BTF-typed contexts and pointers: which
/// argument a tracing context slot holds (`btf_ctx_access`), and what a read through a
/// `PTR_TO_BTF_ID` gives (`btf_struct_walk`, kernel/bpf/btf.c, Linux 6.18).
struct KernelTypes {
    let btf: BTF

    /// What a read of a BTF-typed context slot or struct field gives.
    enum Read: Equatable {
        case scalar
        /// `PTR_TO_BTF_ID` of struct (or union) `id`, with the flags its declaration gives.
        case pointer(id: UInt32, flags: BTFPointerFlags, maybeNull: Bool)
        /// A pointer to something that is not a struct (`char *`, `void *`, `int *`) read from a
        /// struct: `PTR_TO_MEM | MEM_RDONLY | PTR_UNTRUSTED` of no size.
        case untrustedMemory
        /// `PTR_TO_BUF`, maybe NULL: a map element iterator's key or value.
        case buffer(readOnly: Bool)
        /// Refused: the kernel's first log line (its last is `invalid bpf_context access ...` for a
        /// context, this for a struct walk).
        case refused(String)
    }

    /// The name of type `id` (a struct's, for messages).
    func name(_ id: UInt32) -> String { btf.type(id)?.name ?? "" }

    /// The struct (or union) named `name`, for the pointers a helper or context field gives.
    func structID(named name: String) -> UInt32? {
        btf.typeID(named: name, kind: .structure) ?? btf.typeID(named: name, kind: .union)
    }

    // MARK: Contexts

    /// A BTF-typed program's context: the attach target's arguments, 8-byte slots each.
    struct Context {
        let function: String
        /// The prototype's parameters; a tracepoint's begin with its `void *__data`.
        let prototype: [BTF.Parameter]
        /// The program's arguments: the prototype's, after `__data` for a tracepoint.
        var parameters: ArraySlice<BTF.Parameter> { prototype.dropFirst(kind == .rawTracepoint ? 1 : 0) }
        let returnType: UInt32
        /// The kind of program, for the return slot and the arguments' flags.
        let kind: Kind
        /// The tracepoint, for tp_btf (`raw_tp_null_args`).
        let tracepoint: String

        enum Kind { case fentry, fexit, modifyReturn, rawTracepoint, iterator, lsm }
    }

    /// The context of `target`, or nil when the kernel's BTF lacks it (the program cannot load,
    /// and the verdict then falls back to untyped reads).
    func context(of target: KernelAttachTarget, program: VerifierProgram) -> Context? {
        guard let id = btf.typeID(named: target.name, kind: target.kind) else { return nil }
        var protoID: UInt32
        switch btf.type(id) {
        case .function(_, let prototype, _)?: protoID = prototype
        case .typedef(_, let pointer)?:
            // btf_trace_NAME is a typedef of a pointer to the prototype.
            guard case .pointer(let target)? = btf.type(btf.resolve(pointer)) else { return nil }
            protoID = target
        default: return nil
        }
        protoID = btf.resolve(protoID)
        guard case .functionProto(let returnType, let parameters)? = btf.type(protoID) else { return nil }
        let kind: Context.Kind
        var tracepoint = ""
        switch program.attachType {
        case .traceFexit?: kind = .fexit
        case .modifyReturn?: kind = .modifyReturn
        case .traceRawTp?:
            kind = .rawTracepoint
            // The first parameter is the tracepoint's `void *__data`, not the program's.
            guard !parameters.isEmpty else { return nil }
            tracepoint = String(target.name.dropFirst("btf_trace_".count))
        case .traceIter?: kind = .iterator
        default: kind = program.type == .lsm ? .lsm : .fentry
        }
        // The kernel names a tracepoint without its typedef's prefix (`attach_func_name`).
        return Context(
            function: kind == .rawTracepoint ? tracepoint : target.name, prototype: parameters, returnType: returnType,
            kind: kind, tracepoint: tracepoint)
    }

    /// `btf_ctx_access`: a read of `size` bytes at `off` of `context`.
    func read(_ context: Context, off: Int, size: Int) -> Read {
        let name = context.function
        guard off % 8 == 0 else { return .refused("func '\(name)' offset \(off) is not multiple of 8") }
        // btf_ctx_arg_idx: arguments take their size rounded up to 8 bytes, the return value the
        // slot after them. It counts a tracepoint's `__data` too, and the arguments are then taken
        // after it, as the kernel does (so ctx[k] is argument k, and the slot after the last is
        // the missing return value).
        var end = 0
        var index = context.prototype.count + 1
        for (k, parameter) in context.prototype.enumerated() {
            end += slotSize(parameter.type)
            if off < end {
                index = k
                break
            }
        }
        if index > context.prototype.count, off < end + slotSize(context.returnType) {
            index = context.prototype.count
        }
        let arguments = Array(context.parameters)
        guard index <= arguments.count else {
            return .refused("func '\(name)' doesn't have \(index + 1)-th argument")
        }
        var type: UInt32
        if index == arguments.count {
            switch context.kind {
            case .fexit, .lsm: type = context.returnType
            case .modifyReturn:
                let returned = btf.resolve(context.returnType)
                guard isSmallInt(returned) else {
                    return .refused("ret type \(kindName(returned)) not allowed for fmod_ret")
                }
                type = returned
            case .fentry, .rawTracepoint, .iterator:
                return .refused("func '\(name)' doesn't have \(index + 1)-th argument")
            }
        } else {
            type = arguments[index].type
        }
        let resolved = btf.resolve(type)
        let info = btf.type(resolved)
        switch info {
        case .int(_, let bytes, _, _, _)? where bytes <= 8: return .scalar
        case .enumeration?, .structure?: return .scalar
        case .pointer(let target)?:
            guard size == 8 else { return .refused("func '\(name)' size \(size) must be 8") }
            let pointee = btf.resolve(target)
            // An iterator's arguments after `meta` are the object it visits, NULL in the call
            // after the last one, but for the map a map's iterators visit.
            let isIteratorArgument = context.kind == .iterator && index > 0
            let isIteratedObject = isIteratorArgument && !(Self.iteratedMaps.contains(name) && index == 1)
            switch btf.type(pointee) {
            case .void?, .int?:
                // A map element iterator's key and value are buffers (`PTR_TO_BUF`), maybe NULL.
                if isIteratorArgument, index >= 2, case .void? = btf.type(pointee) {
                    return .buffer(readOnly: index == 2)
                }
                return .scalar
            case .structure?, .union?:
                var flags = BTFPointerFlags()
                if case .typeTag(let tag, _)? = btf.type(target) {
                    if tag == "user" { flags.insert(.user) }
                    if tag == "percpu" { flags.insert(.percpu) }
                }
                var maybeNull = false
                switch context.kind {
                case .rawTracepoint, .iterator: flags.insert(.trusted)
                case .lsm: if !Self.untrustedLSMHooks.contains(name) { flags.insert(.trusted) }
                default: break
                }
                if index < arguments.count, arguments[index].name.hasSuffix("__nullable") { maybeNull = true }
                if isIteratedObject { maybeNull = true }
                if context.kind == .rawTracepoint, let mask = Self.rawTracepointNullArguments[context.tracepoint] {
                    if mask >> (UInt64(index) * 4) & 1 != 0 { maybeNull = true }
                    if mask >> (UInt64(index) * 4) & 2 != 0 { return .scalar }
                }
                return .pointer(id: pointee, flags: flags, maybeNull: maybeNull)
            default:
                return .refused("func '\(name)' arg\(index) type \(kindName(pointee)) is not a struct")
            }
        default:
            let argument = index < arguments.count ? arguments[index].name : ""
            return .refused(
                "func '\(name)' arg\(index) '\(argument)' has type \(kindName(resolved)). Only pointer access is allowed"
            )
        }
    }

    private func slotSize(_ type: UInt32) -> Int {
        let resolved = btf.resolve(type)
        if case .pointer? = btf.type(resolved) { return 8 }
        return ((btf.size(of: resolved) ?? 0) + 7) / 8 * 8
    }

    private func isSmallInt(_ id: UInt32) -> Bool {
        if case .int(_, let bytes, _, _, _)? = btf.type(id) { return bytes <= 8 }
        return false
    }

    /// `btf_type_str`: the kind's name.
    private func kindName(_ id: UInt32) -> String {
        guard let info = btf.type(id) else { return "UNKNOWN" }
        switch info {
        case .void: return "UNKNOWN"
        case .int: return "INT"
        case .pointer: return "PTR"
        case .array: return "ARRAY"
        case .structure: return "STRUCT"
        case .union: return "UNION"
        case .enumeration(_, _, _, _, let is64): return is64 ? "ENUM64" : "ENUM"
        case .forward: return "FWD"
        case .typedef: return "TYPEDEF"
        case .volatile: return "VOLATILE"
        case .const: return "CONST"
        case .restrict: return "RESTRICT"
        case .function: return "FUNC"
        case .functionProto: return "FUNC_PROTO"
        case .variable: return "VAR"
        case .dataSection: return "DATASEC"
        case .float: return "FLOAT"
        case .declTag: return "DECL_TAG"
        case .typeTag: return "TYPE_TAG"
        }
    }

    // MARK: Struct walks

    /// `btf_struct_access` of a read of `size` bytes at `off` of struct (or union) `id`, reached
    /// through a pointer with `flags` (trusted or RCU, not maybe-NULL: its result's trust follows
    /// the kernel's allow-lists) while `inRCU` (`in_rcu_cs`).
    func walk(_ id: UInt32, off: Int, size: Int, flags: BTFPointerFlags, inRCU: Bool) -> Read {
        var type = id
        var off = off
        var walkFlags = BTFPointerFlags()
        // Each round descends into a nested struct, so a cyclic or corrupt BTF cannot loop.
        for _ in 0..<BTF.maxResolveDepth {
            switch walkOnce(&type, &off, size: size, flags: &walkFlags) {
            case .scalar: return .scalar
            case .untrustedMemory: return .untrustedMemory
            case .refused(let message): return .refused(message)
            case .nested: continue
            case .pointer(let target, let field, let tagged):
                return .pointer(
                    id: target,
                    flags: pointerFlags(
                        parent: id, field: field, parentFlags: flags, walked: walkFlags.union(tagged), inRCU: inRCU),
                    maybeNull: maybeNull(
                        parent: id, field: field, parentFlags: flags, walked: walkFlags.union(tagged), inRCU: inRCU))
            }
        }
        return .refused("access beyond struct \(name(id)) at off \(off) size \(size)")
    }

    private enum Step {
        case scalar, untrustedMemory, nested
        case pointer(target: UInt32, field: String, tagged: BTFPointerFlags)
        case refused(String)
    }

    /// One round of `btf_struct_walk`: the member `off` falls in, in struct `type`.
    private func walkOnce(_ type: inout UInt32, _ off: inout Int, size: Int, flags: inout BTFPointerFlags) -> Step {
        type = btf.resolve(type)
        let structName = name(type)
        let members: [BTF.Member]
        let structSize: Int
        switch btf.type(type) {
        case .structure(_, let bytes, let list)?:
            (members, structSize) = (list, Int(bytes))
        case .union(_, let bytes, let list)?:
            (members, structSize) = (list, Int(bytes))
            // Walking a union of several members gives untrusted pointers.
            if list.count != 1 { flags.insert(.untrusted) }
        default:
            return .refused("Type '\(structName)' is not a struct")
        }
        let beyond = "access beyond struct \(structName) at off \(off) size \(size)"
        if off + size > structSize {
            // Only a flexible array at the end may be read past the struct's size.
            guard let last = members.last, case .array(let element, _, 0)? = btf.type(btf.resolve(last.type)),
                off >= Int(last.bitOffset / 8)
            else { return .refused(beyond) }
            let elementType = btf.resolve(element)
            switch btf.type(elementType) {
            case .int?: return .scalar
            case .structure?, .union?:
                guard let elementSize = btf.size(of: elementType), elementSize > 0 else { return .refused(beyond) }
                off = (off - Int(last.bitOffset / 8)) % elementSize
                type = elementType
                return .nested
            default: return .refused(beyond)
            }
        }
        for member in members {
            var memberOffset = Int(member.bitOffset / 8)
            if off + size <= memberOffset { break }
            if member.bitfieldSize != 0 {
                let endBit = Int(member.bitOffset) + Int(member.bitfieldSize)
                if off <= memberOffset, (endBit + 7) / 8 <= off + size { return .scalar }
                continue
            }
            if off < memberOffset { break }
            guard var memberSize = btf.size(of: member.type) else {
                return .refused("field \(member.name) doesn't have size")
            }
            let end = memberOffset + memberSize
            if off >= end { continue }
            var memberType = btf.resolve(member.type)
            if case .array = btf.type(memberType) {
                if memberOffset == end { continue }
                // Arrays of arrays are one array of their innermost elements.
                var element = memberType
                var count = 1
                for _ in 0..<BTF.maxResolveDepth {
                    guard case .array(let inner, _, let n)? = btf.type(element) else { break }
                    let (product, overflow) = count.multipliedReportingOverflow(by: Int(n))
                    guard !overflow else { return .refused("field \(member.name) doesn't have size") }
                    count = product
                    element = btf.resolve(inner)
                }
                guard count > 0 else { continue }
                memberSize /= count
                // (A corrupt BTF can claim more elements than bytes.)
                guard memberSize > 0 else { return .refused("field \(member.name) doesn't have size") }
                memberOffset += (off - memberOffset) / memberSize * memberSize
                memberType = element
            }
            switch btf.type(memberType) {
            case .structure?, .union?:
                off -= memberOffset
                type = memberType
                return .nested
            case .pointer(let target)?:
                if memberSize != size || off != memberOffset {
                    return .refused(
                        "cannot access ptr member \(member.name) with moff \(memberOffset) in struct \(structName) with off \(off) size \(size)"
                    )
                }
                var tagged = BTFPointerFlags()
                if case .typeTag(let tag, _)? = btf.type(target) {
                    if tag == "user" { tagged = .user }
                    if tag == "percpu" { tagged = .percpu }
                    if tag == "rcu" { tagged = .rcu }
                }
                let pointee = btf.resolve(target)
                switch btf.type(pointee) {
                case .structure?, .union?: return .pointer(target: pointee, field: member.name, tagged: tagged)
                default: return .untrustedMemory
                }
            default:
                if off + size > end, !flags.contains(.untrusted) {
                    return .refused(
                        "access beyond the end of member \(member.name) (mend:\(end)) in struct \(structName) with off \(off) size \(size)"
                    )
                }
                return .scalar
            }
        }
        return .refused("struct \(structName) doesn't have field at offset \(off)")
    }

    /// Whether a pointer at `offset` into struct `id` points to a struct named `name`: the struct
    /// itself, or one nested at that offset, first members included (`btf_struct_ids_match`, not
    /// strict), as a helper argument of a given kernel type is matched.
    func points(into id: UInt32, offset: Int, toStructNamed name: String) -> Bool {
        var type = btf.resolve(id)
        var off = offset
        for _ in 0..<BTF.maxResolveDepth {
            if off == 0, self.name(type) == name { return true }
            // Down to the struct that begins exactly at `off` (WALK_STRUCT), if there is one.
            var flags = BTFPointerFlags()
            var found = false
            for _ in 0..<BTF.maxResolveDepth {
                guard case .nested = walkOnce(&type, &off, size: 1, flags: &flags) else { return false }
                if off == 0 {
                    found = true
                    break
                }
            }
            guard found else { return false }
        }
        return false
    }

    // MARK: Trust of walked pointers

    /// How a field's pointer is trusted when read from a trusted or RCU pointer (the
    /// `BTF_TYPE_SAFE_*` allow-lists of kernel/bpf/verifier.c: the register's struct, then the
    /// field, by name; the kernel also checks that the field points to the listed type).
    enum Safety { case trusted, trustedOrNull, rcu, rcuOrNull }

    static let safeFields: [String: [String: Safety]] = [
        "task_struct": ["cpus_ptr": .rcu, "cgroups": .rcu, "real_parent": .rcu, "group_leader": .rcu],
        "cgroup": ["kn": .rcu],
        "css_set": ["dfl_cgrp": .rcu],
        "cgroup_subsys_state": ["cgroup": .rcu],
        "mm_struct": ["exe_file": .rcuOrNull],
        "sk_buff": ["sk": .rcuOrNull],
        "request_sock": ["sk": .rcuOrNull],
        "bpf_iter_meta": ["seq": .trusted],
        "bpf_iter__task": ["meta": .trusted, "task": .trusted],
        "linux_binprm": ["file": .trusted],
        "file": ["f_inode": .trusted],
        "dentry": ["d_inode": .trustedOrNull],
        "socket": ["sk": .trustedOrNull],
    ]

    private func safety(parent: UInt32, field: String) -> Safety? { Self.safeFields[name(parent)]?[field] }

    /// The flags of a pointer read from field `field` of `parent` (check_ptr_to_btf_access).
    private func pointerFlags(
        parent: UInt32, field: String, parentFlags: BTFPointerFlags, walked: BTFPointerFlags, inRCU: Bool
    ) -> BTFPointerFlags {
        if parentFlags.contains(.untrusted) { return .untrusted }
        guard parentFlags.contains(.trusted) || parentFlags.contains(.rcu) else {
            return walked.subtracting([.trusted, .rcu])
        }
        switch safety(parent: parent, field: field) {
        case .trusted?, .trustedOrNull?: return walked.union(.trusted)
        case .rcu? where inRCU: return walked.union(.rcu)
        case .rcuOrNull? where inRCU:
            return walked.union(.rcu).subtracting(.untrusted)
        default:
            guard inRCU else { return .untrusted }
            if walked.contains(.rcu) { return walked }
            if !walked.intersection([.percpu, .user]).isEmpty { return walked }
            return walked.subtracting([.trusted, .rcu])
        }
    }

    /// Whether that pointer may be NULL (the `_or_null` lists, `__rcu` tags in an RCU section).
    private func maybeNull(
        parent: UInt32, field: String, parentFlags: BTFPointerFlags, walked: BTFPointerFlags, inRCU: Bool
    ) -> Bool {
        guard !parentFlags.contains(.untrusted), parentFlags.contains(.trusted) || parentFlags.contains(.rcu) else {
            return false
        }
        switch safety(parent: parent, field: field) {
        case .trustedOrNull?: return true
        case .trusted?: return false
        case .rcu?: return false
        case .rcuOrNull?: return inRCU
        case nil: return inRCU && walked.contains(.rcu)
        }
    }

    // MARK: Tables

    /// The iterators over a map's elements, whose `map` argument is the map, never NULL (their
    /// `ctx_arg_info` lists only the element's parts).
    static let iteratedMaps: Set<String> = ["bpf_iter_bpf_map_elem", "bpf_iter_bpf_sk_storage_map"]

    /// LSM hooks whose arguments are not trusted (`untrusted_lsm_hooks`, kernel/bpf/bpf_lsm.c).
    static let untrustedLSMHooks: Set<String> = [
        "bpf_lsm_bpf_map_free", "bpf_lsm_bpf_prog_free", "bpf_lsm_file_alloc_security",
        "bpf_lsm_file_free_security", "bpf_lsm_sk_alloc_security", "bpf_lsm_sk_free_security",
        "bpf_lsm_task_free",
    ]

    /// Tracepoints with arguments that may be NULL (`raw_tp_null_args`, kernel/bpf/btf.c, all
    /// 137 entries as of Linux 6.17/6.18): a nibble per argument (the first in the low bits),
    /// bit 0 maybe NULL, bit 1 maybe an error pointer (then read as a number).
    static let rawTracepointNullArguments: [String: UInt64] = [
        "sched_pi_setprio": 0x10,
        "sched_stick_numa": 0x100,
        "sched_swap_numa": 0x100,
        "afs_make_fs_call": 0x10,
        "afs_make_fs_calli": 0x10,
        "afs_make_fs_call1": 0x10,
        "afs_make_fs_call2": 0x10,
        "afs_protocol_error": 0x1,
        "afs_flock_ev": 0x10,
        "cachefiles_lookup": 0x201,
        "cachefiles_unlink": 0x1,
        "cachefiles_rename": 0x1,
        "cachefiles_prep_read": 0x1,
        "cachefiles_mark_active": 0x1,
        "cachefiles_mark_failed": 0x1,
        "cachefiles_mark_inactive": 0x1,
        "cachefiles_vfs_error": 0x1,
        "cachefiles_io_error": 0x1,
        "cachefiles_ondemand_open": 0x1,
        "cachefiles_ondemand_copen": 0x1,
        "cachefiles_ondemand_close": 0x1,
        "cachefiles_ondemand_read": 0x1,
        "cachefiles_ondemand_cread": 0x1,
        "cachefiles_ondemand_fd_write": 0x1,
        "cachefiles_ondemand_fd_release": 0x1,
        "ext4_mballoc_discard": 0x10,
        "ext4_mballoc_free": 0x10,
        "fib_table_lookup": 0x100,
        "posix_lock_inode": 0x10,
        "fcntl_setlk": 0x10,
        "locks_remove_posix": 0x10,
        "flock_lock_inode": 0x10,
        "break_lease_noblock": 0x10,
        "break_lease_block": 0x10,
        "break_lease_unblock": 0x10,
        "generic_delete_lease": 0x10,
        "time_out_leases": 0x10,
        "host1x_cdma_push_gather": 0x10000,
        "mm_khugepaged_scan_pmd": 0x10,
        "mm_collapse_huge_page_isolate": 0x1,
        "mm_khugepaged_scan_file": 0x10,
        "mm_khugepaged_collapse_file": 0x10,
        "mm_page_alloc": 0x1,
        "mm_page_pcpu_drain": 0x1,
        "mm_page_alloc_zone_locked": 0x1,
        "netfs_failure": 0x10,
        "device_pm_callback_start": 0x10,
        "qdisc_dequeue": 0x1000,
        "rxrpc_recvdata": 0x1,
        "rxrpc_resend": 0x10,
        "rxrpc_tq": 0x10,
        "rxrpc_client": 0x1,
        "kfree_skb": 0x1000,
        "xs_stream_read_data": 0x1,
        "xprt_reserve_cong": 0x10,
        "xprt_release_cong": 0x10,
        "xprt_get_cong": 0x10,
        "xprt_put_cong": 0x10,
        "tcp_send_reset": 0x11,
        "tcp_sendmsg_locked": 0x100,
        "tegra_dma_tx_status": 0x100,
        "tmigr_update_events": 0x1,
        "writeback_dirty_folio": 0x10,
        "folio_wait_writeback": 0x10,
        "mr_integ_alloc": 0x2000,
        "bpf_testmod_test_read": 0x0,
        "amdgpu_vm_bo_map": 0x1,
        "amdgpu_vm_bo_unmap": 0x1,
        "netfs_folioq": 0x1,
        "xfs_defer_create_intent": 0x1,
        "xfs_defer_cancel_list": 0x1,
        "xfs_defer_pending_finish": 0x1,
        "xfs_defer_pending_abort": 0x1,
        "xfs_defer_relog_intent": 0x1,
        "xfs_defer_isolate_paused": 0x1,
        "xfs_defer_item_pause": 0x1,
        "xfs_defer_item_unpause": 0x1,
        "xfs_defer_add_item": 0x1,
        "xfs_defer_cancel_item": 0x1,
        "xfs_defer_finish_item": 0x1,
        "xfs_ioc_free_eofblocks": 0x10,
        "xfs_blockgc_free_space": 0x10,
        "xfs_btree_updkeys": 0x100,
        "xfs_btree_overlapped_query_range": 0x100,
        "xfs_map_blocks_found": 0x10000,
        "xfs_map_blocks_alloc": 0x10000,
        "xfs_iomap_alloc": 0x1000,
        "xfs_iomap_found": 0x1000,
        "xfs_inodegc_flush": 0x1,
        "xfs_inodegc_push": 0x1,
        "xfs_inodegc_start": 0x1,
        "xfs_inodegc_stop": 0x1,
        "xfs_inodegc_queue": 0x1,
        "xfs_inodegc_throttle": 0x1,
        "xfs_fs_sync_fs": 0x1,
        "xfs_blockgc_start": 0x1,
        "xfs_blockgc_stop": 0x1,
        "xfs_blockgc_worker": 0x1,
        "xfs_blockgc_flush_all": 0x1,
        "xchk_nlinks_live_update": 0x10,
        "xchk_metapath_lookup": 0x100,
        "nfsd_dirent": 0x1,
        "nfsd_file_acquire": 0x1001,
        "nfsd_file_insert_err": 0x1,
        "nfsd_file_cons_err": 0x1,
        "nfs4_setup_sequence": 0x1,
        "pnfs_update_layout": 0x10000,
        "nfs4_inode_callback_event": 0x200,
        "nfs4_inode_stateid_callback_event": 0x200,
        "pnfs_mds_fallback_pg_init_read": 0x10000,
        "pnfs_mds_fallback_pg_init_write": 0x10000,
        "pnfs_mds_fallback_pg_get_mirror_count": 0x10000,
        "pnfs_mds_fallback_read_done": 0x10000,
        "pnfs_mds_fallback_write_done": 0x10000,
        "pnfs_mds_fallback_read_pagelist": 0x10000,
        "pnfs_mds_fallback_write_pagelist": 0x10000,
        "coda_dec_pic_run": 0x10,
        "coda_dec_pic_done": 0x10,
        "cfg80211_scan_done": 0x11,
        "rdev_set_coalesce": 0x10,
        "cfg80211_report_wowlan_wakeup": 0x100,
        "cfg80211_inform_bss_frame": 0x100,
        "cfg80211_michael_mic_failure": 0x10000,
        "wiphy_work_queue": 0x10,
        "wiphy_work_run": 0x10,
        "wiphy_work_cancel": 0x10,
        "wiphy_work_flush": 0x10,
        "hugetlbfs_alloc_inode": 0x10,
        "spufs_context": 0x10,
        "kvm_page_fault_enter": 0x100,
        "dpu_crtc_setup_mixer": 0x100,
        "binder_transaction": 0x100,
        "btree_path_free": 0x100,
        "hfi1_sdma_progress": 0x1000,
        "iptfs_ingress_postq_event": 0x1000,
        "neigh_update": 0x10,
        "amdtp_packet": 0x100,
    ]
}

extension Analysis {
    /// A read of a BTF-typed context (`btf_ctx_access`), once the program type's own rules
    /// (the 96 bytes of a tracing context, reads only, aligned) have passed.
    func typedContextRead(
        _ types: KernelTypes, _ context: KernelTypes.Context, _ pc: Int, _ r: Int, off: Int64, size: Int
    ) throws -> Register {
        let read = types.read(context, off: Int(off), size: size)
        if case .refused(let reason) = read {
            throw Failure(
                kind: .contextAccess, pc: pc, message: "invalid bpf_context access off=\(off) size=\(size)",
                registers: [r], advice: "\(reason) (btf_ctx_access: the context holds the attach target's arguments)")
        }
        return register(for: read, types)
    }

    /// The register a context or struct read gives.
    private func register(for read: KernelTypes.Read, _ types: KernelTypes) -> Register {
        switch read {
        case .scalar, .refused:
            return .scalar(.unknown)
        case .untrustedMemory:
            var memory = Register.pointer(.memory)
            memory.readOnly = true
            memory.btfFlags = .untrusted
            return memory
        case .buffer(let readOnly):
            var buffer = Register.pointer(.buffer)
            buffer.readOnly = readOnly
            buffer.maybeNull = true
            buffer.id = newID()
            return buffer
        case .pointer(let id, let flags, let maybeNull):
            var pointer = Register.pointer(.btfObject)
            pointer.btfID = id
            pointer.btfName = types.name(id)
            pointer.btfFlags = flags
            if maybeNull {
                pointer.maybeNull = true
                pointer.id = newID()
            }
            return pointer
        }
    }

    /// A load or store through a BTF-typed pointer (`check_ptr_to_btf_access`). Without the
    /// kernel's BTF (or of a pointer whose type is unknown), reads give numbers.
    func kernelObjectAccess(
        _ s: VerifierState, _ pc: Int, _ r: Int, _ ptr: Register, off: Int64, size: Int, write: Bool
    ) throws -> Register {
        guard let types = kernelTypes, ptr.btfID != 0 else {
            if write {
                throw Failure(
                    kind: .readOnly, pc: pc, message: "only read is supported", registers: [r],
                    advice: "kernel objects are read-only to BPF programs")
            }
            return .scalar(.unknown)
        }
        let name = types.name(ptr.btfID)
        if !isGPLCompatible(program.license) {
            throw Failure(
                kind: .invalidPointer, pc: pc,
                message: "Cannot access kernel 'struct \(name)' from non-GPL compatible program", registers: [r],
                advice:
                    "reading kernel structs directly needs a GPL-compatible license (`char LICENSE[] SEC(\"license\") = \"GPL\";`)"
            )
        }
        if off < 0 {
            throw Failure(
                kind: .invalidPointer, pc: pc, message: "R\(r) is ptr_\(name) invalid negative access: off=\(off)",
                registers: [r])
        }
        if !ptr.bounds.isConstant || ptr.bounds.varOff.value != 0 {
            throw Failure(
                kind: .invalidPointer, pc: pc,
                message: "R\(r) is ptr_\(name) invalid variable offset: off=\(off), var_off=\(ptr.bounds.varOff)",
                registers: [r],
                advice: "kernel structs are read at constant offsets only (fields, not computed indexes)")
        }
        if ptr.btfFlags.contains(.user) {
            throw Failure(
                kind: .invalidPointer, pc: pc, message: "R\(r) is ptr_\(name) access user memory: off=\(off)",
                registers: [r], advice: "read user memory with bpf_probe_read_user")
        }
        if ptr.btfFlags.contains(.percpu) {
            throw Failure(
                kind: .invalidPointer, pc: pc, message: "R\(r) is ptr_\(name) access percpu memory: off=\(off)",
                registers: [r], advice: "get this CPU's copy with bpf_this_cpu_ptr or bpf_per_cpu_ptr first")
        }
        if write {
            throw Failure(
                kind: .readOnly, pc: pc, message: "only read is supported", registers: [r],
                advice: "kernel objects are read-only to BPF programs")
        }
        let inRCU = !program.isSleepable || s.rcuDepth > 0 || s.lockInstruction >= 0
        let read = types.walk(ptr.btfID, off: Int(off), size: size, flags: ptr.btfFlags, inRCU: inRCU)
        if case .refused(let message) = read {
            throw Failure(kind: .invalidPointer, pc: pc, message: message, registers: [r])
        }
        return register(for: read, types)
    }

    /// A load or store through a map element iterator's buffer (`check_buffer_access`). The
    /// furthest byte is checked against the map when the iterator is attached, not here.
    func bufferAccess(_ pc: Int, _ r: Int, _ ptr: Register, off: Int64, size: Int, write: Bool) throws -> Register {
        if write && ptr.readOnly {
            throw Failure(kind: .readOnly, pc: pc, message: "R\(r) cannot write into \(ptr.typeName)", registers: [r])
        }
        if off < 0 {
            throw Failure(
                kind: .memoryBounds, pc: pc,
                message: "R\(r) invalid \(ptr.readOnly ? "rdonly" : "rdwr") buffer access: off=\(off), size=\(size)",
                registers: [r])
        }
        if !ptr.bounds.isConstant || ptr.bounds.varOff.value != 0 {
            throw Failure(
                kind: .memoryBounds, pc: pc,
                message: "R\(r) invalid variable buffer offset: off=\(off), var_off=\(ptr.bounds.varOff)",
                registers: [r])
        }
        return write ? Register() : .scalar(.unknown)
    }
}
