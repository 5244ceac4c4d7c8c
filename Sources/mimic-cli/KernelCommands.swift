import Foundation
import MimicCore
import MimicLinux

/// `mimic compare OBJ.o`: run a program in Mimic and in the kernel and report every difference.
enum CompareCommand: Command {
    static let info = CommandInfo(
        name: "compare",
        summary: "Run a program in Mimic and in the Linux kernel on the same input; report every difference.",
        synopsis: "compare OBJ.o [--program P] (--pcap IN.pcap | --context CTX.json | --packet HEX) [--map NAME=FILE.json]... [--json]",
        discussion: """
        Loads the object's maps, global data and the program into the running kernel with the
        bpf() system call (no libbpf) and into Mimic, gives both the same initial map contents,
        runs the program on each packet (BPF_PROG_TEST_RUN in the kernel, pinned to CPU 0;
        Mimic as vCPU 0), and compares the return value (its low 32 bits: all the kernel
        reports), the output packet and the contents of every hash, array, per-CPU, LRU and
        LPM map and global-data section after each packet. Maps keep their contents from one
        packet to the next on both sides.
        Program types: XDP, tc (sched_cls) and socket filters. The kernel runs socket filters
        on the packet from its network header, so Mimic does too. A context file gives Mimic
        its context (xdp_md or sk_buff); the kernel gets its packet.
        --map NAME=FILE.json sets initial entries: {"entries": [{"key": "HEX", "value": "HEX"}]}
        (or just the array); for per-CPU maps the value is given to every CPU; for a global-data
        section (.data, .bss) the value replaces its bytes.
        Needs Linux and root (or CAP_BPF + CAP_NET_ADMIN). When the kernel is not reachable it
        says why and exits 1; when the verifier rejects the program it prints the verifier's
        log and exits 1. Exits 3 when the two differ, 0 when they agree.
        """,
        options: [
            .value("program", "P", "The program to run (default: the first XDP, tc or socket-filter program)."),
            .value("pcap", "IN.pcap", "Run on every packet of a classic pcap capture (Ethernet)."),
            .value("context", "CTX.json", "Run on the packet of an xdp_md or sk_buff context file."),
            .value("packet", "HEX", "Run on one packet given as hex bytes."),
            .value("map", "NAME=FILE.json", "Initial entries of map NAME (repeatable)."),
            .flag("json", "Print the results as JSON."),
        ],
        examples: [
            ("Compare an XDP program on a capture", "sudo mimic compare xdp_firewall.o --pcap traffic.pcap"),
            ("One packet, with a map preloaded", "sudo mimic compare lpm_route.o --packet \"$(cat pkt.hex)\" --map routes=routes.json"),
        ])

    /// Joins repeated `--map A=F --map B=G` into one `--map A=F,B=G` (the parser keeps one value).
    static func normalize(_ arguments: [String]) -> [String] {
        var result: [String] = []
        var maps: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" {
                result += arguments[index...]
                break
            }
            if argument == "--map", index + 1 < arguments.count {
                maps.append(arguments[index + 1])
                index += 2
                continue
            }
            if argument.hasPrefix("--map=") {
                maps.append(String(argument.dropFirst(6)))
                index += 1
                continue
            }
            result.append(argument)
            index += 1
        }
        if !maps.isEmpty { result += ["--map", maps.joined(separator: ",")] }
        return result
    }

    /// Exit code when Mimic and the kernel differ.
    static let differExitCode: Int32 = 3

    static func run(_ arguments: ParsedArguments) throws {
        try arguments.requirePositionals(["OBJ.o"], command: info.name)
        let path = arguments.positionals[0]
        let inputs = ["pcap", "context", "packet"].filter { arguments.value($0) != nil }
        guard inputs.count == 1 else {
            throw UsageError(message: inputs.isEmpty ? "give the input: --pcap, --context or --packet"
                                                     : "give one input, not \(inputs.map { "--" + $0 }.joined(separator: " and "))",
                             command: info.name)
        }
        var mapFiles: [(String, String)] = []
        if let text = arguments.value("map") {
            for item in text.split(separator: ",") {
                guard let equals = item.firstIndex(of: "="), equals != item.startIndex, item.index(after: equals) != item.endIndex else {
                    throw UsageError(message: "--map expects NAME=FILE.json, got '\(item)'", command: info.name)
                }
                mapFiles.append((String(item[..<equals]), String(item[item.index(after: equals)...])))
            }
        }

        // Inputs first, so a bad file is reported even where the kernel is not reachable.
        let name = Input.displayName(path)
        let bytes = try Input.read(path)
        guard ObjectInput.isELF(bytes) else { throw RuntimeError("\(name) is not an ELF object (it does not start with 0x7f 'ELF')") }
        let object = try ObjectInput.object(bytes, name: name)
        var packets: [(packet: [UInt8], context: (any Context)?)] = []
        if let hex = arguments.value("packet") {
            packets = [(try Hex.parse(hex, what: "--packet"), nil)]
        } else if let pcapPath = arguments.value("pcap") {
            do {
                let capture = try PcapFile(bytes: try Input.read(pcapPath), name: Input.displayName(pcapPath))
                packets = capture.packets.map { ($0.data, nil) }
            } catch let error as PcapError {
                throw RuntimeError(error.description)
            }
            guard !packets.isEmpty else { throw RuntimeError("\(pcapPath) holds no packets") }
        } else if let contextPath = arguments.value("context") {
            let context: any Context
            do {
                context = try ContextFile.load(data: try Input.read(contextPath))
            } catch {
                throw RuntimeError("\(contextPath): \(error)")
            }
            if let xdp = context as? XDPContext {
                packets = [(xdp.packet, xdp)]
            } else if let skb = context as? SKBContext {
                packets = [(skb.packet, skb)]
            } else {
                throw RuntimeError("\(contextPath): compare needs an xdp_md or sk_buff context (the kernel runs programs on a packet)")
            }
        }
        var entries: [(map: String, key: [UInt8], value: [UInt8])] = []
        for (map, file) in mapFiles { entries += try mapEntries(map: map, file: file) }

        guard KernelBPF.isAvailable else {
            throw RuntimeError("cannot compare: \(KernelError.unavailable(KernelBPF.unavailableReason ?? "unknown reason"))")
        }
        let comparison: ObjectComparison
        do {
            comparison = try ObjectComparison(object: object, programName: arguments.value("program"))
        } catch let error as KernelError {
            if let log = error.verifierLog {
                Console.err("the kernel's verifier rejected the program; its log:\n\(log)\n")
                throw RuntimeError("the kernel's verifier rejected program \(arguments.value("program") ?? "(the first)") of \(name); Mimic's loader is not a verifier, so the programs cannot be compared")
            }
            throw RuntimeError("\(error)")
        } catch {
            throw RuntimeError("\(error)")
        }
        for entry in entries {
            do {
                try comparison.setEntry(map: entry.map, key: entry.key, value: entry.value)
            } catch {
                throw RuntimeError("--map \(entry.map): \(error)")
            }
        }

        var results: [ObjectComparison.PacketResult] = []
        for (index, input) in packets.enumerated() {
            do {
                results.append(try comparison.run(packet: input.packet, mimicContext: input.context))
            } catch {
                throw RuntimeError("packet \(index + 1): \(error)")
            }
        }
        let differing = results.filter { !$0.differences.isEmpty }.count
        if arguments.has("json") {
            Console.out(json(results, comparison: comparison))
        } else {
            Console.out("program \(comparison.programName) (\(comparison.programType)) of \(name): \(packets.count) packet(s)\n")
            for (index, result) in results.enumerated() {
                let mimic = result.mimicReturn.map { "\(UInt32(truncatingIfNeeded: $0))" } ?? "error"
                if result.differences.isEmpty {
                    Console.out("packet \(index + 1): same — return \(result.kernelReturn), packet \(result.kernelPacket.count) bytes, maps equal\n")
                } else {
                    Console.out("packet \(index + 1): DIFFERENT — kernel returned \(result.kernelReturn), Mimic \(mimic)\n")
                    for line in result.differences { Console.out("  " + line.replacingOccurrences(of: "\n", with: "\n  ") + "\n") }
                }
            }
            Console.out(differing == 0 ? "Mimic and the kernel agree on every packet.\n"
                                       : "Mimic and the kernel differ on \(differing) of \(packets.count) packet(s).\n")
        }
        if differing > 0 { exit(differExitCode) }
    }

    /// Entries from a map file: `{"entries": [{"key": HEX, "value": HEX}]}` or the bare array.
    static func mapEntries(map: String, file: String) throws(RuntimeError) -> [(map: String, key: [UInt8], value: [UInt8])] {
        let data = try Input.read(file)
        do {
            let root = JSONField(try JSONValue.parse(data), path: "")
            let list = root["entries"].isMissing ? root : root["entries"]
            var result: [(map: String, key: [UInt8], value: [UInt8])] = []
            for element in try list.elements() {
                let key = try Hex.parse(try element["key"].string(), what: "\(file) \(element["key"].path)")
                let value = try Hex.parse(try element["value"].string(), what: "\(file) \(element["value"].path)")
                result.append((map, key, value))
            }
            return result
        } catch let error as ContextError {
            throw RuntimeError("\(file): \(error)")
        } catch let error as RuntimeError {
            throw error
        } catch {
            throw RuntimeError("\(file): \(error)")
        }
    }

    static func json(_ results: [ObjectComparison.PacketResult], comparison: ObjectComparison) -> String {
        func string(_ text: String) -> String {
            var out = "\""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                default:
                    if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
                }
            }
            return out + "\""
        }
        let items = results.map { result in
            let mimic = result.mimicReturn.map { "\(UInt32(truncatingIfNeeded: $0))" } ?? "null"
            let mimicPacket = result.mimicPacket.map { string(Hex.string($0).replacingOccurrences(of: " ", with: "")) } ?? "null"
            let error = result.mimicError.map(string) ?? "null"
            return "{\"same\": \(result.differences.isEmpty), \"kernel_return\": \(result.kernelReturn), \"mimic_return\": \(mimic), "
                + "\"kernel_packet\": \(string(Hex.string(result.kernelPacket).replacingOccurrences(of: " ", with: ""))), "
                + "\"mimic_packet\": \(mimicPacket), \"mimic_error\": \(error), "
                + "\"differences\": [\(result.differences.map(string).joined(separator: ", "))]}"
        }
        return "{\"program\": \(string(comparison.programName)), \"type\": \(string(comparison.programType.description)), "
            + "\"packets\": [\(items.joined(separator: ", "))]}\n"
    }
}

/// `mimic fuzz`: the differential fuzzer, for longer runs than the test suite's.
enum FuzzCommand: Command {
    static let info = CommandInfo(
        name: "fuzz",
        summary: "Differential fuzzing: random verifier-acceptable programs run in Mimic and in the kernel.",
        synopsis: "fuzz [--seed N] [--count N] [--no-minimize] [--quiet]",
        discussion: """
        Generates random programs the kernel's verifier accepts (ALU32/64 with every operator,
        division and modulo also by zero, signed forms, shifts, byte swaps, sign extension,
        jumps of both widths, stack loads and stores, atomics on the stack, bounded loops,
        BPF-to-BPF calls), runs each as an XDP program in the kernel (BPF_PROG_TEST_RUN, JIT)
        and in Mimic on two random packets, and compares the 32-bit return values, into which
        every register and stack word is folded. Mismatches are printed with a minimized
        reproduction (disassembly and packet). Programs the verifier rejects are counted.
        The same seed gives the same programs. Needs Linux and root. Exits 3 on a mismatch.
        """,
        options: [
            .value("seed", "N", "The run's seed (default 1)."),
            .value("count", "N", "How many programs (default 10000)."),
            .flag("no-minimize", "Report mismatches without minimizing them."),
            .flag("quiet", "Print only the summary and mismatches, no progress."),
        ],
        examples: [
            ("A long run", "sudo mimic fuzz --seed 42 --count 1000000"),
        ])

    static func run(_ arguments: ParsedArguments) throws {
        try arguments.requirePositionals([], command: info.name)
        func number(_ name: String, _ fallback: UInt64) throws(UsageError) -> UInt64 {
            guard let text = arguments.value(name) else { return fallback }
            let value = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
            guard let value else { throw UsageError(message: "--\(name) expects a whole number, got '\(text)'", command: info.name) }
            return value
        }
        let seed = try number("seed", 1)
        let count = try number("count", 10_000)
        guard count <= UInt64(Int.max) else { throw UsageError(message: "--count is too large", command: info.name) }
        guard KernelBPF.isAvailable else {
            throw RuntimeError("cannot fuzz: \(KernelError.unavailable(KernelBPF.unavailableReason ?? "unknown reason"))")
        }
        let quiet = arguments.has("quiet")
        let fuzzer = DifferentialFuzzer(minimize: !arguments.has("no-minimize"), maxReportedMismatches: 20)
        var reported = 0
        let step = max(1, Int(count) / 20)
        let report = try fuzzer.run(seed: seed, count: Int(count)) { report in
            while reported < report.mismatches.count {
                Console.out("\(report.mismatches[reported])\n")
                reported += 1
            }
            if !quiet, report.programs % step == 0 {
                Console.out("\(report.programs)/\(count) programs, \(report.rejected) rejected, \(report.mismatches.count) mismatches, \(String(format: "%.1f", report.seconds)) s\n")
            }
        }
        Console.out("seed \(seed): " + report.summary + "\n")
        if !report.mismatches.isEmpty { exit(CompareCommand.differExitCode) }
    }
}
