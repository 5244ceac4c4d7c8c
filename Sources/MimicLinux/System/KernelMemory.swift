import MimicCore
import MimicMemory

/// The emulated kernel's objects for an `EmulatedSystem`, laid out from a target BTF (the
/// running kernel's `/sys/kernel/btf/vmlinux`, a `--btf` file, or a program's own BTF) in one
/// read-only region of the VM's shared memory, so that programs reading them with CO-RE
/// (`BPF_CORE_READ(task, real_parent, tgid)`) or `bpf_probe_read_kernel` see what the system says.
///
/// Per task: `task_struct` (`pid`, `tgid`, `comm`, `real_parent`, `parent`, `group_leader`,
/// `cred` / `real_cred`, `start_time`, `exit_code`, `nsproxy`, `cgroups`, `files`), its `cred`
/// (`uid`, `gid`, `euid`, `egid`, `suid`, `sgid`, `fsuid`, `fsgid`), `nsproxy` →
/// `pid_namespace` (`ns.inum`), `css_set` → `cgroup` (`level`, `kn` → `kernfs_node` `id`,
/// `name`, `parent`), `files_struct` → `fdtable` (`max_fds`, `fd[]`) → `file` (`f_path.dentry`
/// → `dentry.d_name.name`). An idle task (pid 0, `swapper/0`) is the parent of tasks whose
/// parent is not listed. Members the BTF does not have are left out; a BTF without
/// `task_struct` lays out nothing.
public final class KernelMemory: Sendable {
    /// `task_struct` addresses by pid (0 is the idle task).
    public let taskAddresses: [UInt32: UInt64]
    /// pid by `task_struct` address.
    let pidsByAddress: [UInt64: UInt32]
    /// The path of each `struct file`'s `f_path`, by the `f_path` address (for `bpf_d_path`).
    let paths: [UInt64: String]
    /// The path of each `struct file`, by the file's address (for `bpf_sock_from_file`).
    let filePaths: [UInt64: String]
    /// The extended attributes of each `struct file`, by its address (`bpf_get_file_xattr`).
    let fileXattrs: [UInt64: [String: [UInt8]]]
    /// Each task's user `pt_regs` (`task_pt_regs(task)`, what `bpf_task_pt_regs` returns), by
    /// the `task_struct` address.
    public let registerAddresses: [UInt64: UInt64]
    /// The region's base address and size.
    public let base: UInt64
    public let size: Int
    /// The region's storage, to map into processes made before it was laid out.
    let storage: RegionStorage

    init(
        taskAddresses: [UInt32: UInt64], paths: [UInt64: String], filePaths: [UInt64: String] = [:],
        fileXattrs: [UInt64: [String: [UInt8]]] = [:], registerAddresses: [UInt64: UInt64], base: UInt64,
        storage: RegionStorage
    ) {
        self.filePaths = filePaths
        self.storage = storage
        self.fileXattrs = fileXattrs
        self.registerAddresses = registerAddresses
        self.taskAddresses = taskAddresses
        var byAddress: [UInt64: UInt32] = [:]
        for (pid, address) in taskAddresses { byAddress[address] = pid }
        pidsByAddress = byAddress
        self.paths = paths
        self.base = base
        self.size = storage.count
    }

    /// Lays out `system`'s objects from `btf` and maps them read-only into `vm`'s shared memory;
    /// nil when the BTF has no `struct task_struct`.
    static func build(_ system: EmulatedSystem, btf: BTF, in vm: VM) throws(LoadError.Reason) -> KernelMemory? {
        var layout = KernelLayout(btf: btf)
        guard btf.typeID(named: "task_struct", kind: .structure) != nil else { return nil }
        var tasks: [UInt32: KernelLayout.Object] = [:]
        var idle = EmulatedSystem.Task(pid: 0, comm: "swapper/0")
        idle.cgroup = "/"
        let all = [idle] + system.tasks
        for task in all { tasks[task.pid] = layout.allocate("task_struct") }
        var cgroups: [String: KernelLayout.Object] = [:]
        var nodes: [String: KernelLayout.Object] = [:]
        // Parents before children, so a kernfs node can point to its parent's.
        for cgroup in system.cgroups.sorted(by: { $0.level < $1.level }) {
            guard let object = layout.allocate("cgroup") else { break }
            cgroups[cgroup.path] = object
            layout.set(object, ["level"], Int64(cgroup.level))
            if let node = layout.allocate("kernfs_node") {
                nodes[cgroup.path] = node
                layout.set(object, ["kn"], pointer: node)
                layout.set(node, ["id"], Int64(bitPattern: cgroup.id))
                let name = cgroup.path == "/" ? "" : String(cgroup.path.split(separator: "/").last ?? "")
                layout.set(node, ["name"], pointer: layout.string(name))
                let parent = "/" + cgroup.path.split(separator: "/").dropLast().joined(separator: "/")
                if cgroup.path != "/", let parentNode = nodes[parent] {
                    layout.set(node, ["parent"], pointer: parentNode)
                }
            }
        }
        var namespaces: [UInt64: KernelLayout.Object] = [:]
        var paths: [(file: KernelLayout.Object, path: String)] = []
        var xattrs: [(file: KernelLayout.Object, xattrs: [String: [UInt8]])] = []
        var registers: [(task: KernelLayout.Object, regs: KernelLayout.Object)] = []
        for task in all {
            guard let object = tasks[task.pid] else { continue }
            registers.append((object, try layout.registers(task)))
            layout.set(object, ["pid"], Int64(task.pid))
            layout.set(object, ["tgid"], Int64(task.tgid))
            layout.set(object, ["comm"], bytes: Array(task.comm.utf8.prefix(15)))
            layout.set(object, ["start_time"], Int64(bitPattern: task.startTime))
            layout.set(object, ["exit_code"], Int64(task.exitCode))
            // The parent process: its task (pid = ppid), else the idle task.
            let parent = task.pid == 0 ? object : (task.ppid != 0 ? tasks[task.ppid] : nil) ?? tasks[0] ?? object
            layout.set(object, ["real_parent"], pointer: parent)
            layout.set(object, ["parent"], pointer: parent)
            layout.set(object, ["group_leader"], pointer: tasks[task.tgid] ?? object)
            if let cred = layout.allocate("cred") {
                for (name, value) in [
                    ("uid", task.uid), ("euid", task.uid), ("suid", task.uid), ("fsuid", task.uid), ("gid", task.gid),
                    ("egid", task.gid), ("sgid", task.gid), ("fsgid", task.gid),
                ] {
                    layout.set(cred, [name, "val"], Int64(value))
                }
                layout.set(object, ["cred"], pointer: cred)
                layout.set(object, ["real_cred"], pointer: cred)
            }
            if let nsproxy = layout.allocate("nsproxy") {
                if namespaces[task.pidNamespace] == nil, let namespace = layout.allocate("pid_namespace") {
                    layout.set(namespace, ["ns", "inum"], Int64(bitPattern: task.pidNamespace))
                    layout.set(
                        namespace, ["level"], task.pidNamespace == EmulatedSystem.initialPidNamespace ? 0 : 1)
                    namespaces[task.pidNamespace] = namespace
                }
                if let namespace = namespaces[task.pidNamespace] {
                    layout.set(nsproxy, ["pid_ns_for_children"], pointer: namespace)
                }
                layout.set(object, ["nsproxy"], pointer: nsproxy)
            }
            if let cssSet = layout.allocate("css_set") {
                if let cgroup = cgroups[task.cgroup] { layout.set(cssSet, ["dfl_cgrp"], pointer: cgroup) }
                layout.set(object, ["cgroups"], pointer: cssSet)
            }
            if !task.files.isEmpty, let filesStruct = layout.allocate("files_struct"),
                let table = layout.allocate("fdtable")
            {
                let maxFD = Int(task.files.map(\.fd).max() ?? 0) + 1
                let array = layout.allocate(raw: 8 * maxFD)
                for file in task.files {
                    guard let fileObject = layout.allocate("file") else { break }
                    layout.set(raw: array, at: 8 * Int(file.fd), pointer: fileObject)
                    if let dentry = layout.allocate("dentry") {
                        let name = String(file.path.split(separator: "/").last ?? "/")
                        layout.set(dentry, ["d_name", "name"], pointer: layout.string(name))
                        layout.set(fileObject, ["f_path", "dentry"], pointer: dentry)
                    }
                    paths.append((fileObject, file.path))
                    xattrs.append((fileObject, file.xattrs))
                }
                layout.set(table, ["max_fds"], Int64(maxFD))
                layout.set(table, ["fd"], pointer: array)
                layout.set(filesStruct, ["fdt"], pointer: table)
                layout.set(object, ["files"], pointer: filesStruct)
            }
        }
        guard layout.bytes.count <= AddressSpace.regionLimit else {
            throw .unsupported("the emulated kernel's objects take \(layout.bytes.count) bytes, more than a region")
        }
        let base: UInt64
        let storage: RegionStorage
        do {
            storage = try RegionStorage(
                count: max(1, layout.bytes.count), charging: vm.memoryBudget, for: "the emulated kernel's objects")
            // The address is known only once mapped: map, then write the bytes with pointers.
            base = try vm.mapShared(storage, name: "kernel objects", kind: .readOnly)
            storage.write(layout.bytes(at: base), at: 0)
        } catch {
            throw .unsupported("cannot map the emulated kernel's objects: \(error)")
        }
        var pathAddresses: [UInt64: String] = [:]
        var fileAddresses: [UInt64: String] = [:]
        for (file, path) in paths {
            let offset = layout.field(file.type, ["f_path"])?.offset ?? 0
            pathAddresses[base + UInt64(file.offset + offset)] = path
            fileAddresses[base + UInt64(file.offset)] = path
        }
        var fileXattrs: [UInt64: [String: [UInt8]]] = [:]
        for (file, values) in xattrs { fileXattrs[base + UInt64(file.offset)] = values }
        var registerAddresses: [UInt64: UInt64] = [:]
        for (task, regs) in registers { registerAddresses[base + UInt64(task.offset)] = base + UInt64(regs.offset) }
        return KernelMemory(
            taskAddresses: tasks.mapValues { base + UInt64($0.offset) }, paths: pathAddresses,
            filePaths: fileAddresses, fileXattrs: fileXattrs, registerAddresses: registerAddresses, base: base,
            storage: storage)
    }
}

/// Objects of BTF struct types in one growing byte array, with pointers between them kept as
/// offsets until the array's address is known.
struct KernelLayout {
    struct Object {
        var offset: Int
        var type: UInt32
    }

    let btf: BTF
    var bytes: [UInt8] = []
    /// (where, target offset): 8-byte pointers to write once the base is known.
    var pointers: [(at: Int, target: Int)] = []
    /// Ids of the struct types by name, found once each.
    var structIDs: [String: UInt32?] = [:]

    init(btf: BTF) { self.btf = btf }

    /// A zeroed object of `struct name`, 64-byte aligned; nil when the BTF has no such struct.
    mutating func allocate(_ name: String) -> Object? {
        let id: UInt32?
        if let known = structIDs[name] {
            id = known
        } else {
            id = btf.typeIDs(named: name).first { if case .structure? = btf.type($0) { true } else { false } }
            structIDs[name] = id
        }
        guard let id, let size = btf.size(of: id) else { return nil }
        return Object(offset: append(max(size, 1)), type: id)
    }

    /// A zeroed untyped object (an array of pointers).
    mutating func allocate(raw size: Int) -> Object { Object(offset: append(max(size, 1)), type: 0) }

    /// A NUL-terminated string object.
    mutating func string(_ text: String) -> Object {
        let object = allocate(raw: text.utf8.count + 1)
        bytes.replaceSubrange(object.offset..<object.offset + text.utf8.count, with: Array(text.utf8))
        return object
    }

    private mutating func append(_ size: Int) -> Int {
        let offset = (bytes.count + 63) & ~63
        bytes += [UInt8](repeating: 0, count: offset + size - bytes.count)
        return offset
    }

    /// The member at `path` of struct `type` (searching anonymous struct and union members, as
    /// C does): its byte offset from the struct and its type. Nil when a name is missing or the
    /// member is a bit-field.
    func field(_ type: UInt32, _ path: [String]) -> (offset: Int, type: UInt32)? {
        var offset = 0
        var current = type
        for name in path {
            guard let (memberOffset, memberType) = member(btf.resolve(current), name, depth: 0) else { return nil }
            offset += memberOffset
            current = memberType
        }
        return (offset, current)
    }

    private func member(_ type: UInt32, _ name: String, depth: Int) -> (Int, UInt32)? {
        guard depth < 8, let info = btf.type(type) else { return nil }
        for member in info.members {
            if member.name == name {
                guard member.bitfieldSize == 0, member.bitOffset % 8 == 0 else { return nil }
                return (Int(member.bitOffset / 8), member.type)
            }
            if member.name.isEmpty, let (inner, found) = self.member(btf.resolve(member.type), name, depth: depth + 1) {
                return (Int(member.bitOffset / 8) + inner, found)
            }
        }
        return nil
    }

    /// Sets an integer member (its BTF size decides the width); missing members are skipped.
    mutating func set(_ object: Object, _ path: [String], _ value: Int64) {
        guard let (offset, type) = field(object.type, path), let size = btf.size(of: type), [1, 2, 4, 8].contains(size)
        else { return }
        for i in 0..<size { bytes[object.offset + offset + i] = UInt8(truncatingIfNeeded: value >> (8 * Int64(i))) }
    }

    /// Sets a `char` array member (cut to its length less a NUL).
    mutating func set(_ object: Object, _ path: [String], bytes value: [UInt8]) {
        guard let (offset, type) = field(object.type, path), case .array(_, _, let count)? = btf.type(btf.resolve(type))
        else { return }
        let start = object.offset + offset
        let kept = value.prefix(max(0, Int(count) - 1))
        bytes.replaceSubrange(start..<start + kept.count, with: kept)
    }

    /// Sets a pointer member to `target`.
    mutating func set(_ object: Object, _ path: [String], pointer target: Object) {
        guard let (offset, type) = field(object.type, path), case .pointer? = btf.type(btf.resolve(type)) else {
            return
        }
        pointers.append((object.offset + offset, target.offset))
    }

    /// A task's user `struct pt_regs` (laid out from the BTF, else as the host's `RegisterLayout`),
    /// its registers set by member name; arm64's `x0`..`x30` are `regs[0..30]`. A name the
    /// struct does not have is an error naming the task and the register.
    mutating func registers(_ task: EmulatedSystem.Task) throws(LoadError.Reason) -> Object {
        let host = RegisterLayout.host
        let object = allocate("pt_regs") ?? allocate(raw: host.size)
        for (name, value) in task.registers.sorted(by: { $0.key < $1.key }) {
            var offset: Int?
            if object.type == 0 {
                offset = host.offset(of: name)
            } else if let (at, type) = field(object.type, [name]), btf.size(of: type) == 8 {
                offset = at
            } else if name.hasPrefix("x"), let n = Int(name.dropFirst()), (0...30).contains(n),
                let (at, type) = field(object.type, ["regs"]), case .array? = btf.type(btf.resolve(type))
            {
                offset = at + 8 * n
            }
            guard let offset, offset + 8 <= (btf.size(of: object.type) ?? host.size) else {
                throw .unsupported(
                    "task \(task.pid): register \(name) is not an 8-byte member of struct pt_regs in the kernel BTF")
            }
            for i in 0..<8 { bytes[object.offset + offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }
        return object
    }

    /// Sets the pointer at byte `offset` of a raw object.
    mutating func set(raw object: Object, at offset: Int, pointer target: Object) {
        pointers.append((object.offset + offset, target.offset))
    }

    /// The bytes with every pointer written for an array placed at `base`.
    func bytes(at base: UInt64) -> [UInt8] {
        var result = bytes
        for (at, target) in pointers {
            let value = base &+ UInt64(target)
            for i in 0..<8 { result[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }
        return result
    }
}
