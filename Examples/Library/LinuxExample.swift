import MimicCore
import MimicLinux

/// MimicLinux: load a clang-built object, preload a map, run the program on a packet, read
/// its verdict and the map it updated.
func linuxExample(objectPath: String) throws -> (verdict: XDPAction?, hits: UInt64) {
    let emulator = LinuxEmulator()                  // the kernel's helpers, maps and contexts
    let vm = VM(emulator: emulator)
    let loaded = try vm.load(object: ObjectFile(contentsOf: objectPath))
    let program = try loaded.program(named: "xdp_firewall")

    // Block 192.0.2.66: keys are the address as in the IP header, values a __u64 hit count.
    let blocked: [UInt8] = [192, 0, 2, 66]
    guard let blocklist = emulator.map(named: "blocklist") else { throw ExampleError.noMap }
    if let failure = blocklist.update(key: blocked, value: [UInt8](repeating: 0, count: 8), flags: .any, cpu: 0) {
        throw ExampleError.update(failure)
    }

    // An Ethernet frame carrying an IPv4 header from 192.0.2.66 to 10.0.0.2.
    let ethernet: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]
    let ipv4: [UInt8] = [0x45, 0, 0, 20, 0, 1, 0, 0, 64, 6, 0, 0] + blocked + [10, 0, 0, 2]
    let process = try vm.makeProcess(for: program, context: XDPContext(packet: ethernet + ipv4))
    let r0 = try process.run(instructionLimit: 1_000_000)

    let value = blocklist.value(forKey: blocked) ?? []
    let hits = value.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }  // little-endian __u64
    return (XDPAction(returnValue: r0), hits)       // (XDP_DROP, 1)
}

enum ExampleError: Error {
    case noMap
    case update(Errno)
}
