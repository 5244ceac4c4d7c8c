// swift-tools-version:6.2
import PackageDescription

/// A sample Mimic plugin written in Swift: a dynamic library exporting `mimic_plugin_entry`.
///
/// Build: `swift build -c release` (or ./build.sh), then load `.build/release/libCounterPlugin.so`.
let package = Package(
    name: "SwiftCounterPlugin",
    products: [
        .library(name: "CounterPlugin", type: .dynamic, targets: ["CounterPlugin"]),
    ],
    targets: [
        // The plugin ABI header (a link to Mimic's Sources/CMimicPlugin/include/mimic_plugin.h).
        .target(name: "CMimicPlugin"),
        .target(name: "CounterPlugin", dependencies: ["CMimicPlugin"]),
    ]
)
