import Dispatch
import MimicCore
import Synchronization
import MimicLinux
import Testing
import MimicTestSupport

/// Programs calling the map helpers through `VM(emulator: LinuxEmulator())`.
@Suite("Map helpers")
struct MapHelperTests {
    /// `lookup(key 1)`: increments the u64 value through the pointer and returns it; creates the
    /// element with 1 (`BPF_NOEXIST`) and returns the update's result when it is missing.
    func counterProgram(_ handle: UInt64) -> String {
        """
        stw [%r10-4], 1
        lddw %r1, \(hex(handle))
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, miss
        ldxdw %r1, [%r0]
        add %r1, 1
        stxdw [%r0], %r1
        mov %r0, %r1
        exit
        miss:
        stdw [%r10-16], 1
        lddw %r1, \(hex(handle))
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -16
        mov %r4, 1
        call 2
        exit
        """
    }

    @Test func lookupUpdateThroughPointer() throws {
        let (vm, emulator) = makeLinuxVM()
        let map = try makeMap(emulator, vm, .hash, key: 4, value: 8, max: 4)
        let program = try load(vm, counterProgram(map.handle))
        #expect(try run(vm, program) == 0)
        #expect(try run(vm, program) == 2)
        #expect(try run(vm, program) == 3)
        #expect(map.value(forKey: le32(1)) == le64(3))
    }

    /// Updates key `key` with `flags`, or deletes it, and returns R0.
    func updateProgram(_ handle: UInt64, key: UInt32, flags: UInt64, delete: Bool = false) -> String {
        """
        stw [%r10-4], \(key)
        stdw [%r10-16], 77
        lddw %r1, \(hex(handle))
        mov %r2, %r10
        add %r2, -4
        mov %r3, %r10
        add %r3, -16
        lddw %r4, \(flags)
        call \(delete ? 3 : 2)
        exit
        """
    }

    @Test func errorsComeBackInR0() throws {
        let (vm, emulator) = makeLinuxVM()
        let hash = try makeMap(emulator, vm, .hash, key: 4, value: 8, max: 1, name: "hash")
        let array = try makeMap(emulator, vm, .array, key: 4, value: 8, max: 2, name: "array")
        func r0(_ map: any BPFMap, _ key: UInt32, _ flags: UInt64, delete: Bool = false) throws -> UInt64 {
            try run(vm, load(vm, updateProgram(map.handle, key: key, flags: flags, delete: delete)))
        }
        #expect(try r0(hash, 1, 2) == minus(.noEntry))
        #expect(try r0(hash, 1, 1) == 0)
        #expect(try r0(hash, 1, 1) == minus(.exists))
        #expect(try r0(hash, 2, 0) == minus(.tooBig))
        #expect(try r0(hash, 1, 8) == minus(.invalid))
        #expect(try r0(hash, 1, 4) == minus(.invalid))
        #expect(try r0(hash, 2, 0, delete: true) == minus(.noEntry))
        #expect(try r0(hash, 1, 0, delete: true) == 0)
        #expect(try r0(array, 1, 0) == 0)
        #expect(try r0(array, 2, 0) == minus(.tooBig))
        #expect(try r0(array, 1, 1) == minus(.exists))
        #expect(try r0(array, 1, 0, delete: true) == minus(.invalid))
        #expect(array.value(forKey: le32(1)) == le64(77))
    }

    @Test func badPointersAndHandlesStopWithAClearError() throws {
        let (vm, emulator) = makeLinuxVM()
        let map = try makeMap(emulator, vm, .hash, key: 4, value: 8, max: 1)
        let badKey = try load(vm, "lddw %r1, \(hex(map.handle))\nmov %r2, 16\ncall 1\nexit")
        do {
            try run(vm, badKey)
            Issue.record("ran with a NULL key")
        } catch let error as ExecutionError {
            guard error.code == .helperFailed, let id = error.kind.helperID, let name = error.kind.helperName,
                error.kind.failure?.code == .memory, let fault = error.kind.failure?.fault
            else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(id == 1 && name == "bpf_map_lookup_elem")
            #expect(fault.address == 16)
        }
        let notAMap = try load(vm, "mov %r1, 12345\nmov %r2, %r10\ncall 1\nexit")
        do {
            try run(vm, notAMap)
            Issue.record("ran with a bad map")
        } catch let error as ExecutionError {
            #expect(error.description.contains("bpf_map_lookup_elem"))
            #expect(error.description.contains("is not a map"))
        }
    }

    @Test func perCPUValuesFollowTheVCPU() throws {
        let (vm, emulator) = makeLinuxVM(cpus: 2)
        let map = try makeMap(emulator, vm, .perCPUArray, key: 4, value: 8, max: 1)
        let program = try load(
            vm,
            """
            stw [%r10-4], 0
            lddw %r1, \(hex(map.handle))
            mov %r2, %r10
            add %r2, -4
            call 1
            ldxdw %r1, [%r0]
            add %r1, 1
            stxdw [%r0], %r1
            mov %r0, %r1
            exit
            """)
        #expect(try run(vm, program, vCPU: 0) == 1)
        #expect(try run(vm, program, vCPU: 0) == 2)
        #expect(try run(vm, program, vCPU: 1) == 1)
        #expect(map.perCPUValues(forKey: le32(0)) == [le64(2), le64(1)])
    }

    @Test func pushPopPeek() throws {
        let (vm, emulator) = makeLinuxVM()
        let queue = try makeMap(emulator, vm, .queue, key: 0, value: 8, max: 2)
        func call(_ id: Int, value: UInt64 = 0, flags: UInt64 = 0) throws -> (r0: UInt64, buffer: UInt64) {
            let program = try load(
                vm,
                """
                stdw [%r10-8], \(value)
                lddw %r1, \(hex(queue.handle))
                mov %r2, %r10
                add %r2, -8
                mov %r3, \(flags)
                call \(id)
                ldxdw %r1, [%r10-8]
                lsh %r0, 32
                or %r0, %r1
                exit
                """)
            let result = try run(vm, program)
            return (result >> 32, result & 0xFFFF_FFFF)
        }
        #expect(try call(87, value: 5).r0 == 0)
        #expect(try call(87, value: 6).r0 == 0)
        #expect(try call(87, value: 7).r0 == minus(.tooBig) & 0xFFFF_FFFF)
        #expect(try call(87, value: 7, flags: 2).r0 == 0)
        #expect(try call(89, value: 99).buffer == 6)
        #expect(try call(88, value: 99).buffer == 6)
        #expect(try call(88, value: 99).buffer == 7)
        let empty = try call(88, value: 99)
        #expect(empty.r0 == minus(.noEntry) & 0xFFFF_FFFF)
        #expect(empty.buffer == 0, "the buffer is zeroed on ENOENT")
        #expect(try call(87, value: 1, flags: 1).r0 == minus(.invalid) & 0xFFFF_FFFF)
    }

    // MARK: Tail calls

    @Test func tailCallIntoAnotherProgram() throws {
        let (vm, emulator) = makeLinuxVM()
        let progs = try #require(try makeMap(emulator, vm, .progArray, key: 4, value: 4, max: 2) as? ProgramArrayMap)
        let target = try load(vm, "mov %r0, %r1\nadd %r0, 42\nexit", name: "target")
        progs.setProgram(target, at: 0)
        func caller(index: Int) throws -> Program {
            try load(
                vm, "mov %r1, 100\nlddw %r2, \(hex(progs.handle))\nmov %r3, \(index)\ncall 12\nexit", name: "caller")
        }
        #expect(try run(vm, caller(index: 0)) == 142, "the target runs with the caller's R1")
        #expect(try run(vm, caller(index: 1)) == minus(.noEntry), "empty slot: the caller continues")
        #expect(try run(vm, caller(index: 5)) == minus(.noEntry), "index past the end: the caller continues")
    }

    @Test func tailCallLimitIs33() throws {
        let (vm, emulator) = makeLinuxVM()
        let progs = try #require(try makeMap(emulator, vm, .progArray, key: 4, value: 4, max: 1) as? ProgramArrayMap)
        let counter = try makeMap(emulator, vm, .array, key: 4, value: 8, max: 1, name: "counter")
        let program = try load(
            vm,
            """
            stw [%r10-4], 0
            lddw %r1, \(hex(counter.handle))
            mov %r2, %r10
            add %r2, -4
            call 1
            ldxdw %r1, [%r0]
            add %r1, 1
            stxdw [%r0], %r1
            lddw %r2, \(hex(progs.handle))
            mov %r3, 0
            call 12
            exit
            """)
        progs.setProgram(program, at: 0)
        let process = try vm.makeProcess(for: program)
        #expect(try process.run() == minus(.noEntry))
        #expect(process.tailCallCount == 33)
        #expect(counter.value(forKey: le32(0)) == le64(34), "the first run plus 33 tail calls")
    }

    // MARK: Redirects

    @Test func redirectMapRecordsTheTarget() throws {
        let (vm, emulator) = makeLinuxVM()
        let dev = try makeMap(emulator, vm, .devMap, key: 4, value: 4, max: 4)
        _ = dev.update(key: le32(1), value: le32(5), flags: .any, cpu: 0)
        func redirect(key: UInt32, flags: UInt64) throws -> (UInt64, MapRedirect?) {
            let program = try load(
                vm, "lddw %r1, \(hex(dev.handle))\nmov %r2, \(key)\nlddw %r3, \(flags)\ncall 51\nexit")
            let process = try vm.makeProcess(for: program)
            let r0 = try process.run()
            guard case .map(let target)? = LinuxProcessState.of(process)?.redirect else { return (r0, nil) }
            return (r0, target)
        }
        let (r0, target) = try redirect(key: 1, flags: 0)
        #expect(r0 == 4)
        #expect(target?.ifindex == 5)
        #expect(target?.mapName == "m")
        let miss = try redirect(key: 2, flags: 2)
        #expect(miss.0 == 2, "a miss returns the flags' lower two bits")
        #expect(miss.1 == nil)
        #expect(try redirect(key: 1, flags: 0x100).0 == 0, "unknown flags: XDP_ABORTED")
        let broadcast = try redirect(key: 99, flags: 8 | 16)
        #expect(broadcast.0 == 4)
        #expect(broadcast.1?.broadcastKeys == [1])
        #expect(broadcast.1?.excludeIngress == true)
    }

    @Test func theLastRedirectOfARunWins() throws {
        let (vm, emulator) = makeLinuxVM()
        let dev = try makeMap(emulator, vm, .devMap, key: 4, value: 4, max: 4)
        _ = dev.update(key: le32(1), value: le32(5), flags: .any, cpu: 0)
        let viaMap = "lddw %r1, \(hex(dev.handle))\nmov %r2, 1\nmov %r3, 0\ncall 51\n"
        let missMap = "lddw %r1, \(hex(dev.handle))\nmov %r2, 3\nmov %r3, 2\ncall 51\n"
        let viaInterface = "mov %r1, 7\nmov %r2, 0\ncall 23\n"
        func redirect(_ calls: String...) throws -> Redirect? {
            let program = try load(vm, calls.joined() + "exit")
            let process = try vm.makeProcess(
                for: program, context: XDPContext(packet: [UInt8](repeating: 0, count: 14)))
            _ = try process.run()
            return LinuxProcessState.of(process)?.redirect
        }
        #expect(try redirect(viaInterface, viaMap)?.ifindex == 5)
        #expect(try redirect(viaMap, viaInterface) == .interface(ifindex: 7, flags: 0))
        #expect(try redirect(viaInterface, missMap) == nil, "a bpf_redirect_map miss clears the target")
    }

    // MARK: Ring buffer and perf

    @Test func ringBufferFromAProgram() throws {
        let (vm, emulator) = makeLinuxVM()
        let ring = try #require(try makeMap(emulator, vm, .ringBuffer, key: 0, value: 0, max: 4096) as? RingBufferMap)
        let h = hex(ring.handle)
        let program = try load(
            vm,
            """
            lddw %r1, \(h)
            mov %r2, 8
            mov %r3, 0
            call 131
            jeq %r0, 0, fail
            stdw [%r0], 0x1234
            mov %r1, %r0
            mov %r2, 0
            call 132
            lddw %r1, \(h)
            mov %r2, 4
            mov %r3, 0
            call 131
            jeq %r0, 0, fail
            mov %r1, %r0
            mov %r2, 0
            call 133
            stw [%r10-4], 0xabcd
            lddw %r1, \(h)
            mov %r2, %r10
            add %r2, -4
            mov %r3, 4
            mov %r4, 0
            call 130
            jne %r0, 0, fail
            lddw %r1, \(h)
            mov %r2, 0
            call 134
            exit
            fail:
            mov %r0, -1
            exit
            """)
        #expect(try run(vm, program) == 48, "BPF_RB_AVAIL_DATA: three 16-byte records")
        #expect(ring.drainRecords() == [le64(0x1234), le32(0xabcd)])
        let reserveWithFlags = try load(vm, "lddw %r1, \(h)\nmov %r2, 8\nmov %r3, 1\ncall 131\nexit")
        #expect(try run(vm, reserveWithFlags) == 0)
        let outputBadFlags = try load(
            vm, "lddw %r1, \(h)\nmov %r2, %r10\nadd %r2, -8\nmov %r3, 8\nmov %r4, 4\ncall 130\nexit")
        #expect(try run(vm, outputBadFlags) == minus(.invalid))
        let submitGarbage = try load(vm, "mov %r1, %r10\nadd %r1, -8\nmov %r2, 0\ncall 132\nexit")
        #expect(throws: ExecutionError.self) { try run(vm, submitGarbage) }
    }

    @Test func perfEventOutputFromAProgram() throws {
        let (vm, emulator) = makeLinuxVM(cpus: 2)
        let perf = try #require(
            try makeMap(emulator, vm, .perfEventArray, key: 4, value: 4, max: 2) as? PerfEventArrayMap)
        perf.attachReaders()
        func output(flags: UInt64, size: Int = 8) throws -> Program {
            try load(
                vm,
                """
                stdw [%r10-8], 0x77
                lddw %r2, \(hex(perf.handle))
                lddw %r3, \(flags)
                mov %r4, %r10
                add %r4, -8
                mov %r5, \(size)
                call 25
                exit
                """)
        }
        #expect(try run(vm, output(flags: 0xFFFF_FFFF), vCPU: 1) == 0)
        #expect(try run(vm, output(flags: 0), vCPU: 1) == minus(.notSupported))
        #expect(try run(vm, output(flags: 2), vCPU: 1) == minus(.tooBig))
        #expect(try run(vm, output(flags: 1 << 32 | 0xFFFF_FFFF), vCPU: 1) == minus(.invalid), "no packet to append")
        #expect(perf.drainRecords(cpu: 1) == [le64(0x77)])

        // With an xdp_md or __sk_buff context, BPF_F_CTXLEN_MASK appends packet bytes from
        // `data` (bpf_xdp_event_output, bpf_skb_event_output); issue 13.4: XDP gave -EINVAL.
        let packet: [UInt8] = [9, 8, 7] + [UInt8](repeating: 0, count: 11)
        for context in [XDPContext(packet: packet) as any Context, SKBContext(packet: packet)] {
            let withPacket = try vm.makeProcess(for: output(flags: 2 << 32 | 0xFFFF_FFFF, size: 1), context: context)
            #expect(try withPacket.run() == 0, "\(context)")
            #expect(perf.drainRecords(cpu: 0) == [[0x77, 9, 8]], "\(context)")
            let tooLong = try vm.makeProcess(for: output(flags: 15 << 32 | 0xFFFF_FFFF), context: context)
            #expect(try tooLong.run() == minus(.fault), "\(context)")
        }
        // A plain memory buffer is no packet context: the tracing helper refuses the length.
        let memory = try vm.makeProcess(
            for: output(flags: 2 << 32 | 0xFFFF_FFFF, size: 1), context: MemoryContext([9, 8, 7]))
        #expect(try memory.run() == minus(.invalid))
    }

    // MARK: for_each_map_elem

    /// Assembles `text`, turning `lddw %r2, 0xcb` into a `BPF_PSEUDO_FUNC` load of `callback:`.
    func loadWithCallback(_ vm: VM, main: String, callback: String) throws -> Program {
        var instructions = try Assembler.assemble(main + "\n" + callback)
        let callbackSlot = try Assembler.assemble(main).count
        let index = try #require(instructions.firstIndex { $0.opcode == 0x18 && $0.imm == 0xCB })
        instructions[index].source = 4
        instructions[index].imm = Int32(callbackSlot - index - 1)
        return try vm.load(instructions)
    }

    func forEachMain(_ handle: UInt64, flags: Int = 0) -> String {
        """
        stdw [%r10-8], 0
        lddw %r1, \(hex(handle))
        lddw %r2, 0xcb
        mov %r3, %r10
        add %r3, -8
        mov %r4, \(flags)
        call 164
        ldxdw %r1, [%r10-8]
        lsh %r0, 32
        or %r0, %r1
        exit
        """
    }

    /// Adds *value to *ctx; stops (returns 1) when *key == `stopKey`.
    func sumCallback(stopKey: Int) -> String {
        """
        ldxdw %r0, [%r3]
        ldxdw %r5, [%r4]
        add %r5, %r0
        stxdw [%r4], %r5
        mov %r0, 0
        ldxw %r1, [%r2]
        jne %r1, \(stopKey), +1
        mov %r0, 1
        exit
        """
    }

    @Test func forEachVisitsEveryElement() throws {
        let (vm, emulator) = makeLinuxVM()
        let hash = try makeMap(emulator, vm, .hash, key: 4, value: 8, max: 8)
        for i: UInt32 in 1...3 { _ = hash.update(key: le32(i), value: le64(UInt64(i)), flags: .any, cpu: 0) }
        let program = try loadWithCallback(vm, main: forEachMain(hash.handle), callback: sumCallback(stopKey: 99))
        let process = try vm.makeProcess(for: program)
        #expect(try process.run() == 3 << 32 | 6)
        #expect(process.registers[10] == process.stackBase + UInt64(process.stackSize), "R10 is restored")
    }

    @Test func steppingOverForEachRunsItsCallbacksInOneStep() throws {
        let (vm, emulator) = makeLinuxVM()
        let hash = try makeMap(emulator, vm, .hash, key: 4, value: 8, max: 8)
        for i: UInt32 in 1...3 { _ = hash.update(key: le32(i), value: le64(UInt64(i)), flags: .any, cpu: 0) }
        let program = try loadWithCallback(vm, main: forEachMain(hash.handle), callback: sumCallback(stopKey: 99))
        let process = try vm.makeProcess(for: program)
        var result = StepResult.running
        var steps = 0
        while result == .running, steps < 100 {
            result = try process.step()
            steps += 1
        }
        #expect(result == .exited(3 << 32 | 6))
        #expect(steps == 11, "the helper call is one step")
    }

    @Test func forEachStopsWhenTheCallbackReturnsOne() throws {
        let (vm, emulator) = makeLinuxVM()
        let array = try makeMap(emulator, vm, .array, key: 4, value: 8, max: 3)
        for i: UInt32 in 0..<3 { _ = array.update(key: le32(i), value: le64(UInt64(i + 1) * 10), flags: .any, cpu: 0) }
        let program = try loadWithCallback(vm, main: forEachMain(array.handle), callback: sumCallback(stopKey: 1))
        #expect(try run(vm, program) == 2 << 32 | 30, "elements 0 and 1, then stop")
        let badFlags = try loadWithCallback(
            vm, main: forEachMain(array.handle, flags: 1), callback: sumCallback(stopKey: 1))
        #expect(try run(vm, badFlags) == (minus(.invalid) << 32), "-EINVAL for flags")
    }

    @Test func forEachOnPerCPUMapSeesTheVCPUValue() throws {
        let (vm, emulator) = makeLinuxVM(cpus: 2)
        let map = try #require(try makeMap(emulator, vm, .perCPUArray, key: 4, value: 8, max: 1) as? ArrayMap)
        _ = map.update(key: le32(0), perCPUValues: [le64(5), le64(7)])
        let program = try loadWithCallback(vm, main: forEachMain(map.handle), callback: sumCallback(stopKey: 99))
        #expect(try run(vm, program, vCPU: 1) == 1 << 32 | 7)
    }

    @Test func forEachCallbackFaultNamesTheHelper() throws {
        let (vm, emulator) = makeLinuxVM()
        let hash = try makeMap(emulator, vm, .hash, key: 4, value: 8, max: 2)
        _ = hash.update(key: le32(1), value: le64(1), flags: .any, cpu: 0)
        let writesKey = "stw [%r2], 5\nmov %r0, 0\nexit"
        let program = try loadWithCallback(vm, main: forEachMain(hash.handle), callback: writesKey)
        do {
            try run(vm, program)
            Issue.record("wrote to the read-only key")
        } catch let error as ExecutionError {
            guard error.code == .helperFailed, error.kind.helperID == 164,
                let inner = error.kind.failure?.callbackError,
                inner.code == .memory, let fault = inner.kind.fault
            else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(fault.reason == .readOnly)
        }
    }

    @Test func budgetExhaustedInsideACallbackStopsTheRun() throws {
        let (vm, emulator) = makeLinuxVM()
        let array = try makeMap(emulator, vm, .array, key: 4, value: 8, max: 1000)
        let loop = "mov %r0, 0\nexit"
        let program = try loadWithCallback(vm, main: forEachMain(array.handle), callback: loop)
        #expect(throws: ExecutionError.self) { try vm.makeProcess(for: program).run(instructionLimit: 500) }
        do {
            try vm.makeProcess(for: program).run(instructionLimit: 500)
        } catch let error as ExecutionError {
            guard error.code == .helperFailed, error.kind.helperID == 164,
                let inner = error.kind.failure?.callbackError,
                inner.code == .budgetExhausted
            else {
                Issue.record("expected a budget error inside the callback, got \(error)")
                return
            }
        }
        let process = try vm.makeProcess(for: program)
        #expect(try process.run() == 1000 << 32)
        #expect(process.instructionsExecuted > 2000, "callback instructions are counted")
    }

    // MARK: Spin locks

    func lockedIncrement(_ handle: UInt64, doubleLock: Bool = false, unlock: Bool = true) -> String {
        """
        stw [%r10-4], 0
        lddw %r1, \(hex(handle))
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        mov %r6, %r0
        mov %r1, %r6
        call 93
        \(doubleLock ? "mov %r1, %r6\ncall 93" : "")
        ldxdw %r1, [%r6+8]
        add %r1, 1
        stxdw [%r6+8], %r1
        \(unlock ? "mov %r1, %r6\ncall 94" : "")
        out:
        mov %r0, 0
        exit
        """
    }

    @Test func spinLockSerialisesConcurrentPrograms() throws {
        let (vm, emulator) = makeLinuxVM(cpus: 4)
        let map = try makeMap(emulator, vm, .array, key: 4, value: 16, max: 1, spinLock: 0)
        let program = try load(vm, lockedIncrement(map.handle))
        DispatchQueue.concurrentPerform(iterations: 4) { cpu in
            for _ in 0..<300 { _ = try? run(vm, program, vCPU: cpu) }
        }
        #expect(map.value(forKey: le32(0)) == le32(0) + le32(0) + le64(1200))
    }

    @Test func spinLockMisuseStopsTheProgram() throws {
        let (vm, emulator) = makeLinuxVM()
        let map = try makeMap(emulator, vm, .array, key: 4, value: 16, max: 1, spinLock: 0)
        #expect(throws: ExecutionError.self) { try run(vm, load(vm, lockedIncrement(map.handle, doubleLock: true))) }
        let unlockOnly = try load(
            vm,
            """
            stw [%r10-4], 0
            lddw %r1, \(hex(map.handle))
            mov %r2, %r10
            add %r2, -4
            call 1
            mov %r1, %r0
            call 94
            exit
            """)
        #expect(throws: ExecutionError.self) { try run(vm, unlockOnly) }
        // A process that ended holding the lock released it: the next one gets it.
        try run(vm, load(vm, lockedIncrement(map.handle, unlock: false)))
        try run(vm, load(vm, lockedIncrement(map.handle)))
        let value = try #require(map.value(forKey: le32(0)))
        #expect(uint64(Array(value[8...])) >= 2)
    }

    // MARK: Concurrency

    /// Compiled lookups of a plain hash map (searched inline, `InlineHashProbe`) while another
    /// thread inserts and deletes other keys (the table grows, is rebuilt, fills with tombstones
    /// and reuses slots): every lookup of a key that stays finds its value, every lookup of a key
    /// never inserted finds nothing — whether the search ran lock-free or met the writer and
    /// took the helper.
    @Test func compiledHashLookupsAgreeWhileAnotherThreadChangesTheMap() throws {
        let vm = VM(
            emulator: LinuxEmulator(configuration: LinuxConfiguration(cpuCount: 2, randomSeed: 1)),
            configuration: VMConfiguration(engine: .jit))
        let emulator = try #require(vm.emulator as? LinuxEmulator)
        let map = try makeMap(emulator, vm, .hash, key: 4, value: 8, max: 4096)
        for key in UInt32(0)..<16 { #expect(map.update(key: le32(key), value: le64(UInt64(key)), flags: .any, cpu: 0) == nil) }
        let expected = (UInt32(0)..<16).map { map.lookupAddress(key: le32($0), cpu: 0) ?? 0 }
        let program = try load(
            vm,
            """
            stxw [%r10-4], %r6
            lddw %r1, \(hex(map.handle))
            mov %r2, %r10
            add %r2, -4
            call 1
            exit
            """)
        let mismatches = Mutex(0)
        let writing = Mutex(true)
        let lookups = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 2) { thread in
            if thread == 0 {
                for round in UInt32(0)..<6 {
                    for key in UInt32(1000)..<UInt32(3000) {
                        _ = map.update(key: le32(key &+ round), value: le64(1), flags: .any, cpu: 1)
                    }
                    for key in UInt32(1000)..<UInt32(3000) { _ = map.delete(key: le32(key &+ round)) }
                }
                writing.withLock { $0 = false }
            } else {
                guard let process = try? vm.makeProcess(for: program) else {
                    mismatches.withLock { $0 += 1 }
                    return
                }
                var i: UInt32 = 0
                // At least 20,000 lookups, and as many as it takes to outlast the writer.
                while i < 20_000 || writing.withLock({ $0 }) {
                    defer { i &+= 1 }
                    lookups.withLock { $0 += 1 }
                    let key = i % 32 // 0..<16 stay, 16..<32 are never inserted
                    do {
                        try process.reset()
                        process.registers[6] = UInt64(key)
                        let r0 = try process.run()
                        if r0 != (key < 16 ? expected[Int(key)] : 0) { mismatches.withLock { $0 += 1 } }
                    } catch {
                        mismatches.withLock { $0 += 1 }
                    }
                }
            }
        }
        #expect(mismatches.withLock { $0 } == 0)
        #expect(lookups.withLock { $0 } >= 20_000)
        #expect(program.machineCode != nil)
    }

    @Test func concurrentUpdatesDoNotCorruptAHashMap() throws {
        let (vm, emulator) = makeLinuxVM(cpus: 8)
        let map = try makeMap(emulator, vm, .hash, key: 4, value: 8, max: 800)
        let counters = try makeMap(emulator, vm, .perCPUArray, key: 4, value: 8, max: 1, name: "counters")
        let increment = try load(
            vm,
            """
            stw [%r10-4], 0
            lddw %r1, \(hex(counters.handle))
            mov %r2, %r10
            add %r2, -4
            call 1
            ldxdw %r1, [%r0]
            add %r1, 1
            stxdw [%r0], %r1
            mov %r0, 0
            exit
            """)
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for i in 0..<100 {
                let key = UInt32(thread * 100 + i)
                _ = map.update(key: le32(key), value: le64(UInt64(key) * 3), flags: .noExist, cpu: thread)
                _ = try? run(vm, increment, vCPU: thread)
                if i % 2 == 0 { _ = map.delete(key: le32(key)) }
            }
        }
        let keys = map.keys
        #expect(keys.count == 400)
        for key in keys { #expect(map.value(forKey: key) == le64(UInt64(littleEndian: uint64(key)) * 3)) }
        #expect(counters.perCPUValues(forKey: le32(0)) == Array(repeating: le64(100), count: 8))
    }
}
