import MimicCore
import MimicMemory

/// The helpers that read the emulated system through the current task (`TaskEnvironment`,
/// which events and contexts set from `EmulatedSystem`): `HelperID.getCurrentTask`,
/// `.getCurrentTaskBtf`, `.getNsCurrentPidTgid`, `.getCurrentCgroupId`,
/// `.getCurrentAncestorCgroupId`, `.dPath`, `.copyFromUser`, `.copyFromUserTask`,
/// `.probeWriteUser`, `.taskPtRegs`; and the iterator output helpers `.seqPrintf`, `.seqWrite`.
enum SystemHelpers {
    static func all(for emulator: LinuxEmulator) -> [Helper] {
        [
            LinuxHelper.make(.getCurrentTask) { call throws(HelperFailure) in call.state?.environment.taskAddress ?? 0
            },
            LinuxHelper.make(.getCurrentTaskBtf) { call throws(HelperFailure) in
                let address = call.state?.environment.taskAddress ?? 0
                guard address != 0 else {
                    // The verifier promises programs a valid task: say why there is none.
                    throw .message(
                        "no task_struct is laid out for the current task (give the emulator a kernel BTF with struct task_struct: LinuxConfiguration.kernelBTF, mimic --btf)"
                    )
                }
                return address
            },
            // As kernel/bpf/helpers.c: size must be sizeof(struct bpf_pidns_info) (8), the
            // namespace must be the task's (nsfs device and inode), else -EINVAL with the
            // destination cleared.
            LinuxHelper.make(.getNsCurrentPidTgid) { call throws(HelperFailure) in
                let size = try call.size(4)
                let environment = call.state?.environment ?? TaskEnvironment()
                let device = call.arg(1)
                guard size == 8, device & 0xFFFF_FFFF == device, device == environment.namespaceDevice,
                    call.arg(2) == environment.pidNamespace
                else {
                    try call.zero(call.arg(3), count: size)
                    return Errno.invalid.r0
                }
                let pid = environment.namespacePid ?? environment.pid
                let tgid = environment.namespaceTgid ?? environment.tgid
                try call.write(littleEndian(UInt64(tgid) << 32 | UInt64(pid), 8), at: call.arg(3))
                return 0
            },
            LinuxHelper.make(.getCurrentCgroupId) { call throws(HelperFailure) in
                (call.state?.environment ?? TaskEnvironment()).cgroupAncestry.last ?? 0
            },
            // cgroup_ancestor(): the ancestor at `level` (0 is the root), 0 past the task's own.
            LinuxHelper.make(.getCurrentAncestorCgroupId) { call throws(HelperFailure) in
                let ancestry = (call.state?.environment ?? TaskEnvironment()).cgroupAncestry
                let level = Int64(call.argInt(1))
                guard level >= 0, level < Int64(ancestry.count) else { return 0 }
                return ancestry[Int(level)]
            },
            // d_path() of a `struct path` in the emulated kernel (a file's f_path): the length
            // with the NUL, or -ENAMETOOLONG when it does not fit.
            LinuxHelper.make(.dPath) { [weak emulator] call throws(HelperFailure) in
                let size = try call.size(3)
                let paths = try systemState(emulator, call)?.kernel?.paths ?? [:]
                guard let path = paths[call.arg(1)] else {
                    throw .message(
                        "r1 (0x\(String(call.arg(1), radix: 16))) is not the f_path of a file of the emulated system")
                }
                let bytes = Array(path.utf8) + [0]
                guard bytes.count <= size else { return Errno(rawValue: 36).r0 } // ENAMETOOLONG
                try call.write(bytes, at: call.arg(2))
                return UInt64(bytes.count)
            },
            // task_pt_regs(task): the task's user registers at the top of its kernel stack.
            LinuxHelper.make(.taskPtRegs) { [weak emulator] call throws(HelperFailure) in
                guard let address = try systemState(emulator, call)?.kernel?.registerAddresses[call.arg(1)] else {
                    throw .message(
                        "r1 (0x\(String(call.arg(1), radix: 16))) is not a task_struct of the emulated system")
                }
                return address
            },
            LinuxHelper.make(.copyFromUser) { call throws(HelperFailure) in
                try copyFromUser(call, memory: call.state?.environment.userMemory, source: call.arg(3))
            },
            LinuxHelper.make(.copyFromUserTask) { [weak emulator] call throws(HelperFailure) in
                guard call.arg(5) == 0 else {
                    try call.zero(call.arg(1), count: try call.size(2))
                    return Errno.invalid.r0
                }
                let state = try systemState(emulator, call)
                guard let pid = state?.kernel?.pidsByAddress[call.arg(4)] else {
                    throw .message(
                        "r4 (0x\(String(call.arg(4), radix: 16))) is not a task_struct of the emulated system")
                }
                return try copyFromUser(call, memory: state?.userMemories[pid], source: call.arg(3))
            },
            // bpf_probe_write_user(dst, src, len): into a writable region of the task's memory.
            LinuxHelper.make(.probeWriteUser) { call throws(HelperFailure) in
                let bytes = try call.read(call.arg(2), count: try call.size(3))
                if let memory = call.state?.environment.userMemory {
                    return memory.write(bytes, at: call.arg(1)) ? 0 : Errno.fault.r0
                }
                do { try call.process.memory.write(bytes, at: call.arg(1)) } catch { return Errno.fault.r0 }
                return 0
            },
            LinuxHelper.make(.seqPrintf) { call throws(HelperFailure) in
                let state = try seqFile(call)
                let formatSize = try call.size(3, limit: 1 << 16)
                let format = try call.read(call.arg(2), count: formatSize)
                guard format.last == 0 else { return Errno.invalid.r0 }
                let args: [UInt64]
                switch try TraceHelpers.varargs(call, data: call.arg(4), length: call.arg(5)) {
                case .failure(let errno): return errno.r0
                case .success(let values): args = values
                }
                switch PrintfFormatter.format(format, args: args, maxArgs: args.count, memory: call.process.memory) {
                case .failure(let errno): return errno.r0
                case .success(let text): state.seqOutput += text
                }
                return 0
            },
            LinuxHelper.make(.seqWrite) { call throws(HelperFailure) in
                let state = try seqFile(call)
                state.seqOutput += try call.read(call.arg(2), count: try call.size(3))
                return 0
            },
        ]
    }

    /// `bpf_get_file_xattr(file, name__str, value_p)` (`fs/bpf_fs_kfuncs.c`): the extended
    /// attribute `name` of a file of the emulated system into the dynptr's memory; `-EPERM` for
    /// a name outside `user.` and `security.bpf.`, `-EINVAL` for a NULL or read-only dynptr,
    /// then as `__vfs_getxattr`: `-ENODATA` when the file has no such attribute, `-ERANGE` when
    /// it does not fit (a zero-sized dynptr asks for the size), else its length.
    static func kfuncs(for emulator: LinuxEmulator) -> [Helper] {
        [
            LinuxKfuncs.make("bpf_get_file_xattr") { [weak emulator] call throws(HelperFailure) in
                guard let xattrs = try systemState(emulator, call)?.kernel?.fileXattrs[call.arg(1)] else {
                    throw .message(
                        "r1 (0x\(String(call.arg(1), radix: 16))) is not a struct file of the emulated system")
                }
                let name = try cString(call, at: call.arg(2), limit: 256)
                guard name.starts(with: Array("user.".utf8)) || name.starts(with: Array("security.bpf.".utf8)) else {
                    return Errno.notPermitted.r0
                }
                let dynptr = try Dynptrs.read(call, at: call.arg(3))
                guard let target = try Dynptrs.writableData(call, dynptr) else { return Errno.invalid.r0 }
                guard let value = xattrs[String(decoding: name, as: UTF8.self)] else {
                    return Errno(rawValue: 61).r0 // ENODATA
                }
                if dynptr.size > 0 {
                    guard UInt64(value.count) <= dynptr.size else { return Errno.outOfRange.r0 }
                    try call.write(value, at: target)
                }
                return UInt64(value.count)
            }
        ]
    }

    /// A NUL-terminated string of program memory (without the NUL), at most `limit` bytes.
    static func cString(_ call: HelperCall, at address: UInt64, limit: Int) throws(HelperFailure) -> [UInt8] {
        var bytes: [UInt8] = []
        while bytes.count < limit {
            let byte = try call.read(address &+ UInt64(bytes.count), count: 1)[0]
            if byte == 0 { return bytes }
            bytes.append(byte)
        }
        throw .message("the string at 0x\(String(address, radix: 16)) has no NUL within \(limit) bytes")
    }

    /// The emulator's system state (nil when the emulator is gone).
    static func systemState(_ emulator: LinuxEmulator?, _ call: HelperCall) throws(HelperFailure) -> SystemState? {
        guard let emulator else { return nil }
        do { return try emulator.systemState(in: call.process.vm) } catch { throw .message(error.description) }
    }

    static func littleEndian(_ value: UInt64, _ size: Int) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }

    /// copy_from_user(): the bytes or -EFAULT with the destination cleared. Without user memory
    /// (no emulated system), the source is VM memory.
    static func copyFromUser(_ call: HelperCall, memory: UserMemory?, source: UInt64) throws(HelperFailure) -> UInt64 {
        let size = try call.size(2)
        let bytes: [UInt8]?
        if let memory {
            bytes = memory.read(source, count: size)
        } else {
            bytes = try? call.process.memory.read(source, count: size)
        }
        guard let bytes else {
            try call.zero(call.arg(1), count: size)
            return Errno.fault.r0
        }
        try call.write(bytes, at: call.arg(1))
        return 0
    }

    /// The process's state when r1 is the `seq_file` of an iterator context.
    static func seqFile(_ call: HelperCall) throws(HelperFailure) -> LinuxProcessState {
        let state = try call.linuxState()
        guard let address = state.seqFileAddress, address == call.arg(1) else {
            throw .message(
                "\(call.name): r1 (0x\(String(call.arg(1), radix: 16))) is not the seq_file of an iterator context (ctx->meta->seq)"
            )
        }
        return state
    }
}
