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
        .library(name: "MimicCore", targets: ["MimicCore"]),
        .library(name: "MimicLinux", targets: ["MimicLinux"]),
        .library(name: "MimicPool", targets: ["MimicPool"]),
        // The plugin ABI header (`mimic_plugin.h`), for plugins written in Swift or C.
        .library(name: "CMimicPlugin", targets: ["CMimicPlugin"]),
        // The Linux emulator as a plugin library for `PluginLibrary.load` / `mimic ... --plugin`.
        .library(name: "MimicLinuxPlugin", type: .dynamic, targets: ["MimicLinuxPlugin"]),
        .executable(name: "mimic", targets: ["mimic-cli"]),
        .executable(name: "mimic-bench", targets: ["mimic-bench"]),
    ],
    targets: [
        // Atomic read-modify-write on raw VM memory (the stdlib has no atomics on raw pointers).
        .target(name: "CMimicAtomics"),
        // The C ABI of emulator plugins: one header, the single source of truth.
        .target(name: "CMimicPlugin"),
        // The bpf(2) system call (Swift cannot call the variadic syscall(2)), for KernelBPF.
        .target(name: "CMimicKernel"),
        .target(name: "MimicMemory"),
        .target(name: "MimicCore", dependencies: ["MimicMemory", "CMimicAtomics", "CMimicPlugin"]),
        .target(name: "MimicLinux", dependencies: ["MimicCore", "CMimicKernel"]),
        // Exports `mimic_plugin_entry` over MimicLinux's helpers (built as a dynamic library).
        .target(name: "MimicLinuxPlugin", dependencies: ["MimicLinux", "CMimicPlugin"]),
        .target(name: "MimicPool", dependencies: ["MimicCore"]),
        .executableTarget(name: "mimic-cli", dependencies: ["MimicCore", "MimicLinux"]),
        .executableTarget(
            name: "mimic-bench",
            dependencies: ["MimicCore", "MimicLinux", "MimicPool"],
            path: "Benchmarks/mimic-bench"
        ),
        .testTarget(name: "MimicMemoryTests", dependencies: ["MimicMemory"]),
        // Counts malloc calls in the test executable (the per-instruction allocation tests).
        .target(name: "CMallocCounter", path: "Tests/CMallocCounter"),
        .testTarget(
            name: "MimicCoreTests",
            dependencies: ["MimicCore", "CMallocCounter"],
            // eBPF C sources and objects, read by path from the tests (not resources).
            exclude: ["Fixtures"]
        ),
        // Packet builders and byte helpers the test targets share.
        .target(name: "MimicTestSupport", path: "Tests/MimicTestSupport"),
        .testTarget(
            name: "MimicLinuxTests",
            dependencies: ["MimicLinux", "MimicTestSupport"],
            // End-to-end fixtures: eBPF C sources and clang-built objects, read by path.
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "MimicCLITests",
            dependencies: ["mimic-cli", "MimicLinux"],
            // C sources and objects read by path from the tests.
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "MimicPluginTests",
            dependencies: ["MimicCore", "MimicLinux", "MimicTestSupport"],
            // eBPF C sources and objects, read by path from the tests.
            exclude: ["Fixtures"]
        ),
        .testTarget(name: "MimicPoolTests", dependencies: ["MimicPool", "MimicCore", "MimicLinux"]),
        // Differential tests against the running kernel (skipped, with a reason, when it is not reachable).
        .testTarget(name: "MimicKernelTests", dependencies: ["MimicLinux", "MimicCore"]),
    ]
)
