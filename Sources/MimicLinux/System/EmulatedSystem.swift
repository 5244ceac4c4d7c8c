import MimicCore
import MimicJSON
import Synchronization

/// The machine tracing programs observe: its tasks, cgroup hierarchy, kernel symbols and build
/// (`CONFIG_*` values, version), and each task's user memory. Read from a system file
/// (`mimic run --system FILE`, `EmulatedSystem(json:)`) or built by host code, and given to the
/// emulator as `LinuxConfiguration.system`.
///
/// The helpers that describe the current task (`bpf_get_current_pid_tgid`, `_uid_gid`, `_comm`,
/// `bpf_get_current_task(_btf)`, `bpf_get_ns_current_pid_tgid`, `bpf_get_current_cgroup_id`,
/// `bpf_get_current_ancestor_cgroup_id`, `bpf_d_path`, `bpf_probe_read_user*`,
/// `bpf_copy_from_user*`, `bpf_probe_write_user`) read the task an event or context names
/// (`TaskEnvironment(task:in:)`); kernel objects (`task_struct`, `cred`, ...) are laid out from
/// a target BTF by `KernelMemory`.
public struct EmulatedSystem: Sendable {
    /// A frame of a stack: a kernel symbol plus an offset (`do_sys_openat2+0x1f`), or an address.
    public struct Frame: Sendable, Equatable, CustomStringConvertible {
        /// The symbol, or nil for a bare address (`offset` is then the address).
        public var symbol: String?
        public var offset: UInt64

        public init(symbol: String?, offset: UInt64) {
            self.symbol = symbol
            self.offset = offset
        }

        public var description: String {
            symbol.map { "\($0)+0x\(String(offset, radix: 16))" } ?? "0x\(String(offset, radix: 16))"
        }
    }

    /// An open file of a task: its descriptor, the path `bpf_d_path` gives for it, and its
    /// extended attributes (what `bpf_get_file_xattr` reads), by name (`user.origin`).
    public struct OpenFile: Sendable, Equatable {
        public var fd: Int32
        public var path: String
        public var xattrs: [String: [UInt8]]

        public init(fd: Int32, path: String, xattrs: [String: [UInt8]] = [:]) {
            self.fd = fd
            self.path = path
            self.xattrs = xattrs
        }
    }

    /// Bytes of a task's user address space at a user address.
    public struct UserRegion: Sendable, Equatable {
        public var address: UInt64
        public var bytes: [UInt8]
        /// Whether `bpf_probe_write_user` may change it.
        public var writable: Bool

        public init(address: UInt64, bytes: [UInt8], writable: Bool = false) {
            self.address = address
            self.bytes = bytes
            self.writable = writable
        }
    }

    /// A task (a thread: `pid` is its thread id, `tgid` its process id).
    public struct Task: Sendable, Equatable {
        public var pid: UInt32
        public var tgid: UInt32
        /// The parent process's id (`real_parent->tgid`); 0 for a task whose parent is the idle task.
        public var ppid: UInt32
        public var uid: UInt32 = 0
        public var gid: UInt32 = 0
        public var comm: String
        /// The path of its cgroup v2 (`/`, `/system.slice/sshd.service`), which `cgroups` lists.
        public var cgroup: String = "/"
        /// The inode number of its pid namespace (`/proc/PID/ns/pid`): default the initial one,
        /// `PROC_PID_INIT_INO` (0xEFFFFFFC).
        public var pidNamespace: UInt64 = EmulatedSystem.initialPidNamespace
        /// Its thread and process ids inside that namespace (default: `pid`, `tgid`).
        public var namespacePid: UInt32? = nil
        public var namespaceTgid: UInt32? = nil
        /// `task_struct.start_time`: nanoseconds of monotonic time at which it started.
        public var startTime: UInt64 = 0
        /// `task_struct.exit_code` (the status `wait` reports: `code << 8`).
        public var exitCode: UInt32 = 0
        /// Innermost frame first, as `bpf_get_stack` returns them.
        public var kernelStack: [Frame] = []
        public var userStack: [Frame] = []
        public var files: [OpenFile] = []
        public var memory: [UserRegion] = []
        /// The task's user registers (what `bpf_task_pt_regs` points to: the `pt_regs` at the top
        /// of its kernel stack), by `struct pt_regs` member name (`ip`, `sp`, `di`, ... on
        /// x86-64; `pc`, `sp`, `x0`..`x30` on arm64); registers not given are 0.
        public var registers: [String: UInt64] = [:]

        public init(pid: UInt32, tgid: UInt32? = nil, ppid: UInt32 = 0, comm: String) {
            self.pid = pid
            self.tgid = tgid ?? pid
            self.ppid = ppid
            self.comm = comm
        }
    }

    /// A cgroup of the v2 hierarchy: its path and id (the kernfs node id, `bpf_get_current_cgroup_id`).
    public struct Cgroup: Sendable, Equatable {
        public var path: String
        public var id: UInt64

        public init(path: String, id: UInt64) {
            self.path = path
            self.id = id
        }

        /// The depth: 0 for the root `/`, 1 for `/a`, ...
        public var level: Int { path.split(separator: "/").count }
    }

    /// `PROC_PID_INIT_INO`, the initial pid namespace's inode number.
    public static let initialPidNamespace: UInt64 = 0xEFFF_FFFC
    /// The device of the namespace file system (`nsfs`) `bpf_get_ns_current_pid_tgid` compares
    /// (`stat -L -c %d /proc/self/ns/pid`); default 4.
    public var namespaceDevice: UInt64 = 4
    public var tasks: [Task] = []
    /// Every cgroup; the root `/` (id 1) is added when missing.
    public var cgroups: [Cgroup] = [Cgroup(path: "/", id: 1)]
    /// Kernel symbol addresses (`/proc/kallsyms`), for stack frames and `bpf_get_func_ip`.
    public var symbols: [String: UInt64] = [:]
    /// `CONFIG_*` values and the kernel version (`kernel.config`, `kernel.version` of the file).
    public var kernel = KernelConfig()

    public init(tasks: [Task] = [], cgroups: [Cgroup] = [], symbols: [String: UInt64] = [:]) {
        self.tasks = tasks
        for cgroup in cgroups where cgroup.path != "/" { self.cgroups.append(cgroup) }
        if let root = cgroups.first(where: { $0.path == "/" }) { self.cgroups[0] = root }
        self.symbols = symbols
    }

    /// The task with thread id `pid`.
    public func task(pid: UInt32) -> Task? { tasks.first { $0.pid == pid } }

    /// The cgroup at `path`.
    public func cgroup(path: String) -> Cgroup? { cgroups.first { $0.path == path } }

    /// The ids of `path`'s cgroup and its ancestors, the root first (index = level).
    public func cgroupAncestry(of path: String) -> [UInt64] {
        var ids: [String: UInt64] = [:]
        for cgroup in cgroups { ids[cgroup.path] = cgroup.id }
        return Self.ancestry(of: path, ids: ids)
    }

    /// `path`'s ancestry through an index of cgroup ids by path.
    static func ancestry(of path: String, ids: [String: UInt64]) -> [UInt64] {
        let components = path.split(separator: "/")
        return (0...components.count).map { level in ids["/" + components.prefix(level).joined(separator: "/")] ?? 0 }
    }

    /// The address of a frame (its symbol's address plus the offset).
    public func address(of frame: Frame) -> UInt64? {
        guard let symbol = frame.symbol else { return frame.offset }
        return symbols[symbol].map { $0 &+ frame.offset }
    }
}

// MARK: The system file

extension EmulatedSystem {
    /// Reads a system file (JSON; every object's members are checked, so a misspelt field is an
    /// error naming it):
    ///
    /// ```json
    /// {
    ///   "kernel": {"version": "6.8.0", "config": {"CONFIG_HZ": "250"},
    ///              "symbols": {"do_unlinkat": "0xffffffff81234560"}, "namespace_device": 4},
    ///   "cgroups": [{"path": "/system.slice", "id": 42}],
    ///   "tasks": [{"pid": 42, "tgid": 42, "ppid": 1, "uid": 1000, "gid": 1000, "comm": "bash",
    ///              "cgroup": "/system.slice", "start_time_ns": 5000000,
    ///              "namespace": {"pid_ns": 4026531836, "pid": 42, "tgid": 42},
    ///              "kernel_stack": ["do_sys_openat2+0x1f"], "user_stack": ["0x401000"],
    ///              "files": [{"fd": 3, "path": "/etc/passwd"}],
    ///              "memory": [{"address": "0x7ffd0000", "string": "/etc/passwd", "writable": true}],
    ///              "regs": {"ip": "0x401000", "sp": "0x7ffd1000"}}]
    /// }
    /// ```
    ///
    /// Integers may be JSON numbers or `"0x..."` strings. Memory contents are `string` (UTF-8 and
    /// a NUL), `hex` or `base64`.
    public init(json root: JSONField) throws(JSONError) {
        self.init()
        try root.object(knownMembers: ["kernel", "cgroups", "tasks"])
        let kernelField = root["kernel"]
        if !kernelField.isMissing {
            try kernelField.object(knownMembers: [
                "version", "config", "symbols", "namespace_device", "syscall_wrapper", "bpf_cookie",
            ])
            if let text = try kernelField["version"].optionalString() {
                guard let version = KernelConfig.version(release: text) else {
                    throw kernelField["version"].error(
                        "expected a release such as 6.8.0, got \"\(Self.excerpt(text))\"")
                }
                kernel.kernelVersion = version
            }
            for (name, field) in try kernelField["config"].optionalMembers() {
                guard name.hasPrefix("CONFIG_") else { throw field.error("a configuration name starts with CONFIG_") }
                switch field.value {
                case .string(let text)?: kernel.values[name] = text
                case .number(let text)?: kernel.values[name] = text
                case .bool(let flag)?: kernel.values[name] = flag ? "y" : "n"
                default: throw field.error("expected y, n, m, a number or a string")
                }
            }
            for (name, field) in try kernelField["symbols"].optionalMembers() {
                symbols[name] = try Self.integer(field)
            }
            if !kernelField["namespace_device"].isMissing {
                namespaceDevice = try Self.integer(kernelField["namespace_device"])
            }
            if case .bool(let flag)? = kernelField["syscall_wrapper"].value { kernel.hasSyscallWrapper = flag }
            if case .bool(let flag)? = kernelField["bpf_cookie"].value { kernel.hasBPFCookie = flag }
        }
        var seenCgroups: Set<String> = ["/"]
        var seenIDs: [UInt64: String] = [1: "/"]
        for field in try root["cgroups"].optionalElements() {
            try field.object(knownMembers: ["path", "id"])
            let path = try field["path"].string()
            guard path.hasPrefix("/"), !path.contains("//"), path == "/" || !path.hasSuffix("/") else {
                throw field["path"].error(
                    "expected an absolute path such as /system.slice, got \"\(Self.excerpt(path))\"")
            }
            let id = try Self.integer(field["id"])
            if path == "/" {
                seenIDs[cgroups[0].id] = nil
                cgroups[0].id = id
            } else {
                guard seenCgroups.insert(path).inserted else {
                    throw field["path"].error("cgroup \(Self.excerpt(path)) is listed twice")
                }
                cgroups.append(Cgroup(path: path, id: id))
            }
            if let other = seenIDs[id], other != path {
                throw field["id"].error("id \(id) is also cgroup \(other)'s")
            }
            seenIDs[id] = path
        }
        var seenPids: Set<UInt32> = []
        for field in try root["tasks"].optionalElements() {
            let task = try Self.task(field, cgroups: seenCgroups)
            guard seenPids.insert(task.pid).inserted else {
                throw field["pid"].error("pid \(task.pid) is listed twice")
            }
            for frame in task.kernelStack where address(of: frame) == nil {
                throw field["kernel_stack"].error(
                    "frame \(frame) names a symbol that kernel.symbols does not list")
            }
            tasks.append(task)
        }
    }

    /// Reads a system file's bytes.
    public init(bytes: [UInt8]) throws(JSONError) {
        try self.init(json: JSONField(try JSONValue.parse(bytes), path: ""))
    }

    static func task(_ field: JSONField, cgroups: Set<String>) throws(JSONError) -> Task {
        try field.object(knownMembers: [
            "pid", "tgid", "ppid", "uid", "gid", "comm", "cgroup", "start_time_ns", "exit_code", "namespace",
            "kernel_stack", "user_stack", "files", "memory", "regs",
        ])
        let pid = try field["pid"].integer(UInt32.self)
        var task = Task(
            pid: pid, tgid: try field["tgid"].optionalInteger(UInt32.self) ?? pid,
            ppid: try field["ppid"].optionalInteger(UInt32.self) ?? 0, comm: try field["comm"].string())
        guard task.comm.utf8.count <= 15 else {
            throw field["comm"].error("\"\(excerpt(task.comm))\" is longer than 15 bytes (TASK_COMM_LEN is 16)")
        }
        task.uid = try field["uid"].optionalInteger(UInt32.self) ?? 0
        task.gid = try field["gid"].optionalInteger(UInt32.self) ?? 0
        if let path = try field["cgroup"].optionalString() {
            guard cgroups.contains(path) else { throw field["cgroup"].error("no cgroup \(excerpt(path)) in cgroups") }
            task.cgroup = path
        }
        task.startTime = try field["start_time_ns"].optionalInteger(UInt64.self) ?? 0
        task.exitCode = try field["exit_code"].optionalInteger(UInt32.self) ?? 0
        let namespace = field["namespace"]
        if !namespace.isMissing {
            try namespace.object(knownMembers: ["pid_ns", "pid", "tgid"])
            if !namespace["pid_ns"].isMissing { task.pidNamespace = try integer(namespace["pid_ns"]) }
            task.namespacePid = try namespace["pid"].optionalInteger(UInt32.self)
            task.namespaceTgid = try namespace["tgid"].optionalInteger(UInt32.self)
        }
        task.kernelStack = try field["kernel_stack"].optionalElements().map { frame throws(JSONError) in
            try Self.frame(frame)
        }
        task.userStack = try field["user_stack"].optionalElements().map { frame throws(JSONError) in
            try Self.frame(frame)
        }
        // Checked against struct pt_regs of the kernel BTF when the objects are laid out.
        for (name, register) in try field["regs"].optionalMembers() {
            task.registers[name] = try integer(register)
        }
        var fds: Set<Int32> = []
        for file in try field["files"].optionalElements() {
            try file.object(knownMembers: ["fd", "path", "xattrs"])
            let fd = try file["fd"].integer(Int32.self)
            guard fd >= 0, fd < 1 << 16 else { throw file["fd"].error("expected a descriptor from 0 to 65535") }
            guard fds.insert(fd).inserted else { throw file["fd"].error("fd \(fd) is listed twice") }
            // Values: a string (its UTF-8 bytes, no NUL added) or {"hex": ...} / {"base64": ...}.
            var xattrs: [String: [UInt8]] = [:]
            for (name, value) in try file["xattrs"].optionalMembers() {
                if case .string(let text)? = value.value {
                    xattrs[name] = Array(text.utf8)
                } else {
                    try value.object(knownMembers: ["hex", "base64"])
                    guard value["hex"].isMissing != value["base64"].isMissing else {
                        throw value.error("give exactly one of hex or base64")
                    }
                    xattrs[name] = value["hex"].isMissing ? try value["base64"].base64() : try value.base64()
                }
            }
            task.files.append(OpenFile(fd: fd, path: try file["path"].string(), xattrs: xattrs))
        }
        for region in try field["memory"].optionalElements() {
            try region.object(knownMembers: ["address", "string", "hex", "base64", "writable"])
            let address = try integer(region["address"])
            let given = ["string", "hex", "base64"].filter { !region[$0].isMissing }
            guard given.count == 1 else { throw region.error("give exactly one of string, hex or base64") }
            let bytes: [UInt8]
            switch given[0] {
            case "string": bytes = Array(try region["string"].string().utf8) + [0]
            case "hex":
                bytes = try region.base64() // an object with "hex": JSONField reads it as hex
            default: bytes = try region["base64"].base64()
            }
            guard !bytes.isEmpty, address != 0, address &+ UInt64(bytes.count) > address else {
                throw region.error("a region needs bytes at a non-zero address that does not wrap around")
            }
            var writable = false
            if !region["writable"].isMissing {
                guard case .bool(let flag)? = region["writable"].value else {
                    throw region["writable"].error("expected true or false")
                }
                writable = flag
            }
            task.memory.append(UserRegion(address: address, bytes: bytes, writable: writable))
        }
        // Overlaps, found in one pass over the regions sorted by address.
        let order = task.memory.indices.sorted { task.memory[$0].address < task.memory[$1].address }
        for (previous, next) in zip(order, order.dropFirst()) {
            let earlier = task.memory[previous]
            if task.memory[next].address < earlier.address + UInt64(earlier.bytes.count) {
                throw JSONError(
                    path: "\(field["memory"].path)[\(next)]",
                    "overlaps the region at 0x\(String(earlier.address, radix: 16))")
            }
        }
        return task
    }

    /// A frame: `"symbol+0x1f"`, `"symbol"`, an address as `"0x..."` or a number.
    static func frame(_ field: JSONField) throws(JSONError) -> Frame {
        if case .number? = field.value { return Frame(symbol: nil, offset: try field.bits64()) }
        let text = try field.string()
        if let address = parseInteger(text) { return Frame(symbol: nil, offset: address) }
        let parts = text.split(separator: "+", maxSplits: 1).map(String.init)
        guard let symbol = parts.first, !symbol.isEmpty else {
            throw field.error("expected symbol+0xOFFSET or an address, got \"\(excerpt(text))\"")
        }
        var offset: UInt64 = 0
        if parts.count == 2 {
            guard let value = parseInteger(parts[1]) else {
                throw field.error("expected symbol+0xOFFSET, got \"\(excerpt(text))\"")
            }
            offset = value
        }
        return Frame(symbol: symbol, offset: offset)
    }

    /// An integer written as a JSON number or a string (`"0xffffffff81000000"`, `"42"`).
    static func integer(_ field: JSONField) throws(JSONError) -> UInt64 {
        if case .string(let text)? = field.value {
            guard let value = parseInteger(text) else {
                throw field.error("expected an integer, got \"\(excerpt(text))\"")
            }
            return value
        }
        return try field.bits64()
    }

    /// At most 40 characters of `text`, for messages (input is not echoed whole).
    static func excerpt(_ text: String) -> String { text.count > 40 ? "\(text.prefix(40))..." : text }

    static func parseInteger(_ text: String) -> UInt64? {
        if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt64(text.dropFirst(2), radix: 16) }
        return UInt64(text, radix: 10)
    }
}

extension JSONField {
    /// The members of an object, or none when the field is absent.
    func optionalMembers() throws(JSONError) -> [(key: String, field: JSONField)] {
        isMissing ? [] : try members()
    }
}

/// A task's user memory, shared by the runs that name the task (so `bpf_probe_write_user`
/// changes are seen by later events), guarded by a lock.
public final class UserMemory: Sendable, Equatable {
    /// The same memory (identity).
    public static func == (a: UserMemory, b: UserMemory) -> Bool { a === b }

    private let regions: Mutex<[EmulatedSystem.UserRegion]>

    public init(_ regions: [EmulatedSystem.UserRegion]) { self.regions = Mutex(regions) }

    /// `count` bytes at user address `address`, or nil when they are not all in one region.
    public func read(_ address: UInt64, count: Int) -> [UInt8]? {
        regions.withLock { regions in
            guard let (index, offset) = Self.locate(regions, address, count) else { return nil }
            return Array(regions[index].bytes[offset..<offset + count])
        }
    }

    /// Bytes up to and including the first NUL, at most `limit`, or nil when `address` is not
    /// mapped. The string stops at the end of its region.
    public func readString(_ address: UInt64, limit: Int) -> [UInt8]? {
        regions.withLock { regions in
            guard let (index, offset) = Self.locate(regions, address, 1) else { return nil }
            let bytes = regions[index].bytes
            var end = offset
            while end < bytes.count, end - offset < limit, bytes[end] != 0 { end += 1 }
            return Array(bytes[offset..<end])
        }
    }

    /// Writes into a writable region; false when the bytes are not all in one writable region.
    public func write(_ bytes: [UInt8], at address: UInt64) -> Bool {
        regions.withLock { regions in
            guard let (index, offset) = Self.locate(regions, address, bytes.count), regions[index].writable else {
                return false
            }
            regions[index].bytes.replaceSubrange(offset..<offset + bytes.count, with: bytes)
            return true
        }
    }

    /// The regions as they are now.
    public var snapshot: [EmulatedSystem.UserRegion] { regions.withLock { $0 } }

    static func locate(_ regions: [EmulatedSystem.UserRegion], _ address: UInt64, _ count: Int) -> (Int, Int)? {
        for (index, region) in regions.enumerated() where address >= region.address {
            let offset = address - region.address
            if offset < UInt64(region.bytes.count), UInt64(count) <= UInt64(region.bytes.count) - offset {
                return (index, Int(offset))
            }
        }
        return nil
    }
}
