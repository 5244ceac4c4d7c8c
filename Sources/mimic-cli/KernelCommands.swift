import Foundation
import MimicCore
import MimicKernel
import MimicLinux
import MimicPcap

/// `mimic compare OBJ.o`: run a program in Mimic and in the kernel and report every difference.
enum CompareCommand: Command {
    static let info = CommandInfo(
        name: "compare",
        summary: "Run a program in Mimic and in the Linux kernel on the same input; report every difference.",
        synopsis:
            "compare OBJ.o [--program P] (--pcap IN.pcap | --context CTX.json | --packet HEX) [--map NAME=FILE.json]... [--memory-limit BYTES] [--json]",
        discussion: """
            Loads the object's maps, global data and the program into the running kernel with the
            bpf() system call (no libbpf) and into Mimic, gives both the same initial map contents,
            runs the program on each packet (BPF_PROG_TEST_RUN in the kernel, pinned to CPU 0;
            Mimic as vCPU 0), and compares the return value (its low 32 bits: all the kernel
            reports), the output packet and the contents of every hash, array, per-CPU, LRU and
            LPM map and global-data section after each packet. Maps keep their contents from one
            packet to the next on both sides. A program the kernel refuses without the object's BTF
            (a spin lock or timer in a map value, a bpf_loop callback) is loaded again with it.
            Program types: XDP, tc (sched_cls) and socket filters. The kernel runs socket filters
            on the packet from its network header, so Mimic does too. A context file gives Mimic
            its context (xdp_md or sk_buff); the kernel gets its packet.
            --map NAME=FILE.json sets initial entries, in the format of `mimic run --map` (per-CPU
            maps have one value per possible CPU of this kernel); for a global-data section (.data,
            .bss) the key is 0 and the value replaces its bytes.
            --set, --map-size, --type, --prog-array and --map-of-maps configure the object once,
            and both sides load it (.rodata written before load, then frozen; maps sized before
            they are created). tc and socket-filter programs get the same __sk_buff ctx_in on both
            sides (--ctx or the context file's fields), and the ctx_out fields are compared.
            Hash-like maps are compared whole; arrays at the indices Mimic's runs looked up or
            updated (and index 0), so a map of millions of entries costs what the runs touched
            (Docs/Performance.md).
            Needs Linux and root (or CAP_BPF + CAP_NET_ADMIN). When the kernel is not reachable it
            says why and exits 1; when the verifier rejects the program it prints the verifier's
            log and exits 1. Exits 3 when the two differ, 0 when they agree.
            """,
        options: [
            .value("program", "P", "The program to run (default: the first XDP, tc or socket-filter program)."),
            .value("pcap", "IN.pcap", "Run on every packet of a capture (pcap or pcapng, Ethernet)."),
            .value("context", "CTX.json", "Run on the packet of an xdp_md or sk_buff context file."),
            .value("packet", "HEX", "Run on one packet given as hex bytes."),
            .value("map", "NAME=FILE.json", "Initial entries of map NAME (repeatable)."),
            .value(
                "memory-limit", "BYTES",
                "Mimic's memory budget (default 16G: preallocated maps are charged in full but cost memory as written; suffixes K, M, G)."
            ),
            .flag("json", "Print the results as JSON."),
            TestRunContext.optionSpec,
        ] + ConfigurationOptions.specs,
        examples: [
            ("Compare an XDP program on a capture", "sudo mimic compare xdp_firewall.o --pcap traffic.pcap"),
            (
                "One packet, with a map preloaded",
                "sudo mimic compare lpm_route.o --packet \"$(cat pkt.hex)\" --map routes=routes.json"
            ),
        ])

    /// Exit code when Mimic and the kernel differ.
    static let differExitCode: Int32 = 3

    static func run(_ arguments: ParsedArguments) throws {
        try arguments.requirePositionals(["OBJ.o"], command: info.name)
        let path = arguments.positionals[0]
        let inputs = ["pcap", "context", "packet"].filter { arguments.value($0) != nil }
        guard inputs.count == 1 else {
            throw UsageError(
                message: inputs.isEmpty
                    ? "give the input: --pcap, --context or --packet"
                    : "give one input, not \(inputs.map { "--" + $0 }.joined(separator: " and "))",
                command: info.name)
        }
        var mapFiles: [(name: String, path: String)] = []
        for argument in arguments.values("map") {
            do {
                mapFiles.append(try MapFile.split(argument))
            } catch {
                throw UsageError(message: error.message, command: info.name)
            }
        }

        let configuration = try ConfigurationOptions(arguments, command: info.name)
        let contextFields = try TestRunContext.parseOption(arguments, command: info.name)

        // Inputs first, so a bad file is reported even where the kernel is not reachable.
        let name = Input.displayName(path)
        let bytes = try Input.read(path)
        guard ObjectInput.isELF(bytes) else {
            throw RuntimeError("\(name) is not an ELF object (it does not start with 0x7f 'ELF')")
        }
        // The same configuration for both sides: the kernel and Mimic load this object.
        let object = try configuration.apply(
            to: try ObjectInput.object(bytes, name: name),
            programName: arguments.value("program"), objectName: name)
        var packets: [(packet: [UInt8], context: (any Context)?)] = []
        if let hex = arguments.value("packet") {
            packets = [(try Hex.parse(hex, what: "--packet"), nil)]
        } else if let pcapPath = arguments.value("pcap") {
            do {
                packets = try PcapReader.readAll(try Input.read(pcapPath)).map { ($0.data, nil) }
            } catch let error as PcapError {
                throw RuntimeError("\(Input.displayName(pcapPath)): \(error)")
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
            } else if let flow = context as? FlowDissectorContext {
                packets = [(flow.packet, flow)]
            } else {
                throw RuntimeError(
                    "\(contextPath): compare needs an xdp_md, sk_buff or bpf_flow_dissector context (the kernel runs programs on a packet; sk_lookup is compared by ObjectComparison.run(lookup:))"
                )
            }
        }
        var memoryLimit = ObjectComparison.defaultMemoryLimit
        if let text = arguments.value("memory-limit") {
            guard let value = RunOptions.byteCount(text) else {
                throw UsageError(
                    message: "--memory-limit expects a number of bytes, optionally with K, M or G, got '\(text)'",
                    command: info.name)
            }
            memoryLimit = value
        }
        var mapBytes: [(name: String, path: String, bytes: [UInt8])] = []
        for file in mapFiles { mapBytes.append((file.name, file.path, try Input.read(file.path))) }

        guard KernelBPF.isAvailable else {
            throw RuntimeError(
                "cannot compare: \(KernelError.unavailable(KernelBPF.unavailableReason ?? "unknown reason"))")
        }
        let comparison: ObjectComparison
        do {
            comparison = try ObjectComparison(
                object: object, programName: arguments.value("program"), memoryLimit: memoryLimit)
        } catch let error as KernelError {
            if let log = error.verifierLog {
                Console.err("the kernel's verifier rejected the program; its log:\n\(log)\n")
                throw RuntimeError(
                    "the kernel's verifier rejected program \(arguments.value("program") ?? "(the first)") of \(name); Mimic's loader is not a verifier, so the programs cannot be compared"
                )
            }
            throw RuntimeError("\(error)")
        } catch {
            throw RuntimeError("\(error)")
        }
        for file in mapBytes {
            guard let map = comparison.kernel.maps[file.name] else {
                throw RuntimeError(
                    "--map \(file.name): the object has no map or global-data section named '\(file.name)'")
            }
            let entries = try MapFile.entries(
                file.bytes, file: Input.displayName(file.path), keySize: map.attributes.keySize,
                valueSize: map.attributes.valueSize, cpus: KernelBPF.possibleCPUs)
            for entry in entries {
                do {
                    try comparison.setEntry(map: file.name, key: entry.key, values: entry.values)
                } catch {
                    throw RuntimeError("--map \(file.name): \(error)")
                }
            }
        }

        var results: [ObjectComparison.PacketResult?] = []
        var skipped: [Int: String] = [:]
        for (index, input) in packets.enumerated() {
            do {
                var context = input.context
                if !contextFields.isEmpty {
                    let base: any Context
                    if let given = context {
                        base = given
                    } else if comparison.programType == .xdp {
                        base = XDPContext(packet: input.packet)
                    } else {
                        var skb = SKBContext(packet: input.packet, ifindex: 1)
                        skb.ingressIfindex = 0
                        skb.dataStart = ContextFit.dataStart(of: comparison.programType)
                        base = skb
                    }
                    do {
                        context = try TestRunContext.apply(contextFields, to: base)
                    } catch {
                        throw RuntimeError("--ctx: \(error)")
                    }
                }
                results.append(try comparison.run(packet: input.packet, mimicContext: context))
            } catch let error as ComparisonError {
                // A packet the kernel's test run refuses: say so and go on with the others.
                results.append(nil)
                skipped[index] = error.description
            } catch let error as RuntimeError {
                throw error
            } catch {
                throw RuntimeError("packet \(index + 1): \(error)")
            }
        }
        let differing = results.compactMap { $0 }.filter { !$0.differences.isEmpty }.count
        let describe = { (value: UInt64) in CompareCommand.describe(value, type: comparison.programType) }
        if arguments.has("json") {
            Console.out(json(results, skipped: skipped, comparison: comparison))
        } else {
            Console.out(
                "program \(comparison.programName) (\(comparison.programType)) of \(name): \(packets.count) packet(s)\n"
            )
            for (index, result) in results.enumerated() {
                guard let result else {
                    Console.out("packet \(index + 1): skipped — \(skipped[index] ?? "refused")\n")
                    continue
                }
                let kernel = describe(UInt64(result.kernelReturn))
                let mimic = result.mimicReturn.map { describe(UInt64(UInt32(truncatingIfNeeded: $0))) } ?? "error"
                if result.differences.isEmpty {
                    Console.out(
                        "packet \(index + 1): same — \(kernel), packet \(result.kernelPacket.count) bytes, maps equal\n"
                    )
                    if let context = result.kernelContext {
                        Console.out("  context: \(TestRunContext.describe(context, before: nil))\n")
                    }
                } else {
                    Console.out("packet \(index + 1): DIFFERENT — kernel returned \(kernel), Mimic \(mimic)\n")
                    for line in result.differences {
                        Console.out("  " + line.replacingOccurrences(of: "\n", with: "\n  ") + "\n")
                    }
                }
            }
            let compared = packets.count - skipped.count
            if compared > 0 {
                Console.out(
                    differing == 0
                        ? "Mimic and the kernel agree on every packet compared (\(compared) of \(packets.count)).\n"
                        : "Mimic and the kernel differ on \(differing) of \(compared) packet(s) compared.\n")
            }
        }
        if differing > 0 { exit(differExitCode) }
        if skipped.count == packets.count {
            throw RuntimeError(
                "nothing was compared: the kernel's test run refused all \(packets.count) packet(s)"
                    + (skipped[0].map { " (packet 1: \($0))" } ?? ""))
        }
    }

    /// A return value as `run` shows it: the verdict name and the number (`XDP_PASS (2)`).
    static func describe(_ value: UInt64, type: ProgramType) -> String {
        Session.verdict(value, type: type).map { "\($0) (\(value))" } ?? "return \(value)"
    }

    static func json(_ results: [ObjectComparison.PacketResult?], skipped: [Int: String], comparison: ObjectComparison)
        -> String
    {
        let string = JSONOutput.quote
        let items = results.enumerated().map { index, result -> String in
            guard let result else { return "{\"skipped\": \(string(skipped[index] ?? "refused"))}" }
            let mimic = result.mimicReturn.map { "\(UInt32(truncatingIfNeeded: $0))" } ?? "null"
            let mimicPacket = result.mimicPacket.map { string(Hex.string($0)) } ?? "null"
            let error = result.mimicError.map(string) ?? "null"
            let verdict = { (value: UInt64) in
                Session.verdict(value, type: comparison.programType).map(string) ?? "null"
            }
            return
                "{\"same\": \(result.differences.isEmpty), \"kernel_return\": \(result.kernelReturn), \"mimic_return\": \(mimic), "
                + "\"kernel_verdict\": \(verdict(UInt64(result.kernelReturn))), "
                + "\"mimic_verdict\": \(result.mimicReturn.map { verdict(UInt64(UInt32(truncatingIfNeeded: $0))) } ?? "null"), "
                + "\"kernel_packet\": \(string(Hex.string(result.kernelPacket))), "
                + "\"mimic_packet\": \(mimicPacket), \"mimic_error\": \(error), "
                + "\"kernel_context_out\": \(result.kernelContext.map { String(TestRunContext.json($0).line.dropLast()) } ?? "null"), "
                + "\"mimic_context_out\": \(result.mimicContext.map { String(TestRunContext.json($0).line.dropLast()) } ?? "null"), "
                + "\"differences\": [\(result.differences.map(string).joined(separator: ", "))]}"
        }
        return
            "{\"program\": \(string(comparison.programName)), \"type\": \(string(comparison.programType.description)), "
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
            ("A long run", "sudo mimic fuzz --seed 42 --count 1000000")
        ])

    static func run(_ arguments: ParsedArguments) throws {
        try arguments.requirePositionals([], command: info.name)
        func number(_ name: String, _ fallback: UInt64) throws(UsageError) -> UInt64 {
            guard let text = arguments.value(name) else { return fallback }
            let value = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
            guard let value else {
                throw UsageError(message: "--\(name) expects a whole number, got '\(text)'", command: info.name)
            }
            return value
        }
        let seed = try number("seed", 1)
        let count = try number("count", 10_000)
        guard count <= UInt64(Int.max) else { throw UsageError(message: "--count is too large", command: info.name) }
        guard KernelBPF.isAvailable else {
            throw RuntimeError(
                "cannot fuzz: \(KernelError.unavailable(KernelBPF.unavailableReason ?? "unknown reason"))")
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
                Console.out(
                    "\(report.programs)/\(count) programs, \(report.rejected) rejected, \(report.mismatches.count) mismatches, \(String(format: "%.1f", report.seconds)) s\n"
                )
            }
        }
        Console.out("seed \(seed): " + report.summary + "\n")
        if !report.mismatches.isEmpty { exit(CompareCommand.differExitCode) }
    }
}
