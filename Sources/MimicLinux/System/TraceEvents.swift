import MimicCore
import MimicJSON

/// One line of an events file (`mimic run OBJ.o --events FILE.jsonl`): what happened, to which
/// program, on which CPU, when, in which task, with which arguments.
///
/// ```json
/// {"program": "handle_exec", "cpu": 0, "time_ns": 1000, "pid": 42, "fields": {"__data_loc_filename": "/bin/ls"}}
/// {"attach": "kprobe/do_unlinkat", "pid": 42, "args": [-100, {"string": "/tmp/x"}]}
/// {"attach": "ksyscall/kill", "pid": 42, "syscall_args": [43, 9]}
/// {"program": "do_unlinkat_exit", "pid": 42, "args": {"dfd": -100, "name": 0, "ret": 0}}
/// ```
///
/// Members: `program` (a program name) or `attach` (a section, `kprobe/do_unlinkat`), neither
/// for the command's program; `cpu` (default 0); `time_ns` (what `bpf_ktime_get_ns` returns in
/// the run); `pid` (a task of the system file; default the first task, or pid 1); `regs`
/// (pt_regs registers by name), `args` (arguments, by name or as an array), `syscall_args`,
/// `ret` (a return value), `fields` (tracepoint fields by name), `sample_period` and `addr`
/// (perf events), `cookie` (`bpf_get_attach_cookie`), `func_ip` (`bpf_get_func_ip`; default
/// the attach function's address in the system's symbols), `data` (the whole context, as hex
/// or base64), `map` (the map an `iter/bpf_map_elem` program iterates, by name). Unknown
/// members are errors.
public struct TraceEvent: Sendable {
    public var program: String?
    public var attach: String?
    public var cpu: Int = 0
    public var time: UInt64?
    public var pid: UInt32?
    public var cookie: UInt64?
    public var functionAddress: UInt64?
    /// The event's JSON, for the members the program type reads.
    public var json: JSONField

    static let members = [
        "program", "attach", "cpu", "time_ns", "pid", "regs", "args", "syscall_args", "ret", "fields",
        "sample_period", "addr", "cookie", "func_ip", "data", "map",
    ]

    public init(json: JSONField) throws(JSONError) {
        try json.object(knownMembers: Self.members)
        self.json = json
        program = try json["program"].optionalString()
        attach = try json["attach"].optionalString()
        if program != nil, attach != nil { throw json.error("give program or attach, not both") }
        cpu = try json["cpu"].optionalInteger(Int.self) ?? 0
        guard cpu >= 0 else { throw json["cpu"].error("expected a CPU number from 0") }
        time = try json["time_ns"].optionalInteger(UInt64.self)
        pid = try json["pid"].optionalInteger(UInt32.self)
        cookie = json["cookie"].isMissing ? nil : try EmulatedSystem.integer(json["cookie"])
        functionAddress = json["func_ip"].isMissing ? nil : try EmulatedSystem.integer(json["func_ip"])
    }

    /// The events of a JSON Lines file: one object per non-blank line; errors name the line.
    public static func parse(lines bytes: [UInt8]) throws(JSONError) -> [TraceEvent] {
        var events: [TraceEvent] = []
        for (index, line) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            guard line.contains(where: { ![0x20, 0x09, 0x0D].contains($0) }) else { continue }
            let value: JSONValue
            do { value = try JSONValue.parse(line) } catch {
                throw JSONError(path: "line \(index + 1)", error.description)
            }
            events.append(try TraceEvent(json: JSONField(value, path: "line \(index + 1)")))
        }
        return events
    }
}

/// Builds the contexts of events for one emulator and VM: the program type decides the
/// context's shape, the kernel BTF (or the program's own) its layout.
public struct TraceEvents {
    public let emulator: LinuxEmulator
    public let vm: VM
    /// The program object's BTF, where the kernel BTF lacks a type (a program's own
    /// `vmlinux.h` subset, `BPF_PROG`'s inner function).
    public let objectBTF: BTF?
    public let registers: RegisterLayout

    /// `registers` nil: the layout the program was built for (`RegisterLayout(inferredFrom:)`),
    /// else the machine's own.
    public init(emulator: LinuxEmulator, vm: VM, objectBTF: BTF?, registers: RegisterLayout? = nil) {
        self.emulator = emulator
        self.vm = vm
        self.objectBTF = objectBTF
        self.registers = registers ?? RegisterLayout(inferredFrom: objectBTF) ?? .host
    }

    /// The program `event` names (by name, or by its attach section: `kprobe/do_unlinkat`, with
    /// `tp/` and `tracepoint/`, `raw_tp/` and `raw_tracepoint/` alike), or `fallback`.
    public static func program(for event: TraceEvent, in object: ObjectFile, default fallback: ObjectProgram?)
        throws(JSONError) -> ObjectProgram
    {
        let programs = object.programs
        if let name = event.program {
            guard let found = programs.first(where: { $0.name == name }) else {
                throw event.json["program"].error(
                    "no program named \(name); programs: \(programs.map(\.name).joined(separator: ", "))")
            }
            return found
        }
        if let attach = event.attach {
            let wanted = canonicalSection(attach)
            guard let found = programs.first(where: { canonicalSection($0.sectionName) == wanted }) else {
                throw event.json["attach"].error(
                    "no program attaches to \(attach); sections: \(programs.map(\.sectionName).joined(separator: ", "))"
                )
            }
            return found
        }
        guard let fallback else { throw event.json.error("name the event's program (program or attach)") }
        return fallback
    }

    /// A section with libbpf's short prefixes spelt out (`tp/` is `tracepoint/`).
    static func canonicalSection(_ section: String) -> String {
        for (short, long) in [
            ("tp/", "tracepoint/"), ("raw_tp/", "raw_tracepoint/"), ("raw_tp.w/", "raw_tracepoint.w/"),
        ]
        where section.hasPrefix(short) {
            return long + section.dropFirst(short.count)
        }
        return section
    }

    /// The BTFs to look types up in: the kernel's, then the object's.
    var btfs: [BTF] { [emulator.configuration.kernelBTF, objectBTF].compactMap { $0 } }

    /// The environment of `event`'s task.
    public func environment(_ event: TraceEvent, attachFunction: String?) throws(JSONError) -> TaskEnvironment {
        var environment: TaskEnvironment
        let system = emulator.configuration.system
        let pid = event.pid ?? system?.tasks.first?.pid
        if let pid, let system {
            guard system.task(pid: pid) != nil else {
                throw event.json["pid"].error("the system file has no task with pid \(pid)")
            }
            do { environment = try emulator.environment(forTask: pid, in: vm) } catch {
                throw event.json.error(error.description)
            }
        } else {
            environment = TaskEnvironment()
            if let pid { (environment.pid, environment.tgid) = (pid, pid) }
        }
        if let time = event.time { environment.clock = .manual(start: time, step: 0) }
        environment.attachCookie = event.cookie ?? 0
        environment.functionAddress =
            event.functionAddress ?? attachFunction.flatMap { system?.symbols[$0] } ?? 0
        return environment
    }

    /// The contexts `event` runs `program` with: one, or for a task iterator one per task of
    /// the system and a last one with a NULL task (as the kernel's `task_seq_stop` calls it).
    public func contexts(_ event: TraceEvent, program: ObjectProgram) throws(JSONError) -> [TracingContext] {
        let section = program.sectionName
        let parts = section.split(separator: "/", maxSplits: 1).map(String.init)
        let kind = parts.first ?? ""
        let target = parts.count > 1 ? parts[1] : ""
        let function =
            ["kprobe", "kretprobe", "fentry", "fexit", "fmod_ret", "ksyscall", "kretsyscall"].contains(kind)
            ? target : nil
        let environment = try environment(event, attachFunction: function)
        let json = event.json
        var context = TracingContext(name: "\(program.name) event", bytes: [], environment: environment)
        if !json["data"].isMissing {
            context.bytes = try json["data"].base64()
            return [context]
        }
        if kind == "iter" {
            switch target {
            case "task":
                guard json["map"].isMissing else { throw json["map"].error("an iter/task event names no map") }
                return try taskIterator(program: program, environment: environment)
            case "bpf_map_elem": return try mapElementIterator(program: program, event: event, environment: environment)
            default: throw json.error("iterator \(target) is not emulated (iter/task and iter/bpf_map_elem are)")
            }
        }
        guard json["map"].isMissing else { throw json["map"].error("only iter/bpf_map_elem events name a map") }
        switch program.type {
        case .kprobe:
            try pointerRegisters(&context, json, syscall: kind == "ksyscall" || kind == "kretsyscall")
        case .perfEvent:
            try pointerRegisters(&context, json, syscall: false, userLayout: true)
            context.bytes += [UInt8](repeating: 0, count: 16)
            let base = registers.userSize
            write(&context.bytes, at: base, try integer(json["sample_period"]) ?? 0)
            write(&context.bytes, at: base + 8, try integer(json["addr"]) ?? 0)
        case .tracepoint:
            try tracepointRecord(&context, json, target: target, pid: environment.pid, program: program)
        case .rawTracepoint, .rawTracepointWritable, .tracing, .lsm:
            try argumentArray(&context, json, kind: kind, target: target, program: program)
        default:
            throw json.error(
                "a \(program.type) program takes its context as \"data\" (hex or base64) in an event")
        }
        return [context]
    }

    // MARK: pt_regs

    func pointerRegisters(_ context: inout TracingContext, _ json: JSONField, syscall: Bool, userLayout: Bool = false)
        throws(JSONError)
    {
        for name in ["fields", "sample_period", "addr"] where !json[name].isMissing && !userLayout {
            throw json[name].error("a kprobe's context is pt_regs: give regs, args, syscall_args or ret")
        }
        context.bytes = [UInt8](repeating: 0, count: userLayout ? registers.userSize : registers.size)
        for (name, field) in try json["regs"].optionalMembers() {
            guard let offset = registers.offset(of: name), offset + 8 <= context.bytes.count else {
                throw field.error("no register \(name) in \(registers.rawValue) pt_regs")
            }
            put(&context, at: offset, try value(field, &context))
        }
        if !json["args"].isMissing {
            let values = try json["args"].elements()
            guard values.count <= registers.argumentRegisters.count else {
                throw json["args"].error("at most \(registers.argumentRegisters.count) arguments are in registers")
            }
            for (index, field) in values.enumerated() {
                let argument = try value(field, &context)
                put(&context, at: registers.offset(of: registers.argumentRegisters[index]) ?? 0, argument)
            }
        }
        if !json["ret"].isMissing {
            let argument = try value(json["ret"], &context)
            put(&context, at: registers.offset(of: registers.returnRegister) ?? 0, argument)
        }
        if !json["syscall_args"].isMissing {
            let values = try json["syscall_args"].elements()
            guard values.count <= 6 else { throw json["syscall_args"].error("a syscall has at most 6 arguments") }
            // Through a syscall wrapper (__x64_sys_*), the probed function's first argument
            // is the user pt_regs holding the syscall's; BPF_KSYSCALL reads them from there.
            let wrapped = syscall && emulator.configuration.kernel.hasSyscallWrapper
            let inner = wrapped ? context.bytes.count : 0
            if wrapped {
                context.bytes += [UInt8](repeating: 0, count: registers.size)
                context.selfPointers.append((registers.offset(of: registers.argumentRegisters[0]) ?? 0, inner))
            }
            for (index, field) in values.enumerated() {
                let argument = try value(field, &context)
                put(&context, at: inner + (registers.offset(of: registers.syscallRegisters[index]) ?? 0), argument)
                if index == 0, registers == .arm64 {
                    put(&context, at: inner + (registers.offset(of: "orig_x0") ?? 0), argument)
                }
            }
        }
    }

    // MARK: Tracepoints

    /// The record of a tracepoint (`trace_event_raw_<event>`; `trace_event_raw_sys_enter` /
    /// `_sys_exit` for `syscalls/sys_enter_*` / `sys_exit_*`), fields set by name. A
    /// `__data_loc_X` field given a string gets the string after the record.
    func tracepointRecord(
        _ context: inout TracingContext, _ json: JSONField, target: String, pid: UInt32, program: ObjectProgram
    ) throws(JSONError) {
        for name in ["regs", "args", "syscall_args", "ret", "sample_period", "addr"] where !json[name].isMissing {
            throw json[name].error("a tracepoint's context is its record: give fields")
        }
        let event = String(target.split(separator: "/").last ?? "")
        // The struct the program declares its context as (events of one class share a struct,
        // trace_event_raw_sched_process_template), else the event's own.
        let structName =
            contextStructName(of: program)
            ?? (event.hasPrefix("sys_enter_")
                ? "trace_event_raw_sys_enter"
                : event.hasPrefix("sys_exit_") ? "trace_event_raw_sys_exit" : "trace_event_raw_\(event)")
        guard let (btf, id) = structType(structName), let size = btf.size(of: id) else {
            guard json["fields"].isMissing else {
                throw json["fields"].error(
                    "no struct \(structName) in the kernel BTF or the object's: its fields cannot be laid out")
            }
            context.bytes = [UInt8](repeating: 0, count: 64)
            return
        }
        context.bytes = [UInt8](repeating: 0, count: size)
        var layout = KernelLayout(btf: btf)
        layout.bytes = context.bytes
        let record = KernelLayout.Object(offset: 0, type: id)
        layout.set(record, ["ent", "pid"], Int64(pid))
        var fields: [(key: String, value: JSONValue)] = []
        for (given, field) in try json["fields"].optionalMembers() {
            // A string field the kernel stores as __data_loc (comm, filename) may be named either way.
            var name = given
            if layout.field(id, [given]) == nil, layout.field(id, ["__data_loc_" + given]) != nil {
                name = "__data_loc_" + given
            }
            if name.hasPrefix("__data_loc_") {
                guard case .string(let text)? = field.value else {
                    throw field.error("\(name) is a __data_loc field: give it a string")
                }
                guard layout.field(id, [name]) != nil else { throw field.error("no field \(name) in \(structName)") }
                let start = layout.bytes.count
                layout.bytes += Array(text.utf8) + [0]
                let location = UInt32(text.utf8.count + 1) << 16 | UInt32(start)
                layout.set(record, [name], Int64(location))
                continue
            }
            guard layout.field(id, [name]) != nil else { throw field.error("no field \(name) in \(structName)") }
            fields.append((name, field.value ?? .null))
        }
        var bytes = layout.bytes
        var head = Array(bytes[0..<size])
        do { try btf.encode(.object(fields), as: id, into: &head, path: json["fields"].path) } catch {
            throw json["fields"].error(error.description)
        }
        bytes.replaceSubrange(0..<size, with: head)
        context.bytes = bytes
    }

    /// The name of the struct a program's context parameter points to (from the object's BTF
    /// `FUNC`), nil for `void *` or when the BTF does not say.
    func contextStructName(of program: ObjectProgram) -> String? {
        guard let btf = objectBTF, let id = btf.typeID(named: program.name, kind: .function),
            case .function(_, let proto, _)? = btf.type(id),
            case .functionProto(_, let parameters)? = btf.type(proto), let first = parameters.first,
            case .pointer(let target)? = btf.type(btf.resolve(first.type)),
            case .structure(let name, _, _)? = btf.type(btf.resolve(target)), !name.isEmpty
        else { return nil }
        return name
    }

    // MARK: Argument arrays

    /// The `u64` arguments of raw_tp / tp_btf / fentry / fexit / fmod_ret / lsm programs: an
    /// array, or an object by parameter name (from the traced function's BTF prototype; fexit
    /// adds `ret` last).
    func argumentArray(
        _ context: inout TracingContext, _ json: JSONField, kind: String, target: String, program: ObjectProgram
    )
        throws(JSONError)
    {
        for name in ["regs", "syscall_args", "fields", "sample_period", "addr"] where !json[name].isMissing {
            throw json[name].error("a \(kind) program's context is its arguments: give args")
        }
        let field = json["args"]
        // Through a BPF trampoline (fentry, fexit, fmod_ret, lsm), the argument count sits just
        // before the arguments (ctx[-1], what bpf_get_func_arg_cnt reads) and fexit's return
        // value after them (ctx[nr_args], bpf_get_func_ret).
        let base = kind.split(separator: ".").first.map(String.init) ?? kind
        let trampoline = ["fentry", "fexit", "fmod_ret", "lsm"].contains(base)
        let returns = ["fexit", "fmod_ret", "lsm"].contains(base)
        let header = trampoline ? 8 : 0
        var values: [Argument] = []
        var argumentCount: Int
        if case .object? = field.value {
            guard let names = parameterNames(kind: kind, target: target, program: program.name) else {
                throw field.error(
                    "the parameters of \(target.isEmpty ? program.name : target) are not in the kernel BTF or the object's: give args as an array"
                )
            }
            let given = try field.members()
            for (name, member) in given where !names.contains(name) {
                throw member.error("\(target) has no parameter \(name) (parameters: \(names.joined(separator: ", ")))")
            }
            values = [Argument](repeating: .integer(0), count: names.count)
            context.bytes = [UInt8](repeating: 0, count: header + 8 * names.count)
            for (index, name) in names.enumerated() where !field[name].isMissing {
                values[index] = try value(field[name], &context)
            }
            argumentCount = names.count - (returns && names.last == "ret" ? 1 : 0)
        } else {
            let elements = try field.optionalElements()
            context.bytes = [UInt8](repeating: 0, count: header + 8 * elements.count)
            for element in elements { values.append(try value(element, &context)) }
            // An array for fexit / fmod_ret / lsm ends with the return value.
            argumentCount = max(0, elements.count - (returns ? 1 : 0))
        }
        guard values.count <= 13 else {
            throw field.error("at most 12 arguments (MAX_BPF_FUNC_ARGS) and a return value")
        }
        for (index, argument) in values.enumerated() { put(&context, at: header + 8 * index, argument) }
        if trampoline {
            write(&context.bytes, at: 0, UInt64(argumentCount))
            context.registerOffset = header
            context.tracedFunction = TracedFunction(argumentCount: UInt32(argumentCount), hasReturnValue: returns)
        }
    }

    /// Parameter names of what a tracing program attaches to.
    func parameterNames(kind: String, target: String, program: String) -> [String]? {
        for btf in btfs {
            var prototype: UInt32?
            switch kind {
            case "tp_btf", "raw_tp", "raw_tracepoint", "raw_tp.w", "raw_tracepoint.w":
                // __bpf_trace_<tp>(void *__data, args...) names the arguments; the typedef
                // btf_trace_<tp> has the same parameters, unnamed.
                if case .function(_, let proto, _)? = btf.typeID(named: "__bpf_trace_" + target, kind: .function)
                    .flatMap(btf.type)
                {
                    prototype = proto
                } else if let id = btf.typeID(named: "btf_trace_" + target, kind: .typedef),
                    case .pointer(let proto)? = btf.type(btf.resolve(id))
                {
                    prototype = proto
                }
            case "lsm", "lsm.s":
                if case .function(_, let proto, _)? = btf.typeID(named: "bpf_lsm_" + target, kind: .function).flatMap(
                    btf.type)
                {
                    prototype = proto
                }
            default:
                if case .function(_, let proto, _)? = btf.typeID(named: target, kind: .function).flatMap(btf.type) {
                    prototype = proto
                }
            }
            if let prototype, case .functionProto(let returnType, var parameters)? = btf.type(prototype) {
                if kind.hasPrefix("tp_btf") || kind.hasPrefix("raw_tp") { parameters = Array(parameters.dropFirst()) }
                var names = parameters.map(\.name)
                guard !names.contains("") else { continue } // unnamed: say so rather than guess
                if kind == "fexit" || kind == "fmod_ret" || kind.hasPrefix("lsm"), returnType != 0 {
                    names.append("ret")
                }
                return names
            }
        }
        // BPF_PROG(name, args...) keeps the arguments' names in its inner function ____name.
        if let btf = objectBTF,
            case .function(_, let proto, _)? = btf.typeID(named: "____" + program, kind: .function).flatMap(btf.type),
            case .functionProto(_, let parameters)? = btf.type(proto)
        {
            return parameters.dropFirst().map(\.name)
        }
        return nil
    }

    // MARK: Iterators

    /// `struct bpf_iter__task { struct bpf_iter_meta *meta; struct task_struct *task; }` per
    /// task, then with a NULL task; the meta (`seq`, `session_id`, `seq_num`) and the
    /// `seq_file` follow in the region.
    func taskIterator(program: ObjectProgram, environment: TaskEnvironment) throws(JSONError) -> [TracingContext] {
        let kernel: KernelMemory?
        do { kernel = try emulator.kernelMemory(in: vm) } catch { throw JSONError(path: "", error.description) }
        let pids = (emulator.configuration.system?.tasks ?? []).map(\.pid)
        var contexts: [TracingContext] = []
        for (index, pid) in (pids.map(Optional.some) + [nil]).enumerated() {
            var bytes = [UInt8](repeating: 0, count: 48)
            let task: UInt64 = pid.flatMap { kernel?.taskAddresses[$0] } ?? 0
            if pid != nil, task == 0 {
                throw JSONError(
                    path: "",
                    "iter/task needs the tasks' task_struct: give a kernel BTF with struct task_struct (--btf)")
            }
            write(&bytes, at: 8, task)
            write(&bytes, at: 24, 1) // session_id
            write(&bytes, at: 32, UInt64(index)) // seq_num
            contexts.append(
                TracingContext(
                    name: "\(program.name) iteration \(index)", bytes: bytes, selfPointers: [(0, 16), (16, 40)],
                    seqFileOffset: 40, environment: environment))
        }
        return contexts
    }

    /// The map types `iter/bpf_map_elem` walks (`bpf_iter_reg`s of `kernel/bpf/hashtab.c` and
    /// `arraymap.c`), and which of them are per-CPU.
    static let iterableMaps: [MapType: Bool] = [
        .hash: false, .lruHash: false, .array: false, .perCPUHash: true, .lruPerCPUHash: true, .perCPUArray: true,
    ]

    /// `struct bpf_iter__bpf_map_elem { meta; map; key; value; }` per element of the event's
    /// `map`, in the map's key order, then with NULL key and value (as `bpf_map_seq_stop` runs
    /// it). `key` points to a copy of the key in the context; `value` to the element in the map
    /// itself (writes change it, as in the kernel), or for a per-CPU map to a copy of every
    /// CPU's value, each padded to 8 bytes (the kernel's `percpu_value_buf`: writes are lost).
    /// `map` is the map's handle (what `&map` gives the program): its `struct bpf_map` fields
    /// are not emulated. The meta (`seq`, `session_id`, `seq_num`) and the `seq_file` follow.
    func mapElementIterator(program: ObjectProgram, event: TraceEvent, environment: TaskEnvironment) throws(JSONError)
        -> [TracingContext]
    {
        let field = event.json["map"]
        guard let name = try field.optionalString() else {
            throw event.json.error("an iter/bpf_map_elem event names the map it iterates: \"map\": NAME")
        }
        guard let map = emulator.map(named: name) else {
            throw field.error("no map named \(name)")
        }
        let type = map.attributes.type
        guard let perCPU = Self.iterableMaps[type] else {
            throw field.error(
                "\(name) is a \(type) map; iter/bpf_map_elem walks hash, LRU hash and array maps (per-CPU too)")
        }
        let keys = map.keys
        var contexts: [TracingContext] = []
        for (index, key) in (keys.map(Optional.some) + [nil]).enumerated() {
            // meta 0, map 8, key 16, value 24; meta: seq 32, session_id 40, seq_num 48; seq_file 56.
            var bytes = [UInt8](repeating: 0, count: 64)
            var pointers: [(at: Int, target: Int)] = [(0, 32), (32, 56)]
            write(&bytes, at: 8, map.handle)
            write(&bytes, at: 40, 1) // session_id
            write(&bytes, at: 48, UInt64(index)) // seq_num
            if let key {
                pointers.append((16, bytes.count))
                bytes += key + [UInt8](repeating: 0, count: (8 - key.count % 8) % 8)
                if perCPU {
                    guard let values = map.perCPUValues(forKey: key) else { continue }
                    pointers.append((24, bytes.count))
                    for value in values { bytes += value + [UInt8](repeating: 0, count: (8 - value.count % 8) % 8) }
                } else {
                    guard let address = map.lookupAddress(key: key, cpu: event.cpu) else { continue }
                    write(&bytes, at: 24, address)
                }
            }
            contexts.append(
                TracingContext(
                    name: "\(program.name) iteration \(index)", bytes: bytes, selfPointers: pointers,
                    seqFileOffset: 56, environment: environment))
        }
        return contexts
    }

    // MARK: Values

    /// A struct type by name, in the kernel BTF first.
    func structType(_ name: String) -> (BTF, UInt32)? {
        for btf in btfs {
            if let id = btf.typeID(named: name, kind: .structure) { return (btf, id) }
        }
        return nil
    }

    func integer(_ field: JSONField) throws(JSONError) -> UInt64? {
        field.isMissing ? nil : try EmulatedSystem.integer(field)
    }

    /// An argument or register: a number (`-1` is all ones), `"0x..."`, `{"task": PID}` (the
    /// task's `task_struct`), or `{"string": "text"}` (a NUL-terminated copy in the context's
    /// region, i.e. kernel memory).
    func value(_ field: JSONField, _ context: inout TracingContext) throws(JSONError) -> Argument {
        guard case .object? = field.value else { return .integer(try EmulatedSystem.integer(field)) }
        try field.object(knownMembers: ["task", "string", "struct", "fields"])
        if !field["struct"].isMissing {
            return try structure(field, &context)
        }
        if !field["task"].isMissing {
            let pid = try field["task"].integer(UInt32.self)
            let address: UInt64?
            do { address = try emulator.kernelMemory(in: vm)?.taskAddresses[pid] } catch {
                throw field.error(error.description)
            }
            guard let address else {
                throw field["task"].error(
                    "no task_struct for pid \(pid) (the system file must list it, and a kernel BTF lay it out)")
            }
            return .integer(address)
        }
        let text = try field["string"].string()
        let offset = context.bytes.count
        context.bytes += Array(text.utf8) + [0]
        context.bytes += [UInt8](repeating: 0, count: (8 - context.bytes.count % 8) % 8)
        return .inRegion(offset)
    }

    /// `{"struct": "filename", "fields": {"name": {"string": "/tmp/x"}}}`: a struct of the kernel
    /// BTF (or the object's) laid out in the context's region, its members set by name from
    /// values (numbers, strings, tasks, other structs); the value is its address.
    func structure(_ field: JSONField, _ context: inout TracingContext) throws(JSONError) -> Argument {
        let name = try field["struct"].string()
        guard let (btf, id) = structType(name), let size = btf.size(of: id) else {
            throw field["struct"].error("no struct \(name) in the kernel BTF or the object's")
        }
        let layout = KernelLayout(btf: btf)
        context.bytes += [UInt8](repeating: 0, count: (8 - context.bytes.count % 8) % 8)
        let offset = context.bytes.count
        context.bytes += [UInt8](repeating: 0, count: size)
        for (member, value) in try field["fields"].optionalMembers() {
            guard let (memberOffset, type) = layout.field(id, [member]),
                let memberSize = btf.size(of: type), [1, 2, 4, 8].contains(memberSize)
            else {
                throw value.error("struct \(name) has no integer or pointer member \(member)")
            }
            switch try self.value(value, &context) {
            case .integer(let number):
                for i in 0..<memberSize {
                    context.bytes[offset + memberOffset + i] = UInt8(truncatingIfNeeded: number >> (8 * UInt64(i)))
                }
            case .inRegion(let target):
                guard memberSize == 8 else { throw value.error("member \(member) of struct \(name) is not a pointer") }
                context.selfPointers.append((offset + memberOffset, target))
            }
        }
        return .inRegion(offset)
    }

    /// An argument's value: an integer, or the address of bytes at an offset of the context's
    /// own region (known once it is mapped).
    enum Argument {
        case integer(UInt64)
        case inRegion(Int)
    }

    /// Writes an argument at `offset` of the context.
    func put(_ context: inout TracingContext, at offset: Int, _ argument: Argument) {
        switch argument {
        case .integer(let value): write(&context.bytes, at: offset, value)
        case .inRegion(let target): context.selfPointers.append((offset, target))
        }
    }

    func write(_ bytes: inout [UInt8], at offset: Int, _ value: UInt64) {
        guard offset >= 0, offset + 8 <= bytes.count else { return }
        for i in 0..<8 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }
}
