import MimicCore
import MimicKernel
import MimicLinux
import MimicTesting
import MimicVerifier

/// `mimic test FILE...`: run the cases of test files, report failures as diffs, JUnit and TAP.
enum TestCommand: Command {
    static let info = CommandInfo(
        name: "test",
        summary: "Run eBPF unit tests from test files (no root, no kernel); JUnit XML and TAP for CI.",
        synopsis:
            "test FILE.json... [--junit OUT.xml] [--tap | --tap=OUT.tap] [--kernel] [--engine interpreter|jit|auto]",
        discussion: """
            Each test file (JSON; Docs/Testing-Programs.md) names an object, its configuration and
            cases: maps to seed, the input (a packet as hex or base64, a packet of a capture, or a
            context file) and what to expect (verdict, output packet, map entries, ring buffer and
            perf records, bpf_printk lines, redirect target). Every case runs in a fresh VM of the
            Linux emulator. A failing case prints what was expected and what happened, by field
            name from the object's BTF where it has one.

            --junit OUT.xml writes a JUnit XML report; --tap prints a TAP 14 stream on standard
            output (the readable report then goes to standard error), --tap=OUT.tap writes it to a
            file. --kernel runs every case through the running kernel too (BPF_PROG_TEST_RUN, via
            `mimic compare`'s machinery: XDP, tc and socket filters), checking the same expectations
            there and that Mimic and the kernel agree; those runs appear as "CASE [kernel]". Trace
            output, events and the redirect target are not observable in the kernel's test run and
            are checked in Mimic only. Without root the kernel runs are reported as skipped, with
            the reason.

            Exit codes: 0 when every case passed (skipped kernel runs included), 1 when a case
            failed or could not run, 2 for usage errors.
            """,
        options: [
            .value("junit", "OUT.xml", "Write a JUnit XML report."),
            .flag("tap", "Print a TAP stream on standard output (--tap=OUT.tap writes it to a file)."),
            .value("tap-file", "OUT.tap", "Write a TAP stream to a file (the same as --tap=OUT.tap)."),
            .flag("kernel", "Run every case in the running kernel too (root), and compare."),
            EngineOption.spec,
        ],
        examples: [
            ("Run the example tests", "mimic test Examples/tests/xdp_firewall.json Examples/tests/tc_rewrite.json"),
            (
                "The same, with a JUnit report for CI",
                "mimic test Examples/tests/packet_counter.json --junit report.xml"
            ),
            ("Against the kernel as well (root)", "sudo mimic test Examples/tests/xdp_firewall.json --kernel"),
        ])

    static func normalize(_ arguments: [String]) -> [String] {
        arguments.flatMap { argument in
            argument.hasPrefix("--tap=") ? ["--tap-file", String(argument.dropFirst("--tap=".count))] : [argument]
        }
    }

    /// The case `(verifier)` of a file with `"verify": true`: the configured program against the
    /// verifier model.
    static func verification(_ suite: TestSuite) -> CaseReport {
        let test: ProgramTest
        do {
            test = try ProgramTest(suite: suite)
        } catch {
            return CaseReport(name: "(verifier)", status: .error(error.description))
        }
        // With the running kernel's BTF, as libbpf would load it: CO-RE against it, and BTF-typed
        // contexts and kernel pointers typed by it (Docs/Verifier.md).
        var verified = test
        let kernelBTF = VerifyCommand.needsKernelTypes(test.object) ? try? RunOptions.kernelBTF(path: nil) : nil
        if let kernelBTF, let relocated = try? ObjectFile(contentsOf: suite.objectPath, targetBTF: kernelBTF),
            let configured = try? ProgramTest(
                object: relocated, name: suite.objectPath, program: suite.program, config: suite.config,
                setup: suite.setup)
        {
            verified = configured
        }
        guard
            let error = Verifier().verify(
                object: verified.object, program: verified.program, kernelBTF: kernelBTF,
                kconfig: VerifyCommand.kconfig(of: verified.object)
            ).error
        else {
            return CaseReport(name: "(verifier)", status: .passed)
        }
        let mismatch = Mismatch(
            what: "verifier", expected: "accepted", actual: "rejected: \(error.message)",
            detail: error.explanation.split(separator: "\n").map(String.init))
        return CaseReport(name: "(verifier)", status: .failed([mismatch]))
    }

    static func run(_ arguments: ParsedArguments) throws {
        guard !arguments.positionals.isEmpty else {
            throw UsageError(message: "missing argument FILE.json for 'test'", command: info.name)
        }
        if arguments.has("tap"), arguments.value("tap-file") != nil {
            throw UsageError(message: "give --tap or --tap=OUT.tap, not both", command: info.name)
        }
        let engine = try EngineOption.value(of: arguments, command: info.name)
        var reports: [SuiteReport] = []
        var kernelNote: String?
        for path in arguments.positionals {
            let suite: TestSuite
            do {
                suite = try TestSuite.load(path: path)
            } catch {
                reports.append(
                    SuiteReport(
                        name: path, file: path, cases: [CaseReport(name: "(file)", status: .error(error.description))]))
                continue
            }
            var report = ProgramTest.run(suite: suite, engine: engine)
            if suite.config.verify { report.cases.insert(verification(suite), at: 0) }
            if arguments.has("kernel") {
                if let reason = KernelBPF.unavailableReason {
                    kernelNote = "kernel runs skipped: the kernel is not reachable (\(reason))"
                    report.cases += suite.cases.map {
                        CaseReport(
                            name: "\($0.name) [kernel]", status: .skipped("the kernel is not reachable: \(reason)"))
                    }
                } else {
                    report.cases += KernelRunner(suite: suite).reports()
                }
            }
            reports.append(report)
        }

        let text = TestReportFormat.text(reports) + (kernelNote.map { "\($0)\n" } ?? "")
        if arguments.has("tap") {
            Console.err(text)
            Console.out(TestReportFormat.tap(reports))
        } else {
            Console.out(text)
        }
        if let tapFile = arguments.value("tap-file") {
            try Input.write(Array(TestReportFormat.tap(reports).utf8), to: tapFile)
        }
        if let junit = arguments.value("junit") {
            try Input.write(Array(TestReportFormat.junit(reports).utf8), to: junit)
        }
        let failed = reports.reduce(0) { $0 + $1.cases.filter(\.isFailure).count }
        if failed > 0 { throw RuntimeError("\(failed) test case(s) failed") }
    }
}

/// Runs a suite's cases in the kernel with `ObjectComparison` (Mimic beside it) and checks
/// the same expectations against what the kernel produced.
struct KernelRunner {
    let suite: TestSuite

    func reports() -> [CaseReport] {
        let test: ProgramTest
        do {
            test = try ProgramTest(suite: suite)
        } catch {
            return suite.cases.map { CaseReport(name: "\($0.name) [kernel]", status: .error(error.description)) }
        }
        guard ObjectComparison.supportedTypes.contains(test.program.type) else {
            let reason =
                "the kernel's test run is compared for XDP, tc and socket-filter programs; \(test.program.name) is \(test.program.type)"
            return suite.cases.map { CaseReport(name: "\($0.name) [kernel]", status: .skipped(reason)) }
        }
        return suite.cases.map { testCase in
            let clock = ContinuousClock()
            let start = clock.now
            var report = run(testCase, test: test)
            let elapsed = clock.now - start
            report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return report
        }
    }

    func run(_ testCase: TestCase, test: ProgramTest) -> CaseReport {
        let name = "\(testCase.name) [kernel]"
        if testCase.expect.error != nil {
            return CaseReport(
                name: name,
                status: .skipped(
                    "the case expects Mimic's run to fail; the kernel's test run has no such failure to compare"))
        }
        do {
            var packet: [UInt8]
            var mimicContext: (any Context)?
            if case .context = testCase.input {
                let context = try test.context(for: testCase)
                if let xdp = context as? XDPContext {
                    packet = xdp.packet
                } else if let skb = context as? SKBContext {
                    packet = skb.packet
                } else {
                    return CaseReport(
                        name: name,
                        status: .skipped("the kernel's test run takes a packet; this case's context has none"))
                }
                mimicContext = context
            } else if let bytes = try testCase.input.packetBytes() {
                packet = bytes
                if !testCase.contextFields.isEmpty { mimicContext = try test.context(for: testCase) }
            } else {
                return CaseReport(name: name, status: .skipped("the case has no packet for the kernel's test run"))
            }
            if packet.count < 14 {
                return CaseReport(
                    name: name,
                    status: .skipped(
                        "the kernel's test run takes packets of at least 14 bytes (an Ethernet header); this one has \(packet.count)"
                    ))
            }
            // A fresh comparison per case: maps as the object declares them, on both sides.
            let comparison = try ObjectComparison(object: test.object, programName: test.program.name)
            // Seeds' per-CPU lists are read for the test's CPUs (then padded for the kernel's).
            let layout = test.layout
            for seed in suite.setup + testCase.seeds {
                for entry in seed.entries {
                    var (key, values) = try layout.seedBytes(seed.map, entry, file: test.objectName)
                    // Per-CPU values given for fewer CPUs than the kernel's: the rest are zero.
                    if values.count > 1, values.count < KernelBPF.possibleCPUs, let size = values.first?.count {
                        values += Array(
                            repeating: [UInt8](repeating: 0, count: size), count: KernelBPF.possibleCPUs - values.count)
                    }
                    try comparison.setEntry(map: seed.map, key: key, values: values)
                }
            }
            let result = try comparison.run(packet: packet, mimicContext: mimicContext)
            var observation = Observation(source: .kernel)
            observation.returnValue = UInt64(result.kernelReturn)
            observation.packet = result.kernelPacket
            observation.context = result.kernelContext
            observation.lookup = { map, key in try comparison.kernelContents(map)[key] }
            var failures = try layout.check(testCase.expect, against: observation, file: test.objectName)
            failures += result.differences.map {
                Mismatch(what: "Mimic and the kernel", expected: "the same result", actual: $0)
            }
            var notes: [String] = []
            var unchecked = [
                ("trace", testCase.expect.trace != nil), ("events", testCase.expect.events != nil),
                ("redirect", testCase.expect.redirect != nil),
                ("ctx", !testCase.expect.context.isEmpty && result.kernelContext == nil),
            ].filter(\.1).map(\.0)
            // Fields the kernel's ctx_out does not carry (tc_classid, ...).
            if let reported = result.kernelContext?.map(\.name) {
                unchecked += testCase.expect.context.map(\.name).filter { !reported.contains($0) }.map { "ctx.\($0)" }
            }
            if !unchecked.isEmpty {
                notes.append(
                    "\(unchecked.joined(separator: ", ")) checked in Mimic only (the kernel's test run does not report \(unchecked.count == 1 ? "it" : "them"))"
                )
            }
            return CaseReport(name: name, status: failures.isEmpty ? .passed : .failed(failures), notes: notes)
        } catch let error as KernelError {
            if let log = error.verifierLog {
                return CaseReport(
                    name: name, status: .error("the kernel's verifier rejected \(test.program.name):\n\(log)"))
            }
            return CaseReport(name: name, status: .error("\(error)"))
        } catch {
            return CaseReport(name: name, status: .error("\(error)"))
        }
    }
}
