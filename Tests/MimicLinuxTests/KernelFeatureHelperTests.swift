import Testing
import MimicCore
@testable import MimicLinux

/// Local storage, user ring buffers, sysctl, traced-function arguments, and the helpers of
/// kernel features Mimic has no model of.
struct KernelFeatureHelperTests {
    /// Runs `source` (R7 = a zeroed 256-byte stack buffer, R8 another), after `setUp` on the
    /// process's Linux state.
    static func run(
        _ vm: VM, _ source: String, setUp: (LinuxProcessState) -> Void = { _ in }
    ) throws -> (UInt64, MimicCore.Process) {
        var instructions = try Assembler.assemble(
            "mov %r7, %r10\nadd %r7, -256\nmov %r8, %r10\nadd %r8, -512\n" + source)
        // `lddw %r2, 0x7777` loads the callback: the program's last two instructions.
        for slot in instructions.indices where instructions[slot].opcode == 0x18 && instructions[slot].imm == 0x7777 {
            instructions[slot].source = 4
            instructions[slot].imm = Int32(instructions.count - 2 - (slot + 1))
        }
        let process = try vm.makeProcess(for: vm.load(instructions))
        if let state = LinuxProcessState.of(process) { setUp(state) }
        return (try process.run(), process)
    }

    @Test func taskStorageIsMadeOnRequestAndDeleted() throws {
        let (vm, emulator) = makeLinuxVM()
        let map = try #require(
            try makeMap(emulator, vm, .taskStorage, key: 4, value: 8, max: 0, flags: .noPrealloc) as? LocalStorageMap)
        let owner: UInt64 = 0xFFFF_8880_0000_2000
        func get(flags: Int, initial: Bool) throws -> UInt64 {
            try Self.run(
                vm,
                """
                mov %r1, 42
                stxdw [%r8], %r1
                lddw %r1, \(hex(map.handle))
                lddw %r2, \(hex(owner))
                \(initial ? "mov %r3, %r8" : "mov %r3, 0")
                mov %r4, \(flags)
                call 156
                exit
                """
            ).0
        }
        #expect(try get(flags: 0, initial: false) == 0)
        #expect(try get(flags: 2, initial: true) == 0) // unknown flag: NULL
        let address = try get(flags: 1, initial: true)
        #expect(address != 0)
        #expect(map.value(forKey: withUnsafeBytes(of: owner.littleEndian, Array.init)) == [42, 0, 0, 0, 0, 0, 0, 0])
        #expect(try get(flags: 0, initial: false) == address)
        let delete = "lddw %r1, \(hex(map.handle))\nlddw %r2, \(hex(owner))\ncall 157\nexit"
        #expect(try Self.run(vm, delete).0 == 0)
        #expect(try Self.run(vm, delete).0 == minus(.noEntry))
        #expect(try Self.run(vm, "lddw %r1, \(hex(map.handle))\nmov %r2, 0\ncall 157\nexit").0 == minus(.invalid))
        #expect(throws: MapError.self) {
            try makeMap(emulator, vm, .taskStorage, key: 4, value: 8, max: 0) // no BPF_F_NO_PREALLOC
        }
    }

    @Test func userRingBuffersDrainIntoTheCallback() throws {
        let (vm, emulator) = makeLinuxVM()
        let ring = try #require(
            try makeMap(emulator, vm, .userRingBuffer, key: 0, value: 0, max: 4096) as? UserRingBufferMap)
        #expect(ring.submit([1, 2, 3]) == nil)
        #expect(ring.submit([4, 5]) == nil)
        #expect(ring.submit([UInt8](repeating: 0, count: 8192)) == .noSpace)
        // The callback reads each sample's first byte with bpf_dynptr_read and adds it to the
        // counter at ctx; the program returns the samples drained | the sum << 8.
        let source = """
            mov %r1, 0
            stxdw [%r7], %r1
            lddw %r1, \(hex(ring.handle))
            lddw %r2, 0x7777
            mov %r3, %r7
            mov %r4, 0
            call 209
            ldxdw %r1, [%r7]
            lsh %r1, 8
            or %r0, %r1
            exit
            mov %r6, %r2
            mov %r3, %r1
            mov %r1, %r10
            add %r1, -8
            mov %r2, 1
            mov %r4, 0
            mov %r5, 0
            call 201
            ldxb %r1, [%r10-8]
            ldxdw %r2, [%r6]
            add %r2, %r1
            stxdw [%r6], %r2
            mov %r0, 0
            exit
            """
        // The callback is longer than two instructions: patch its start by hand.
        var instructions = try Assembler.assemble(
            "mov %r7, %r10\nadd %r7, -256\nmov %r8, %r10\nadd %r8, -512\n" + source)
        let lddw = try #require(instructions.firstIndex { $0.opcode == 0x18 && $0.imm == 0x7777 })
        let callbackStart =
            try #require(instructions.indices.first { $0 > lddw && instructions[$0].opcode == 0x95 }) + 1
        instructions[lddw].source = 4
        instructions[lddw].imm = Int32(callbackStart - (lddw + 1))
        let result = try vm.makeProcess(for: vm.load(instructions)).run()
        #expect(result & 0xFF == 2) // samples drained
        #expect(result >> 8 == 1 + 4) // first bytes summed
        #expect(ring.pendingSamples == 0)
    }

    @Test func sysctlHelpersFollowTheKernel() throws {
        let (vm, _) = makeLinuxVM()
        let sysctl = SysctlAccess(name: "net/ipv4/tcp_mem", currentValue: Array("1 2".utf8), newValue: Array("3".utf8))
        func call(_ id: Int, size: Int, flags: Int = 0) throws -> (UInt64, [UInt8], SysctlAccess?) {
            let (r0, process) = try Self.run(
                vm, "mov %r1, 0\nmov %r2, %r8\nmov %r3, \(size)\nmov %r4, \(flags)\ncall \(id)\nexit",
                setUp: { $0.sysctl = sysctl })
            let bytes = try process.memory.read(process.stackBase + UInt64(process.stackSize) - 512, count: 20)
            return (r0, bytes, LinuxProcessState.of(process)?.sysctl)
        }
        let full = try call(101, size: 20)
        #expect(full.0 == 16)
        #expect(Array(full.1.prefix(17)) == Array("net/ipv4/tcp_mem".utf8) + [0])
        #expect(try call(101, size: 20, flags: 1).0 == 7) // "tcp_mem"
        let cut = try call(101, size: 4)
        #expect(cut.0 == minus(.tooBig))
        #expect(Array(cut.1.prefix(4)) == Array("net".utf8) + [0])
        #expect(try call(102, size: 8).0 == 3)
        #expect(try call(102, size: 2).0 == minus(.tooBig))
        #expect(try call(103, size: 8).0 == 1)
        // set_new_value takes R8's buffer (zeros here): the new value becomes its 2 bytes.
        let set = try call(104, size: 2)
        #expect(set.0 == 0)
        #expect(set.2?.newValue == [0, 0])
        #expect(set.2?.newValueUpdated == true)
    }

    @Test func tracedFunctionArgumentsAndAbsentFeatures() throws {
        let (vm, _) = makeLinuxVM()
        let arguments = """
            mov %r1, 11
            stxdw [%r7], %r1
            mov %r1, 22
            stxdw [%r7+8], %r1
            mov %r1, -5
            stxdw [%r7+16], %r1
            mov %r1, %r7
            mov %r2, N
            mov %r3, %r8
            call 183
            jne %r0, 0, +1
            ldxdw %r0, [%r8]
            exit
            """
        func argument(_ n: Int, function: TracedFunction?) throws -> UInt64 {
            try Self.run(
                vm, arguments.replacingOccurrences(of: "N", with: "\(n)"), setUp: { $0.tracedFunction = function }
            ).0
        }
        let function = TracedFunction(argumentCount: 2, hasReturnValue: true)
        #expect(try argument(1, function: function) == 22)
        #expect(try argument(2, function: function) == minus(.invalid))
        #expect(try argument(0, function: nil) == minus(.invalid))
        let ret =
            "mov %r1, 11\nstxdw [%r7+16], %r1\nmov %r1, %r7\nmov %r2, %r8\ncall 184\njne %r0, 0, +1\nldxdw %r0, [%r8]\nexit"
        #expect(try Self.run(vm, ret, setUp: { $0.tracedFunction = function }).0 == 11)
        #expect(
            try Self.run(vm, ret, setUp: { $0.tracedFunction = TracedFunction(argumentCount: 2) }).0
                == minus(.notSupported))
        #expect(try Self.run(vm, "call 185\nexit", setUp: { $0.tracedFunction = function }).0 == 2)

        #expect(try Self.run(vm, "mov %r1, %r8\nmov %r2, 48\nmov %r3, 0\ncall 176\nexit").0 == minus(.noEntry))
        #expect(try Self.run(vm, "mov %r1, %r8\nmov %r2, 47\nmov %r3, 0\ncall 176\nexit").0 == minus(.invalid))
        #expect(try Self.run(vm, "mov %r1, 3\ncall 168\nexit").0 == minus(.badFileDescriptor))
        #expect(try Self.run(vm, "mov %r1, 0\nmov %r2, %r8\nmov %r3, 8\ncall 166\nexit").0 == minus(.notSupported))
        #expect(try Self.run(vm, "mov %r1, 1\nmov %r2, %r8\nmov %r3, 8\ncall 166\nexit").0 == minus(.invalid))
        #expect(try Self.run(vm, "mov %r1, 0\nmov %r2, %r8\nmov %r3, 8\ncall 161\nexit").0 == minus(.notSupported))
    }
}
