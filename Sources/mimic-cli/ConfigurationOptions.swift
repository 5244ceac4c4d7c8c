import MimicCore
import MimicLinux
import MimicJSON

/// The options that configure an object before load (`run`, `trace`, `debug`, `compare`):
/// `--set NAME=VALUE`, `--map-size NAME=N`, `--type TYPE`, `--prog-array MAP=INDEX:PROGRAM`,
/// `--map-of-maps OUTER=INDEX:INNER`. They build an `ObjectConfiguration`; `--type` applies
/// to the program the command runs, so it is kept apart until that program is known.
struct ConfigurationOptions {
    var configuration = ObjectConfiguration()
    /// `--type`: the program type of the program the command runs.
    var programType: ProgramType?

    static let specs: [OptionSpec] = [
        .value(
            "set", "NAME=VALUE",
            "Set global variable NAME (.rodata, .data, .bss) before load: an integer, true/false, an enum name, a string, or JSON for arrays and structs (repeatable)."
        ),
        .value(
            "map-size", "NAME=N",
            "Set max_entries of map NAME before load (OUTER.inner for an inner-map template; repeatable)."),
        .value(
            "type", "TYPE",
            "The program's type when its section gives none (or to override it): xdp, sched_cls (tc), socket_filter, ..."
        ),
        .value("prog-array", "MAP=INDEX:PROG", "Put program PROG in slot INDEX of prog array MAP (repeatable)."),
        .value("map-of-maps", "OUTER=INDEX:INNER", "Put map INNER in slot INDEX of map of maps OUTER (repeatable)."),
    ]

    /// Reads the options; mistakes in their form are usage errors naming the option.
    init(_ arguments: ParsedArguments, command: String) throws(UsageError) {
        func usage(_ message: String) -> UsageError { UsageError(message: message, command: command) }
        func split(_ argument: String, option: String, form: String) throws(UsageError) -> (String, String) {
            guard let equals = argument.firstIndex(of: "="), equals != argument.startIndex else {
                throw usage("--\(option) expects \(form), got '\(argument)'")
            }
            return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
        }
        for argument in arguments.values("set") {
            let (name, text) = try split(argument, option: "set", form: "NAME=VALUE")
            configuration.globals.append(.init(name: name, value: Self.value(text)))
        }
        for argument in arguments.values("map-size") {
            let (name, text) = try split(argument, option: "map-size", form: "NAME=N")
            guard let size = Int(text), size >= 1, size <= Int(UInt32.max) else {
                throw usage("--map-size \(argument): N must be a whole number from 1 to \(UInt32.max)")
            }
            configuration.mapSizes[name] = size
        }
        for (option, isProgram) in [("prog-array", true), ("map-of-maps", false)] {
            for argument in arguments.values(option) {
                let form = isProgram ? "MAP=INDEX:PROGRAM" : "OUTER=INDEX:INNER"
                let (map, slot) = try split(argument, option: option, form: form)
                let parts = slot.split(separator: ":", maxSplits: 1).map(String.init)
                guard parts.count == 2, let index = Int(parts[0]), index >= 0, !parts[1].isEmpty else {
                    throw usage("--\(option) expects \(form), got '\(argument)'")
                }
                configuration.slots.append(
                    .init(map: map, index: index, target: isProgram ? .program(parts[1]) : .map(parts[1])))
            }
        }
        if let text = arguments.value("type") {
            guard let type = Self.programType(text) else {
                throw usage(
                    "--type: unknown program type '\(text)'; types: xdp, tc, "
                        + ProgramType.known.map(\.description).filter { $0 != "unspec" }.joined(separator: ", "))
            }
            programType = type
        }
    }

    /// A program type by its name (`xdp`, `sched_cls`, `BPF_PROG_TYPE_XDP`), or `tc` for `sched_cls`.
    static func programType(_ text: String) -> ProgramType? {
        if text == "tc" { return .schedCls }
        return ProgramType(kernelName: text)
    }

    /// A `--set` value: JSON when it parses as JSON (numbers, true/false, "strings", [arrays],
    /// {objects}), else the text as a string (an enum name, a char array's contents, `0x1f`).
    static func value(_ text: String) -> JSONValue {
        (try? JSONValue.parse(text)) ?? .string(text)
    }

    /// `object` with the configuration applied, and `--type` given to `programName` (the
    /// program the command runs; nil: the object's only program, or with `--type`, every
    /// program whose section gives no type).
    func apply(to object: ObjectFile, programName: String?, objectName: String) throws(RuntimeError) -> ObjectFile {
        var configuration = self.configuration
        if let programType {
            if let programName {
                configuration.programTypes[programName] = programType
            } else if object.programs.count == 1, let only = object.programs.first {
                configuration.programTypes[only.name] = programType
            } else {
                for program in object.programs where program.type == .unspec {
                    configuration.programTypes[program.name] = programType
                }
            }
        }
        guard !configuration.isEmpty else { return object }
        do {
            return try object.configured(configuration)
        } catch {
            throw RuntimeError("cannot configure \(objectName): \(error)")
        }
    }
}

extension TestRunContext {
    /// `--ctx FIELD=VALUE,...`.
    static let optionSpec = OptionSpec.value(
        "ctx", "FIELD=V,...",
        "Set context fields as BPF_PROG_TEST_RUN's ctx_in allows: sk_buff mark, priority, ingress_ifindex, ifindex, cb[0]..cb[4], tstamp, wire_len, gso_segs, gso_size, hwtstamp; xdp_md ingress_ifindex, rx_queue_index (repeatable)."
    )

    /// Reads every `--ctx` option.
    static func parseOption(_ arguments: ParsedArguments, command: String) throws(UsageError) -> [Field] {
        var fields: [Field] = []
        for text in arguments.values("ctx") {
            do {
                fields += try parse(text)
            } catch {
                throw UsageError(message: "--ctx \(text): \(error)", command: command)
            }
        }
        return fields
    }

    /// The text lines of a run's context output: `name value` pairs, with the input value when
    /// the program changed a field.
    static func describe(_ after: [Field], before: [Field]?) -> String {
        let previous = Dictionary((before ?? []).map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
        let parts = after.map { field -> String in
            if let old = previous[field.name], old != field.value { return "\(field.name)=\(field.value) (was \(old))" }
            return "\(field.name)=\(field.value)"
        }
        return parts.joined(separator: " ")
    }

    /// A JSON object of fields.
    static func json(_ fields: [Field]) -> JSONOutput {
        .object(fields.map { ($0.name, .unsigned($0.value)) })
    }
}
