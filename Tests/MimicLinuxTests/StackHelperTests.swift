import Testing
import MimicCore
@testable import MimicLinux

/// `bpf_get_stack` and `bpf_get_stackid` over a process's `TaskStacks`.
struct StackHelperTests {
    static let frames: [UInt64] = [0xFFFF_FFFF_8100_0010, 0xFFFF_FFFF_8100_0020, 0xFFFF_FFFF_8100_0030]

    static func run(_ vm: VM, _ source: String, user: [UInt64] = []) throws -> (UInt64, MimicCore.Process) {
        let process = try vm.makeProcess(for: vm.load(Assembler.assemble(source)))
        LinuxProcessState.of(process)?.stacks = TaskStacks(kernel: frames, user: user)
        return (try process.run(), process)
    }

    @Test func stackIdsNameEachStackOnce() throws {
        let (vm, emulator) = makeLinuxVM()
        let map = try #require(try makeMap(emulator, vm, .stackTrace, key: 4, value: 32, max: 1024) as? StackTraceMap)
        func stackID(flags: Int) throws -> UInt64 {
            try Self.run(vm, "mov %r1, %r10\nlddw %r2, \(hex(map.handle))\nmov %r3, \(flags)\ncall 27\nexit").0
        }
        let id = try stackID(flags: 0)
        #expect(id < 1024)
        #expect(try stackID(flags: 0) == id)
        let bytes = try #require(map.value(forKey: littleEndianBytes(UInt32(id))))
        #expect((0..<4).map { get64(bytes, $0 * 8) } == Self.frames + [0])
        // Skipping a frame is another stack; skipping them all is -EFAULT.
        let skipped = try stackID(flags: 1)
        #expect(skipped != id && skipped < 1024)
        let other = try #require(map.value(forKey: littleEndianBytes(UInt32(skipped))))
        #expect((0..<4).map { get64(other, $0 * 8) } == [Self.frames[1], Self.frames[2], 0, 0])
        #expect(map.keys.count == 2)
        #expect(try stackID(flags: 3) == minus(.fault))
        #expect(try stackID(flags: 1 << 12) == minus(.invalid))
        #expect(
            map.update(key: [0, 0, 0, 0], value: [UInt8](repeating: 0, count: 32), flags: .any, cpu: 0) == .invalid)
    }

    @Test func getStackCopiesFramesAfterTheSkip() throws {
        let (vm, _) = makeLinuxVM()
        let source = """
            mov %r1, %r10
            mov %r2, %r10
            add %r2, -32
            mov %r3, SIZE
            mov %r4, FLAGS
            call 67
            exit
            """
        func get(size: Int, flags: Int, user: [UInt64] = []) throws -> (UInt64, [UInt64]) {
            let text = source.replacingOccurrences(of: "SIZE", with: "\(size)").replacingOccurrences(
                of: "FLAGS", with: "\(flags)")
            let (r0, process) = try Self.run(vm, text, user: user)
            let bytes = try process.memory.read(process.stackBase + UInt64(process.stackSize) - 32, count: 32)
            return (r0, (0..<4).map { get64(bytes, $0 * 8) })
        }
        #expect(try get(size: 32, flags: 1) == (16, [Self.frames[1], Self.frames[2], 0, 0]))
        #expect(try get(size: 8, flags: 0) == (8, [Self.frames[0], 0, 0, 0]))
        #expect(try get(size: 12, flags: 0).0 == minus(.invalid))
        #expect(try get(size: 32, flags: 4).0 == minus(.fault))
        #expect(try get(size: 32, flags: 1 << 8, user: [0x40_1000]) == (8, [0x40_1000, 0, 0, 0]))
    }
}
