// A small command-line parser: options with or without a value, positional arguments, `--`.
//
// Accepted spellings: `--name value`, `--name=value`, `-n value`, and flags `--name` / `-n`.
// A lone `-` is a positional argument (conventionally standard input); everything after `--`
// is positional. `-h` and `--help` are recognised by every command.

/// One option a command accepts.
struct OptionSpec: Sendable {
    /// The canonical name, without dashes (`limit`); results are looked up by it.
    var name: String
    /// A one-letter alias, without the dash (`o` for `-o`), if any.
    var short: Character?
    /// The placeholder shown in usage for an option that takes a value (`N`, `PATH`); nil for flags.
    var valueName: String?
    /// One line of help text.
    var help: String

    /// A flag: present or not.
    static func flag(_ name: String, short: Character? = nil, _ help: String) -> OptionSpec {
        OptionSpec(name: name, short: short, valueName: nil, help: help)
    }

    /// An option that takes one value.
    static func value(_ name: String, short: Character? = nil, _ valueName: String, _ help: String) -> OptionSpec {
        OptionSpec(name: name, short: short, valueName: valueName, help: help)
    }

    /// How the option is written in help: `-o, --output PATH`.
    var usage: String {
        var text = short.map { "-\($0), " } ?? "    "
        text += "--\(name)"
        if let valueName { text += " \(valueName)" }
        return text
    }
}

/// The result of parsing one command's arguments.
struct ParsedArguments: Sendable {
    /// Positional arguments, in order.
    var positionals: [String] = []
    /// Flags that were given, by canonical name.
    var flags: Set<String> = []
    /// Values of options that take one, by canonical name (the last one wins).
    var values: [String: String] = [:]
    /// Every value of each option, in order (for repeatable options such as `--plugin`).
    var allValues: [String: [String]] = [:]
    /// Whether `-h` / `--help` was given.
    var wantsHelp = false

    /// Whether the flag `name` was given.
    func has(_ name: String) -> Bool { flags.contains(name) }

    /// The value of option `name`, if given.
    func value(_ name: String) -> String? { values[name] }

    /// Every value given to the repeatable option `name`, in order.
    func values(_ name: String) -> [String] { allValues[name] ?? [] }
}

/// A mistake on the command line: reported with the command's usage hint, exit code 2.
struct UsageError: Error, Sendable, CustomStringConvertible {
    /// What is wrong, e.g. "unknown option '--foo'".
    var message: String
    /// The command whose usage applies (`run-raw`), or nil for the top level.
    var command: String?

    var description: String { message }
}

/// Parses the arguments of one command against its option list.
struct ArgumentParser: Sendable {
    /// The command name, for messages (`run-raw`).
    var command: String
    var options: [OptionSpec]

    /// Splits `arguments` into positionals, flags and option values.
    ///
    /// - Throws: `UsageError` for an unknown option, a missing option value, or a value given
    ///   to a flag (`--json=yes`).
    func parse(_ arguments: [String]) throws(UsageError) -> ParsedArguments {
        var result = ParsedArguments()
        var index = 0
        var onlyPositionals = false
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if onlyPositionals || argument == "-" || !argument.hasPrefix("-") {
                result.positionals.append(argument)
                continue
            }
            if argument == "--" {
                onlyPositionals = true
                continue
            }
            if argument == "-h" || argument == "--help" {
                result.wantsHelp = true
                continue
            }

            // Split `--name=value`; find the spec by long or short name.
            let spec: OptionSpec
            var inlineValue: String?
            if argument.hasPrefix("--") {
                var name = String(argument.dropFirst(2))
                if let equals = name.firstIndex(of: "=") {
                    inlineValue = String(name[name.index(after: equals)...])
                    name = String(name[..<equals])
                }
                guard let found = options.first(where: { $0.name == name }) else {
                    throw UsageError(message: "unknown option '--\(name)' for '\(command)'", command: command)
                }
                spec = found
            } else {
                let name = argument.dropFirst()
                guard name.count == 1, let letter = name.first,
                    let found = options.first(where: { $0.short == letter })
                else {
                    throw UsageError(message: "unknown option '\(argument)' for '\(command)'", command: command)
                }
                spec = found
            }

            if let valueName = spec.valueName {
                if let inlineValue {
                    result.values[spec.name] = inlineValue
                    result.allValues[spec.name, default: []].append(inlineValue)
                } else if index < arguments.count {
                    result.values[spec.name] = arguments[index]
                    result.allValues[spec.name, default: []].append(arguments[index])
                    index += 1
                } else {
                    throw UsageError(message: "option '--\(spec.name)' needs a value (\(valueName))", command: command)
                }
            } else {
                guard inlineValue == nil else {
                    throw UsageError(message: "option '--\(spec.name)' is a flag and takes no value", command: command)
                }
                result.flags.insert(spec.name)
            }
        }
        return result
    }
}

extension ParsedArguments {
    /// Requires between `min` and `max` positional arguments, naming them in the message.
    func requirePositionals(_ names: [String], optional: Int = 0, command: String) throws(UsageError) {
        let required = names.count - optional
        if positionals.count < required {
            throw UsageError(message: "missing argument \(names[positionals.count]) for '\(command)'", command: command)
        }
        if positionals.count > names.count {
            let extra = positionals[names.count]
            throw UsageError(message: "unexpected argument '\(extra)' for '\(command)'", command: command)
        }
    }
}
