import MimicCore
import MimicLinux
import Testing

/// A VM with a Linux emulator of `cpus` CPUs.
func makeLinuxVM(cpus: Int = 2) -> (vm: VM, emulator: LinuxEmulator) {
    let emulator = LinuxEmulator(configuration: LinuxConfiguration(cpuCount: cpus, randomSeed: 1))
    return (VM(emulator: emulator), emulator)
}

/// Creates a map, failing the test on error.
func makeMap(
    _ emulator: LinuxEmulator, _ vm: VM, _ type: MapType, key: Int, value: Int, max: Int,
    flags: MapFlags = [], name: String = "m", inner: MapAttributes? = nil, spinLock: Int? = nil
) throws -> any BPFMap {
    try emulator.createMap(
        MapAttributes(
            name: name, type: type, keySize: key, valueSize: value, maxEntries: max,
            flags: flags.rawValue, innerMap: inner, spinLockOffset: spinLock), in: vm)
}

/// Assembles and loads `text`.
func load(_ vm: VM, _ text: String, name: String = "program") throws -> Program {
    try vm.load(Assembler.assemble(text), name: name)
}

/// Runs `program` on `vCPU` and returns R0.
@discardableResult
func run(_ vm: VM, _ program: Program, vCPU: Int = 0) throws -> UInt64 {
    try vm.makeProcess(for: program, vCPU: vCPU).run()
}

/// Hex text of a map handle for `lddw`.
func hex(_ handle: UInt64) -> String { "0x" + String(handle, radix: 16) }

/// `-errno` as R0.
func minus(_ errno: Errno) -> UInt64 { errno.helperReturnValue }
