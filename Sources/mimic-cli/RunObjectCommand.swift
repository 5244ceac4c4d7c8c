import MimicCore
import MimicVerifier
import MimicLinux

/// `mimic run OBJ.o`: run a program of an ELF object on a context or over a capture.
enum RunObjectCommand: Command {
    static let info = CommandInfo(
        name: "run",
        summary: "Run a program of an eBPF object on a context or over a packet capture.",
        synopsis:
            "run OBJ.o [--program P] [--context CTX.json | --packet HEX | --pcap IN.pcap [--out OUT.pcap] [--out-dir DIR]] [--map NAME=FILE.json ...] [--json]",
        discussion: """
            Loads OBJ.o (compiled with `clang -O2 -g -target bpf -c`) into a VM with the Linux
            emulator, creates its maps and global data, and runs one program.

            With --context, runs once on that context file and prints R0 (with the verdict for XDP
            and tc programs: XDP_PASS, TC_ACT_OK, ...), the instructions executed, the output of
            bpf_trace_printk, ring buffer and perf events, the map entries the run changed (before
            -> after, formatted with the object's BTF types) and the packet if the program changed it.

            With --pcap, runs once per packet of the capture (pcap or pcapng, Ethernet link type),
            in a context the program type decides (xdp: xdp_md; tc, socket filters, cgroup_skb:
            __sk_buff), and prints a verdict summary, where the packets went (pass, tx, ifN for a
            redirect to ifindex N, ifN-ingress, cpuN, xsk-MAP-KEY, drop, aborted, stolen,
            redirect-error, error), the trace output and events of every run, and the map changes
            over the whole capture. sk_lookup programs run for each TCP SYN (no ACK) and UDP
            datagram with the bpf_sk_lookup the kernel builds for it (--ctx ingress_ifindex=N):
            SK_DROP drops, SK_PASS after bpf_sk_assign goes to sk-COOKIE, SK_PASS alone passes; other
            packets are not looked up (the program does not run) and pass. --out writes the packets that leave the program alive, once
            each, as the program left them (XDP_PASS, XDP_TX, a redirect that has a target;
            TC_ACT_OK and what tc treats as it, TC_ACT_REDIRECT; R0 != 0 for socket filters, cut to
            R0 bytes; allow for cgroup_skb). --out-dir DIR writes one capture per destination into
            DIR (created if missing): pass.pcap, tx.pcap, if3.pcap, cpu1.pcap, drop.pcap, ...; only
            destinations that got packets, and other files in DIR are left alone. --out and
            --out-dir go together; an --out-dir capture may not be the --out file or the input.
            With `--out -` the capture goes to standard output and the report to standard error.
            --out may not name the input capture.
            A progress line goes to standard error on long captures when it is a terminal.

            With --packet HEX (and no --pcap), runs once on that packet, given as hex bytes
            (`"02 00 00 ..."` or `"020000..."`), in the context the program type decides.

            Without any of them, tracing programs run with an empty context; packet programs need one.

            --set NAME=VALUE, --map-size NAME=N, --type TYPE, --prog-array MAP=INDEX:PROGRAM and
            --map-of-maps OUTER=INDEX:INNER configure the object before load, as a libbpf loader
            does (global variables by BTF name, including .rodata constants; map sizes, required for
            maps declared with max_entries 0; the program type for a section libbpf gives none).
            --ctx mark=5,cb[0]=1 sets context fields as BPF_PROG_TEST_RUN's ctx_in allows them; the
            output shows the context as the program left it. Pinning is not modelled.

            --map NAME=FILE.json fills a map first; the file is a JSON array of
            {"key": K, "value": V} entries (see Docs/UserGuide.md). Exit codes: 0 when every run
            finished, 1 when the input cannot be read or loaded or a run failed, 2 for usage errors.
            """,
        options: RunOptions.specs(out: true, json: true, engine: true) + [
            .flag("verify", "Refuse to run a program the kernel's verifier would reject (mimic verify explains why)."),
            .value(
                "workers", "N",
                "With --pcap: run the packets on N threads, spread by flow (5-tuple hash); worker i is CPU i (--cpus defaults to N)."
            ),
        ],
        examples: [
            (
                "Run the XDP firewall over a capture with a preloaded blocklist",
                "mimic run Examples/xdp_firewall.o --pcap Examples/traffic.pcap --map blocklist=Examples/blocklist.json"
            ),
            (
                "Keep the packets it passes",
                "mimic run Examples/xdp_firewall.o --pcap Examples/traffic.pcap --out passed.pcap"
            ),
            (
                "Run the firewall on one packet given as hex (an Ethernet frame)",
                "mimic run Examples/xdp_firewall.o --packet 020000000000020000000001080045000024000100004011f9c10a0000010a000002303900350010000068656c6c6f212121"
            ),
            (
                "Run a tc program on one context",
                "mimic run Examples/tc_rewrite.o --context Examples/contexts/udp_8080.json"
            ),
            (
                "Configure a .rodata constant and size a max_entries 0 map before load",
                "mimic run prog.o --set blocked_port=53 --set mode=MODE_DROP --map-size hits=1024 --pcap traffic.pcap"
            ),
            (
                "Replay a captured tracing context, JSON output",
                "mimic run Examples/trace_exec.o --context Examples/contexts/exec_captured.json --json"
            ),
        ])

    static func run(_ arguments: ParsedArguments) throws {
        var options = try RunOptions(arguments, command: info.name)
        options.engine = try EngineOption.value(of: arguments, command: info.name)
        let session = try options.session()
        if arguments.has("verify") {
            if let error = Verifier().verify(
                object: session.object, program: session.source, kernelBTF: session.kernelBTF,
                kconfig: session.loaded.globals[ObjectExtern.kconfigSection]?.storage.bytes
            ).error {
                throw RuntimeError(
                    "\(session.source.name): the kernel's verifier would reject it\n\(error.explanation)")
            }
        }
        if options.eventsPath != nil {
            try EventsRun(session: session, options: options).run()
            return
        }
        if options.pcapPath != nil, options.packetNumber == nil {
            try PcapRun(session: session, options: options).run()
            return
        }
        if let contextPath = options.contextPath {
            let contexts = try session.contexts(file: contextPath)
            if contexts.count > 1 {
                try SingleRun(session: session, options: options).runEach(contexts)
                return
            }
        }
        let input = try options.singleContext(session)
        try SingleRun(session: session, options: options).run(context: input.context, inputName: input.name)
    }
}

/// One run of a program on one context, and its report.
struct SingleRun {
    let session: Session
    let options: RunOptions

    /// Runs each context of an array file in turn (as `--pcap` runs each packet; maps keep
    /// their contents from one to the next), a report for each: under a `=== NAME ===` header,
    /// or with `--json` one JSON array of the reports (`{"input", "error"}` for a run that
    /// failed). A failed run does not stop the others; the command then exits 1.
    func runEach(_ contexts: [(context: any Context, name: String)]) throws {
        var reports: [JSONOutput] = []
        var failures = 0
        for (index, entry) in contexts.enumerated() {
            if !options.json { Console.out((index > 0 ? "\n" : "") + "=== \(entry.name) ===\n") }
            do {
                try run(
                    context: entry.context, inputName: entry.name, emitJSON: options.json ? { reports.append($0) } : nil
                )
            } catch let error as RuntimeError {
                failures += 1
                if options.json {
                    reports.append(.object([("input", .string(entry.name)), ("error", .string(error.message))]))
                } else {
                    Console.out("error: \(error.message)\n")
                }
            }
        }
        if options.json { Console.out(JSONOutput.array(reports).text) }
        if failures > 0 {
            throw RuntimeError("\(failures) of \(contexts.count) contexts failed")
        }
    }

    /// Runs to the end with `execute` (default: the interpreter at full speed) and prints the
    /// report; `extraJSON` adds members to the `--json` object (e.g. trace steps). With
    /// `jsonLines`, the JSON report is one line (a JSON Lines record) instead of indented.
    /// With `emitJSON`, the `--json` report goes there instead of standard output.
    func run(
        context: (any Context)?, inputName: String, jsonLines: Bool = false,
        execute: ((Process) throws(ExecutionError) -> UInt64)? = nil,
        extraJSON: () -> [(String, JSONOutput)] = { [] },
        emitJSON: ((JSONOutput) -> Void)? = nil
    ) throws {
        let display = ValueDisplay(object: session.object, cpus: session.cpus)
        let before = session.snapshot()
        // The packet as the program first sees it (an sk_buff at the network header: without the
        // pulled Ethernet header), to tell whether the run changed it.
        var originalPacket =
            (context as? XDPContext)?.packet ?? (context as? SKBContext)?.packet
            ?? (context as? FlowDissectorContext)?.packet
        if let skb = context as? SKBContext, skb.dataStart == .network {
            originalPacket = Array(skb.packet.dropFirst(min(14, skb.packet.count))) // the Ethernet header
        }
        let process = try session.makeProcess(context: context)
        let contextBefore = TestRunContext.output(of: process)
        let limit = session.limit
        let r0: UInt64
        do {
            if let execute {
                r0 = try execute(process)
            } else {
                r0 = try Timeout.run(process, limit: limit, timeout: session.timeout)
            }
        } catch {
            // Show what the run printed before it failed: it is often the clue.
            for line in LinuxProcessState.of(process)?.traceOutput ?? [] { Console.err("trace: \(line)\n") }
            throw RuntimeError(session.message(for: error))
        }
        let state = LinuxProcessState.of(process)
        let trace = state?.traceOutput ?? []
        var warnings = state?.warnings ?? []
        for field in SKBContext.forbiddenWrites(of: process) {
            warnings.append(
                "the program changed __sk_buff.\(field), which a \(session.type) program may not write (the kernel's verifier refuses the program)"
            )
        }
        for field in state?.contextRecord?.forbiddenWrites ?? [] {
            warnings.append(
                "the program changed \(state?.contextRecord?.layout.structName ?? "context").\(field), which a \(session.type) program may not write (the kernel's verifier refuses the program)"
            )
        }
        let events = session.drainEvents()
        let changes = before.changes(to: session.snapshot())
        let packet = session.packet(after: process)
        let modified = packet != nil && packet != originalPacket
        let verdict = session.verdict(r0)
        let redirect = session.redirect(after: process)
        let contextAfter = TestRunContext.output(of: process)
        let headerOptions = SockOpsContext.headerOptions(of: process, returnValue: r0)

        if options.json {
            var members: [(String, JSONOutput)] = [
                ("program", .string(session.source.name)),
                ("type", .string(session.type.description)),
                ("input", .string(inputName)),
                ("r0", .unsigned(r0)),
                ("r0_hex", .string("0x" + String(r0, radix: 16))),
            ]
            members.append(("verdict", verdict.map(JSONOutput.string) ?? .null))
            members.append(("instructions", .unsigned(process.instructionsExecuted)))
            members.append(("trace", .array(trace.map(JSONOutput.string))))
            members.append(("events", .array(events.map(display.json))))
            members.append(("map_changes", .array(changes.map(display.json))))
            if let packet {
                members.append(("packet_modified", .bool(modified)))
                members.append(("packet", .string(Hex.string(packet))))
            }
            if let redirect { members.append(("redirect", .string(redirect.description))) }
            if let contextAfter { members.append(("context_out", TestRunContext.json(contextAfter))) }
            if let headerOptions, !headerOptions.segment.isEmpty || headerOptions.reserved > 0 {
                members.append(
                    (
                        "tcp_header_options",
                        .object([
                            ("remaining_opt_len", .unsigned(UInt64(headerOptions.remainingOptionLength))),
                            ("reserved", .unsigned(UInt64(headerOptions.reserved))),
                            ("written", .unsigned(UInt64(headerOptions.written))),
                            ("segment", .string(Hex.string(headerOptions.segment))),
                        ])
                    ))
            }
            if let effects = state?.socketEffects, !effects.isEmpty {
                members.append(("socket_effects", .array(effects.map { .string($0.description) })))
            }
            if let signals = state?.signals, !signals.isEmpty {
                members.append(
                    (
                        "signals",
                        .array(
                            signals.map { signal in
                                .object([
                                    ("signal", .unsigned(UInt64(signal.signal))),
                                    ("to", .string(signal.toThread ? "thread" : "process")),
                                    ("target", .unsigned(UInt64(signal.target))),
                                ])
                            })
                    ))
            }
            if let value = state?.overriddenReturn {
                members.append(("override_return", .integer(Int64(bitPattern: value))))
            }
            if !warnings.isEmpty { members.append(("warnings", .array(warnings.map(JSONOutput.string)))) }
            members += extraJSON()
            if let emitJSON { return emitJSON(.object(members)) }
            Console.out(jsonLines ? JSONOutput.object(members).line : JSONOutput.object(members).text)
            return
        }

        var out = "program \(session.source.name) (\(session.type)) on \(inputName)\n"
        var value = "r0 = \(r0) (0x\(String(r0, radix: 16))"
        if Int64(bitPattern: r0) < 0 { value += ", signed \(Int64(bitPattern: r0))" }
        value += ")"
        if let verdict { value += " \(verdict)" }
        out += value + "\n"
        if let redirect { out += "redirect: \(redirect)\n" }
        for signal in state?.signals ?? [] { out += "sent \(signal)\n" }
        if let value = state?.overriddenReturn {
            out += "override_return: the probed function returns \(Int64(bitPattern: value))\n"
        }
        out += "instructions executed: \(process.instructionsExecuted)\n"
        if let headerOptions, !headerOptions.segment.isEmpty || headerOptions.reserved > 0 {
            out +=
                "tcp header options: remaining_opt_len \(headerOptions.remainingOptionLength), reserved "
                + "\(headerOptions.reserved), written \(headerOptions.written)"
                + (headerOptions.segment.isEmpty ? "" : ", segment \(Hex.string(headerOptions.segment))") + "\n"
        }
        if let contextAfter {
            out += "context: \(TestRunContext.describe(contextAfter, before: contextBefore))\n"
        }
        for effect in state?.socketEffects ?? [] { out += "effect: \(effect)\n" }
        if !trace.isEmpty {
            out += "trace output:\n" + trace.map { "  \($0)\n" }.joined()
        }
        if !events.isEmpty {
            out += "events:\n" + events.map { "  \(display.describe($0))\n" }.joined()
        }
        out += changes.isEmpty ? "maps: no changes\n" : "map changes:\n" + display.describe(changes)
        if let packet, modified {
            out += "packet modified (\(packet.count) bytes):\n"
            out += HexDump.lines(packet).map { "  \($0)\n" }.joined()
        }
        for warning in warnings { out += "warning: \(warning)\n" }
        Console.out(out)
    }
}
