// swift-tools-version:6.2
import PackageDescription

/// Mimic: a userspace eBPF virtual machine and emulator.
///
/// Every library product stands on its own, so a host app links only the modules it picks.
/// No external package dependencies: the Swift toolchain only.
let package = Package(
    name: "Mimic",
    products: [
        .library(name: "MimicMemory", targets: ["MimicMemory"]),
        .library(name: "MimicJSON", targets: ["MimicJSON"]),
        .library(name: "MimicCore", targets: ["MimicCore"]),
        .library(name: "MimicLinux", targets: ["MimicLinux"]),
        .library(name: "MimicPcap", targets: ["MimicPcap"]),
        .library(name: "MimicKernel", targets: ["MimicKernel"]),
        .library(name: "MimicPool", targets: ["MimicPool"]),
        // Unit tests of eBPF programs without a kernel: test files and `ProgramTest` (`mimic test`).
        .library(name: "MimicTesting", targets: ["MimicTesting"]),
        // Predicts the kernel verifier's verdict and explains a rejection (`mimic verify`).
        .library(name: "MimicVerifier", targets: ["MimicVerifier"]),
        // The plugin ABI header (`mimic_plugin.h`), for plugins written in Swift or C.
        .library(name: "CMimicPlugin", targets: ["CMimicPlugin"]),
        // The Linux emulator as a plugin library for `PluginLibrary.load` / `mimic ... --plugin`.
        .library(name: "MimicLinuxPlugin", type: .dynamic, targets: ["MimicLinuxPlugin"]),
        .executable(name: "mimic", targets: ["mimic-cli"]),
        .executable(name: "mimic-bench", targets: ["mimic-bench"]),
    ],
    // Every target lists each module it imports (its direct dependencies, no more); the graph is
    // layered with no back edges (Docs/Architecture.md). MimicModuleGraphTests checks the imports
    // against this list and that MimicLinux's closure holds no kernel oracle.
    targets: [
        // Atomic read-modify-write on raw VM memory (the stdlib has no atomics on raw pointers).
        .target(name: "CMimicAtomics"),
        // The C ABI of emulator plugins: one header, the single source of truth.
        .target(name: "CMimicPlugin"),
        // The bpf(2) system call and CPU affinity (Swift cannot call the variadic syscall(2)),
        // for MimicKernel only.
        .target(name: "CMimicKernel"),
        .target(name: "MimicMemory"),
        // The package's one JSON codec: numbers kept exactly (u64), errors naming the JSON path.
        .target(name: "MimicJSON"),
        .target(name: "MimicCore", dependencies: ["MimicMemory", "MimicJSON", "CMimicAtomics", "CMimicPlugin"]),
        // The Linux emulator: what a host app embeds (no kernel access, no capture files).
        .target(name: "MimicLinux", dependencies: ["MimicCore", "MimicMemory", "MimicJSON"]),
        // pcap / pcapng reading and writing (no dependencies).
        .target(name: "MimicPcap"),
        // The running kernel as oracle: bpf(2), BPF_PROG_TEST_RUN, object comparison, the fuzzer.
        .target(name: "MimicKernel", dependencies: ["MimicLinux", "MimicCore", "MimicMemory", "CMimicKernel"]),
        // Exports `mimic_plugin_entry` over MimicLinux's helpers (built as a dynamic library).
        .target(
            name: "MimicLinuxPlugin",
            dependencies: ["MimicLinux", "MimicCore", "MimicMemory", "MimicJSON", "CMimicPlugin"]
        ),
        .target(name: "MimicPool", dependencies: ["MimicCore"]),
        // The verifier model: abstract interpretation in the kernel verifier's terms (Docs/Verifier.md).
        .target(name: "MimicVerifier", dependencies: ["MimicCore"]),
        // `mimic test`'s one implementation: test files, runs in the emulator, checks, JUnit/TAP.
        .target(name: "MimicTesting", dependencies: ["MimicCore", "MimicJSON", "MimicLinux", "MimicPcap"]),
        .executableTarget(
            name: "mimic-cli",
            dependencies: [
                "MimicCore", "MimicMemory", "MimicJSON", "MimicLinux", "MimicPcap", "MimicKernel", "MimicTesting",
                "MimicVerifier",
            ]
        ),
        .executableTarget(
            name: "mimic-bench",
            dependencies: ["MimicCore", "MimicLinux", "MimicKernel", "MimicPool", "MimicVerifier"],
            path: "Benchmarks/mimic-bench"
        ),
        .testTarget(name: "MimicMemoryTests", dependencies: ["MimicMemory"]),
        // Counts malloc calls in the test executable (the per-instruction allocation tests).
        .target(name: "CMallocCounter", path: "Tests/CMallocCounter"),
        .testTarget(name: "MimicJSONTests", dependencies: ["MimicJSON"]),
        .testTarget(
            name: "MimicCoreTests",
            dependencies: ["MimicCore", "MimicMemory", "MimicJSON", "MimicTestSupport", "CMallocCounter"],
            // eBPF C sources and objects, read by path from the tests (not resources).
            exclude: ["Fixtures"]
        ),
        // What the test targets share: packet builders, byte helpers, where external test data lives.
        .target(name: "MimicTestSupport", path: "Tests/MimicTestSupport"),
        .testTarget(
            name: "MimicLinuxTests",
            dependencies: ["MimicLinux", "MimicCore", "MimicMemory", "MimicJSON", "MimicPcap", "MimicTestSupport"],
            // End-to-end fixtures: eBPF C sources, clang-built objects and context files, read by path.
            exclude: ["Fixtures"]
        ),
        .testTarget(name: "MimicPcapTests", dependencies: ["MimicPcap"]),
        .testTarget(
            name: "MimicCLITests",
            dependencies: [
                "mimic-cli", "MimicCore", "MimicJSON", "MimicLinux", "MimicKernel", "MimicPcap", "MimicTestSupport",
            ],
            // C sources and objects read by path from the tests.
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "MimicPluginTests",
            dependencies: ["MimicCore", "MimicLinux", "MimicTestSupport"],
            // eBPF C sources and objects, read by path from the tests.
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "MimicTestingTests",
            dependencies: ["MimicTesting", "MimicJSON", "MimicLinux", "MimicTestSupport"]
        ),
        .testTarget(
            name: "MimicVerifierTests",
            dependencies: ["MimicVerifier", "MimicCore", "MimicKernel", "MimicLinux", "MimicTestSupport"],
            exclude: ["Fixtures"]
        ),
        .testTarget(name: "MimicPoolTests", dependencies: ["MimicPool", "MimicCore", "MimicMemory", "MimicLinux"]),
        // The README's library examples, compiled and run so they cannot rot.
        .testTarget(name: "LibraryExamples", dependencies: ["MimicCore", "MimicLinux"], path: "Examples/Library"),
        // Differential tests against the running kernel (skipped, with a reason, when it is not reachable).
        .testTarget(
            name: "MimicKernelTests",
            dependencies: ["MimicKernel", "MimicLinux", "MimicCore", "MimicJSON", "MimicVerifier"],
            // eBPF C sources and objects, read by path from the tests.
            exclude: ["Fixtures", "VerifierCorpus"]
        ),
        // The package's shape: declared dependencies match the imports, and MimicLinux does not
        // pull in the kernel oracle (reads `swift package describe`; depends on no module).
        .testTarget(name: "MimicModuleGraphTests"),
    ]
)
