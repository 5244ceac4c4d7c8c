import Testing
import MimicCore
@testable import MimicLinux

/// `Fixtures/kfuncs.c`: bpf_obj_new objects in a list and a red-black tree with reference
/// counts, and CPU masks.
struct ObjectKfuncTests {
    static func longs(_ loaded: Fixture.Loaded, _ name: String) throws -> [Int64] {
        try TimerDynptrTests.longs(loaded, name)
    }

    @Test func listsAndTreesHoldObjectsAsTheKernelDoes() throws {
        let loaded = try Fixture.load("kfuncs")
        let process = try loaded.run("lists_and_trees")
        #expect(process.state == .exited(0))
        #expect(try Self.longs(loaded, "list_order") == [12, 5, 20, 0])
        #expect(try Self.longs(loaded, "tree_order") == [5, 12, 20, 0])
        #expect(Array(try Self.longs(loaded, "results")[0...3]) == [0, -22, 1, 1])
        // Every object was dropped as often as it was referenced: the heap reuses the blocks.
        let again = try loaded.run("lists_and_trees")
        #expect(again.state == .exited(0))
        #expect(try Self.longs(loaded, "list_order") == [12, 5, 20, 0])
    }

    /// `Fixtures/rbtree_shape.c`: the shape `bpf_rbtree_root` / `_left` / `_right` read is the
    /// red-black tree the kernel's `lib/rbtree.c` makes of the same operations (derived by hand in
    /// `RedBlackTreeTests`).
    @Test func rbtreeRootLeftAndRightGiveTheKernelsShape() throws {
        let loaded = try Fixture.load("rbtree_shape")
        let process = try loaded.run("shape")
        #expect(process.state == .exited(0))
        // 4B(2R(1B,3B),6R(5B,7B(-,8R))): root, L, R, LL, LR, RL, RR, RRR.
        #expect(try Self.longs(loaded, "after_adds") == [4, 2, 6, 1, 3, 5, 7, 8])
        // The root removed: its successor 5 takes its place, 7 rises: 5B(2R(1B,3B),7R(6B,8B)).
        #expect(try Self.longs(loaded, "after_remove") == [5, 2, 7, 1, 3, 6, 8, 0])
        #expect(try Self.longs(loaded, "results") == [4, 1, 1, 1_235_678, 1])
    }

    @Test func cpuMasksHaveTheEmulatorsCPUs() throws {
        let loaded = try Fixture.load("kfuncs", cpus: 2)
        try loaded.run("cpumasks")
        #expect(try Self.longs(loaded, "mask_results") == [2, 1, 1, 1, 0, 2])
    }

    @Test func theKfuncsAreRegisteredByName() {
        let names = Set(LinuxEmulator().kfuncNames)
        for name in [
            "bpf_obj_new_impl", "bpf_obj_drop_impl", "bpf_refcount_acquire_impl", "bpf_list_push_front_impl",
            "bpf_list_push_back_impl", "bpf_list_pop_front", "bpf_list_pop_back", "bpf_rbtree_add_impl",
            "bpf_rbtree_remove", "bpf_rbtree_first", "bpf_rbtree_root", "bpf_rbtree_left", "bpf_rbtree_right",
            "bpf_task_acquire", "bpf_task_release", "bpf_task_from_pid",
            "bpf_cgroup_acquire", "bpf_cgroup_release", "bpf_cpumask_create", "bpf_cpumask_release",
            "bpf_cpumask_set_cpu", "bpf_cpumask_test_cpu", "bpf_dynptr_slice", "bpf_dynptr_slice_rdwr",
            "bpf_dynptr_adjust",
        ] {
            #expect(names.contains(name), "\(name)")
        }
    }

    @Test func tasksAreFoundByPidOnceRegistered() throws {
        let emulator = LinuxEmulator()
        let vm = VM(emulator: emulator)
        var instructions = try Assembler.assemble("mov %r1, 42\ncall 0\nexit")
        instructions[1].source = 2 // BPF_PSEUDO_KFUNC_CALL of kfuncNames[0]
        let program = try vm.load(instructions, kfuncNames: ["bpf_task_from_pid"])
        #expect(try vm.run(program) == 0)
        emulator.registerTask(at: 0xFFFF_8880_0000_1000, pid: 42)
        #expect(try vm.run(program) == 0xFFFF_8880_0000_1000)
    }
}
