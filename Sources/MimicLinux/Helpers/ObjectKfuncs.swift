import MimicCore
import MimicMemory
import Synchronization

/// What the object kfuncs keep: the heap of program-allocated objects (`bpf_obj_new`,
/// `bpf_cpumask_create`), the lists and red-black trees of nodes, and the tasks and cgroups
/// `bpf_task_from_pid` / `bpf_cgroup_from_id` find.
final class KfuncState: @unchecked Sendable {
    /// Bytes of the shared region objects are allocated from (made on first use, its pages taken
    /// as written).
    static let heapSize = 4 << 20

    private let lock = Mutex(())
    // Touched only under `lock`.
    private var heap: RegionStorage?
    private var heapBase: UInt64 = 0
    private var heapUsed = 0
    private var freeBlocks: [Int: [Int]] = [:]
    /// Live objects: address → (size, reference count).
    private var objects: [UInt64: (size: Int, references: Int)] = [:]
    /// Lists by the address of their `bpf_list_head`: node addresses in order; red-black trees
    /// by the address of their `bpf_rb_root`; and the head or root each node is in.
    private var lists: [UInt64: [UInt64]] = [:]
    private var trees: [UInt64: RedBlackTree] = [:]
    private var owners: [UInt64: UInt64] = [:]
    private var tasks: [UInt32: UInt64] = [:]
    private var cgroups: [UInt64: UInt64] = [:]

    /// Allocates `size` zeroed bytes with one reference; nil when the heap is full.
    func allocate(_ size: Int, for process: MimicCore.Process) throws(HelperFailure) -> UInt64? {
        let (heap, base) = try heapRegion(process)
        let block = roundUp8(max(size, 1))
        return lock.withLock { _ in
            let offset: Int
            if let reused = freeBlocks[block]?.popLast() {
                offset = reused
            } else {
                guard heapUsed + block <= Self.heapSize else { return nil }
                offset = heapUsed
                heapUsed += block
            }
            (heap.pointer + offset).initializeMemory(as: UInt8.self, repeating: 0, count: block)
            let address = base + UInt64(offset)
            objects[address] = (block, 1)
            return address
        }
    }

    /// The heap region, made on first use, mapped into `process` if it is not yet.
    private func heapRegion(_ process: MimicCore.Process) throws(HelperFailure) -> (RegionStorage, UInt64) {
        let (storage, base): (RegionStorage, UInt64) = try lock.withLock { _ throws(HelperFailure) in
            if let heap { return (heap, heapBase) }
            let storage = RegionStorage(count: Self.heapSize)
            do {
                heapBase = try process.vm.mapShared(storage, name: "kernel heap")
            } catch {
                throw .message("cannot map the kernel heap: \(error)")
            }
            heap = storage
            return (storage, heapBase)
        }
        if process.memory.storage(containing: base) == nil {
            do {
                try process.memory.map(storage, name: "kernel heap", at: base)
            } catch {
                throw .message("cannot map the kernel heap into the process: \(error)")
            }
        }
        return (storage, base)
    }

    /// Adds a reference to the object at `address`; false if there is no such live object.
    func retain(_ address: UInt64) -> Bool {
        lock.withLock { _ in
            guard let object = objects[address] else { return false }
            objects[address] = (object.size, object.references + 1)
            return true
        }
    }

    /// Drops a reference to the object at `address`, freeing it at the last; false if there is no
    /// such live object.
    @discardableResult
    func release(_ address: UInt64) -> Bool {
        lock.withLock { _ in
            guard let object = objects[address] else { return false }
            guard object.references <= 1 else {
                objects[address] = (object.size, object.references - 1)
                return true
            }
            objects[address] = nil
            freeBlocks[object.size, default: []].append(Int(address - heapBase))
            return true
        }
    }

    /// The live object holding `address` (a node inside it).
    func object(containing address: UInt64) -> UInt64? {
        lock.withLock { _ in
            objects.first { address >= $0.key && address - $0.key < UInt64($0.value.size) }?.key
        }
    }

    /// The nodes of the list at `head`.
    func nodes(_ head: UInt64) -> [UInt64] { lock.withLock { _ in lists[head] ?? [] } }

    /// Inserts `node` at `index` of `head`'s nodes; false if it is already in a list or tree.
    func insert(_ node: UInt64, into head: UInt64, at index: (([UInt64]) -> Int)) -> Bool {
        lock.withLock { _ in
            guard owners[node] == nil else { return false }
            var list = lists[head] ?? []
            list.insert(node, at: max(0, min(index(list), list.count)))
            lists[head] = list
            owners[node] = head
            return true
        }
    }

    /// Removes `node` (by default the first or last) from the list at `head`; nil when it is not
    /// there.
    func remove(_ node: UInt64? = nil, last: Bool = false, from head: UInt64) -> UInt64? {
        lock.withLock { _ in
            guard var list = lists[head], !list.isEmpty else { return nil }
            let index: Int
            if let node {
                guard owners[node] == head, let found = list.firstIndex(of: node) else { return nil }
                index = found
            } else {
                index = last ? list.count - 1 : 0
            }
            let removed = list.remove(at: index)
            lists[head] = list
            owners[removed] = nil
            return removed
        }
    }

    /// Adds `node` to the tree at `root` as `__bpf_rbtree_add`: false, changing nothing, when it
    /// is already in a list or tree; else it walks down from the root with `less(node, parent)`
    /// (a program callback, called outside the lock) and links the node there.
    func add(_ node: UInt64, toTree root: UInt64, less: (UInt64, UInt64) throws(HelperFailure) -> Bool)
        throws(HelperFailure) -> Bool
    {
        guard lock.withLock({ _ in owners[node] == nil }) else { return false }
        let point: (parent: UInt64, left: Bool)
        do {
            // A copy to walk outside the lock, gone before the tree is changed (so no copy on write).
            let snapshot = lock.withLock { _ in trees[root] ?? RedBlackTree() }
            point = try snapshot.insertionPoint(for: node, less: less)
        }
        return lock.withLock { _ in
            guard owners[node] == nil,
                trees[root, default: RedBlackTree()].link(node, under: point.parent, left: point.left)
            else { return false }
            owners[node] = root
            return true
        }
    }

    /// Removes `node` from the tree at `root` (`rb_erase_cached`); nil when it is not in that tree.
    func remove(_ node: UInt64, fromTree root: UInt64) -> UInt64? {
        lock.withLock { _ in
            guard owners[node] == root, trees[root]?.remove(node) == true else { return nil }
            owners[node] = nil
            if trees[root]?.isEmpty == true { trees[root] = nil }
            return node
        }
    }

    /// The tree at `root` (empty when there is none).
    func tree(_ root: UInt64) -> RedBlackTree { lock.withLock { _ in trees[root] ?? RedBlackTree() } }

    /// `bpf_rbtree_left` / `_right`: the child of `node` on that side, 0 when there is none or
    /// `node` is not in the tree at `root`.
    func child(of node: UInt64, left: Bool, inTree root: UInt64) -> UInt64 {
        lock.withLock { _ in
            guard owners[node] == root, let tree = trees[root] else { return 0 }
            return left ? tree.left(of: node) : tree.right(of: node)
        }
    }

    /// Makes `bpf_task_from_pid(pid)` find the task at `address`.
    func register(task address: UInt64, pid: UInt32) { lock.withLock { _ in tasks[pid] = address } }
    func task(pid: UInt32) -> UInt64? { lock.withLock { _ in tasks[pid] } }
    func register(cgroup address: UInt64, id: UInt64) { lock.withLock { _ in cgroups[id] = address } }
    func cgroup(id: UInt64) -> UInt64? { lock.withLock { _ in cgroups[id] } }
}

extension LinuxEmulator {
    /// Makes `bpf_task_from_pid(pid)` return `address` (a `task_struct` in emulated kernel
    /// memory), as the kernel finds a task by pid.
    public func registerTask(at address: UInt64, pid: UInt32) { kfuncState.register(task: address, pid: pid) }

    /// Makes `bpf_cgroup_from_id(id)` return `address` (a `struct cgroup`).
    public func registerCgroup(at address: UInt64, id: UInt64) { kfuncState.register(cgroup: address, id: id) }
}

/// The object kfuncs: allocated objects, their lists and trees, reference counting, tasks,
/// cgroups and CPU masks (`kernel/bpf/helpers.c`, `kernel/bpf/cpumask.c`).
///
/// - `bpf_obj_new_impl(type_id, meta)`: a zeroed object the size of the program's local BTF type
///   `type_id` (the kernel's verifier gives the size; Mimic reads it from `Program.objectBTF`),
///   with one reference; NULL when the heap is full. `bpf_obj_drop_impl` drops a reference,
///   `bpf_refcount_acquire_impl` adds one (NULL for an object already freed).
///   `bpf_percpu_obj_new_impl` / `bpf_percpu_obj_drop_impl`: the same, one copy per CPU, reached
///   through `bpf_per_cpu_ptr` / `bpf_this_cpu_ptr`.
/// - `bpf_list_push_front_impl` / `_back_impl(head, node, meta, off)`: 0, or `-EINVAL` for a node
///   already in a list or tree (its object is dropped, as in the kernel); `bpf_list_pop_front` /
///   `_back`, `bpf_list_front` / `_back`: the node, or NULL for an empty list.
/// - `bpf_rbtree_add_impl(root, node, less, meta, off)`: inserts in the order `less(a, b)` (a
///   program callback) gives, after equal nodes, as `rb_add_cached`; `bpf_rbtree_remove` returns
///   the node, or NULL when it is not in that tree; `bpf_rbtree_first` the leftmost node;
///   `bpf_rbtree_root`, `bpf_rbtree_left(root, node)`, `bpf_rbtree_right(root, node)` the tree's
///   shape (NULL for a node not in that tree): a `RedBlackTree` rebalanced as `lib/rbtree.c`.
///   Lists and trees are kept beside the `bpf_list_head` / `bpf_rb_root`, whose bytes are not used.
/// - `bpf_task_acquire` / `bpf_task_release`, `bpf_cgroup_acquire` / `bpf_cgroup_release`: the
///   pointer / nothing (emulated tasks and cgroups live as long as the emulator);
///   `bpf_task_from_pid`, `bpf_task_from_vpid`, `bpf_cgroup_from_id`: what
///   `LinuxEmulator.registerTask(at:pid:)` / `registerCgroup(at:id:)` registered, NULL otherwise.
/// - `bpf_cpumask_*`: a `struct bpf_cpumask` is `nr_cpu_ids` (`LinuxConfiguration.cpuCount`) bits
///   in 64-bit words on the heap; CPUs past `nr_cpu_ids` are ignored (`set`/`clear`) or false
///   (`test`), and `first`/`any` return `nr_cpu_ids` when there is none, as `cpumask_first` does.
enum ObjectKfuncs {
    static func all(for emulator: LinuxEmulator) -> [Helper] {
        let state = emulator.kfuncState
        return objects(state) + perCPUObjects(state, emulator.kernelObjects, cpuCount: emulator.cpuCount)
            + collections(state) + tasks(state) + CPUMasks.all(state, cpuCount: emulator.cpuCount)
    }

    static func objects(_ state: KfuncState) -> [Helper] {
        [
            LinuxKfuncs.make("bpf_obj_new_impl") { call throws(HelperFailure) in
                let typeID = UInt32(truncatingIfNeeded: call.arg(1))
                guard let btf = call.process.program.objectBTF, let size = btf.size(of: typeID) else {
                    throw .message("type id \(typeID) is not a sized type of the program's BTF")
                }
                return try state.allocate(size, for: call.process) ?? 0
            },
            LinuxKfuncs.make("bpf_obj_drop_impl") { call throws(HelperFailure) in
                guard state.release(call.arg(1)) else {
                    throw .message("0x\(String(call.arg(1), radix: 16)) is not an object bpf_obj_new allocated")
                }
                return 0
            },
            LinuxKfuncs.make("bpf_refcount_acquire_impl") { call throws(HelperFailure) in
                state.retain(call.arg(1)) ? call.arg(1) : 0
            },
        ]
    }

    /// `bpf_percpu_obj_new_impl(type_id, meta)`: one zeroed copy of the program's local type per
    /// possible CPU, on the heap back to back; the pointer is a per-CPU one, which the program
    /// reaches through `bpf_per_cpu_ptr` / `bpf_this_cpu_ptr` (NULL when the heap is full).
    /// `bpf_percpu_obj_drop_impl(p, meta)` frees it.
    static func perCPUObjects(_ state: KfuncState, _ objects: KernelObjects, cpuCount: Int) -> [Helper] {
        [
            LinuxKfuncs.make("bpf_percpu_obj_new_impl") { call throws(HelperFailure) in
                let typeID = UInt32(truncatingIfNeeded: call.arg(1))
                guard let btf = call.process.program.objectBTF, let size = btf.size(of: typeID) else {
                    throw .message("type id \(typeID) is not a sized type of the program's BTF")
                }
                let stride = roundUp8(max(size, 1))
                guard let address = try state.allocate(stride * cpuCount, for: call.process) else { return 0 }
                objects.registerPerCPU(at: address, size: stride)
                return address
            },
            LinuxKfuncs.make("bpf_percpu_obj_drop_impl") { call throws(HelperFailure) in
                guard objects.perCPUObject(at: call.arg(1)) != nil, state.release(call.arg(1)) else {
                    throw .message("0x\(String(call.arg(1), radix: 16)) is not an object bpf_percpu_obj_new allocated")
                }
                objects.unregisterPerCPU(at: call.arg(1))
                return 0
            },
        ]
    }

    static func collections(_ state: KfuncState) -> [Helper] {
        func push(_ name: String, front: Bool) -> Helper {
            LinuxKfuncs.make(name) { call throws(HelperFailure) in
                let node = call.arg(2)
                guard state.insert(node, into: call.arg(1), at: { front ? 0 : $0.count }) else {
                    if let object = state.object(containing: node) { state.release(object) }
                    return Errno.invalid.r0
                }
                return 0
            }
        }
        return [
            push("bpf_list_push_front_impl", front: true),
            push("bpf_list_push_back_impl", front: false),
            LinuxKfuncs.make("bpf_list_pop_front") { call throws(HelperFailure) in
                state.remove(from: call.arg(1)) ?? 0
            },
            LinuxKfuncs.make("bpf_list_pop_back") { call throws(HelperFailure) in
                state.remove(last: true, from: call.arg(1)) ?? 0
            },
            LinuxKfuncs.make("bpf_list_front") { call throws(HelperFailure) in state.nodes(call.arg(1)).first ?? 0 },
            LinuxKfuncs.make("bpf_list_back") { call throws(HelperFailure) in state.nodes(call.arg(1)).last ?? 0 },
            // int bpf_rbtree_add_impl(root, node, less, meta, off)
            LinuxKfuncs.make("bpf_rbtree_add_impl") { call throws(HelperFailure) in
                let node = call.arg(2)
                guard let slot = ProgramCallbacks.functionSlot(call.process, fromAddress: call.arg(3)) else {
                    throw .message("r3 (0x\(String(call.arg(3), radix: 16))) is not a program function")
                }
                let added = try state.add(node, toTree: call.arg(1)) { a, b throws(HelperFailure) in
                    do throws(ExecutionError) {
                        return try ProgramCallbacks.call(call.process, at: slot, arguments: [a, b]) & 0xFF != 0
                    } catch {
                        throw .callback(error)
                    }
                }
                guard added else {
                    if let object = state.object(containing: node) { state.release(object) }
                    return Errno.invalid.r0
                }
                return 0
            },
            LinuxKfuncs.make("bpf_rbtree_remove") { call throws(HelperFailure) in
                state.remove(call.arg(2), fromTree: call.arg(1)) ?? 0
            },
            LinuxKfuncs.make("bpf_rbtree_first") { call throws(HelperFailure) in state.tree(call.arg(1)).first },
            LinuxKfuncs.make("bpf_rbtree_root") { call throws(HelperFailure) in state.tree(call.arg(1)).root },
            LinuxKfuncs.make("bpf_rbtree_left") { call throws(HelperFailure) in
                state.child(of: call.arg(2), left: true, inTree: call.arg(1))
            },
            LinuxKfuncs.make("bpf_rbtree_right") { call throws(HelperFailure) in
                state.child(of: call.arg(2), left: false, inTree: call.arg(1))
            },
        ]
    }

    static func tasks(_ state: KfuncState) -> [Helper] {
        [
            LinuxKfuncs.make("bpf_task_acquire") { call throws(HelperFailure) in call.arg(1) },
            LinuxKfuncs.make("bpf_task_release") { _ throws(HelperFailure) in 0 },
            LinuxKfuncs.make("bpf_task_from_pid") { call throws(HelperFailure) in state.task(pid: call.arg32(1)) ?? 0 },
            LinuxKfuncs.make("bpf_task_from_vpid") { call throws(HelperFailure) in state.task(pid: call.arg32(1)) ?? 0
            },
            LinuxKfuncs.make("bpf_cgroup_acquire") { call throws(HelperFailure) in call.arg(1) },
            LinuxKfuncs.make("bpf_cgroup_release") { _ throws(HelperFailure) in 0 },
            LinuxKfuncs.make("bpf_cgroup_from_id") { call throws(HelperFailure) in state.cgroup(id: call.arg(1)) ?? 0 },
        ]
    }
}

/// `kernel/bpf/cpumask.c` over masks of `cpuCount` bits (see `ObjectKfuncs`).
enum CPUMasks {
    /// Masks of `cpuCount` bits in 64-bit words.
    struct Shape: Sendable {
        let cpuCount: Int
        var words: Int { (cpuCount + 63) / 64 }
        var bytes: Int { words * 8 }
        var ids: UInt64 { UInt64(cpuCount) }
        /// Every CPU's bit set.
        var full: [UInt64] {
            (0..<words).map { index in
                index == words - 1 && cpuCount % 64 != 0 ? (UInt64(1) << UInt64(cpuCount % 64)) - 1 : UInt64.max
            }
        }

        func read(_ call: HelperCall, _ n: Int) throws(HelperFailure) -> [UInt64] {
            let raw = try call.read(call.arg(n), count: bytes)
            // Bits past nr_cpu_ids do not count.
            return zip((0..<words).map { get64(raw, $0 * 8) }, full).map { $0 & $1 }
        }

        func write(_ call: HelperCall, _ n: Int, _ mask: [UInt64]) throws(HelperFailure) {
            try call.write(mask.flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) }, at: call.arg(n))
        }

        /// The first set bit, or `nr_cpu_ids`.
        func first(_ mask: [UInt64]) -> UInt64 {
            for (index, word) in mask.enumerated() where word != 0 {
                return UInt64(index * 64 + word.trailingZeroBitCount)
            }
            return ids
        }
    }

    static func all(_ state: KfuncState, cpuCount: Int) -> [Helper] {
        let shape = Shape(cpuCount: cpuCount)
        let bytes = shape.bytes
        let words = shape.words
        let full = shape.full
        /// A kfunc on one CPU (argument 1) of the mask in argument 2; invalid CPUs do nothing.
        func onCPU(_ name: String, _ body: @escaping @Sendable (inout [UInt64], Int, UInt64) -> UInt64) -> Helper {
            LinuxKfuncs.make(name) { call throws(HelperFailure) in
                let cpu = UInt64(call.arg32(1))
                guard cpu < shape.ids else { return 0 }
                var mask = try shape.read(call, 2)
                let before = mask
                let result = body(&mask, Int(cpu / 64), 1 << (cpu % 64))
                if mask != before { try shape.write(call, 2, mask) }
                return result
            }
        }
        func binary(_ name: String, _ combine: @escaping @Sendable (UInt64, UInt64) -> UInt64, reportsNonEmpty: Bool)
            -> Helper
        {
            LinuxKfuncs.make(name) { call throws(HelperFailure) in
                let result = zip(try shape.read(call, 2), try shape.read(call, 3)).map(combine)
                try shape.write(call, 1, result)
                return reportsNonEmpty ? (result.contains { $0 != 0 } ? 1 : 0) : 0
            }
        }
        func predicate(_ name: String, _ test: @escaping @Sendable ([UInt64], [UInt64]) -> Bool) -> Helper {
            LinuxKfuncs.make(name) { call throws(HelperFailure) in
                test(try shape.read(call, 1), try shape.read(call, 2)) ? 1 : 0
            }
        }
        return [
            LinuxKfuncs.make("bpf_cpumask_create") { call throws(HelperFailure) in
                try state.allocate(bytes, for: call.process) ?? 0
            },
            LinuxKfuncs.make("bpf_cpumask_acquire") { call throws(HelperFailure) in
                state.retain(call.arg(1)) ? call.arg(1) : 0
            },
            LinuxKfuncs.make("bpf_cpumask_release") { call throws(HelperFailure) in
                guard state.release(call.arg(1)) else {
                    throw .message("0x\(String(call.arg(1), radix: 16)) is not a bpf_cpumask")
                }
                return 0
            },
            LinuxKfuncs.make("bpf_cpumask_first") { call throws(HelperFailure) in shape.first(try shape.read(call, 1))
            },
            LinuxKfuncs.make("bpf_cpumask_first_zero") { call throws(HelperFailure) in
                let inverted = zip(try shape.read(call, 1), full).map { ~$0 & $1 }
                return shape.first(inverted)
            },
            LinuxKfuncs.make("bpf_cpumask_first_and") { call throws(HelperFailure) in
                shape.first(zip(try shape.read(call, 1), try shape.read(call, 2)).map { $0 & $1 })
            },
            onCPU("bpf_cpumask_set_cpu") { mask, word, value in
                mask[word] |= value
                return 0
            },
            onCPU("bpf_cpumask_clear_cpu") { mask, word, value in
                mask[word] &= ~value
                return 0
            },
            onCPU("bpf_cpumask_test_cpu") { mask, word, value in mask[word] & value != 0 ? 1 : 0 },
            onCPU("bpf_cpumask_test_and_set_cpu") { mask, word, value in
                defer { mask[word] |= value }
                return mask[word] & value != 0 ? 1 : 0
            },
            onCPU("bpf_cpumask_test_and_clear_cpu") { mask, word, value in
                defer { mask[word] &= ~value }
                return mask[word] & value != 0 ? 1 : 0
            },
            LinuxKfuncs.make("bpf_cpumask_setall") { call throws(HelperFailure) in
                try shape.write(call, 1, full)
                return 0
            },
            LinuxKfuncs.make("bpf_cpumask_clear") { call throws(HelperFailure) in
                try shape.write(call, 1, [UInt64](repeating: 0, count: words))
                return 0
            },
            binary("bpf_cpumask_and", { $0 & $1 }, reportsNonEmpty: true),
            binary("bpf_cpumask_or", { $0 | $1 }, reportsNonEmpty: false),
            binary("bpf_cpumask_xor", { $0 ^ $1 }, reportsNonEmpty: false),
            predicate("bpf_cpumask_equal") { $0 == $1 },
            predicate("bpf_cpumask_intersects") { zip($0, $1).contains { $0 & $1 != 0 } },
            predicate("bpf_cpumask_subset") { zip($0, $1).allSatisfy { $0 & ~$1 == 0 } },
            LinuxKfuncs.make("bpf_cpumask_empty") { call throws(HelperFailure) in
                try shape.read(call, 1).allSatisfy { $0 == 0 } ? 1 : 0
            },
            LinuxKfuncs.make("bpf_cpumask_full") { call throws(HelperFailure) in try shape.read(call, 1) == full ? 1 : 0
            },
            LinuxKfuncs.make("bpf_cpumask_copy") { call throws(HelperFailure) in
                try shape.write(call, 1, try shape.read(call, 2))
                return 0
            },
            // Any CPU of the mask: the first one (the kernel picks one at random).
            LinuxKfuncs.make("bpf_cpumask_any_distribute") { call throws(HelperFailure) in
                shape.first(try shape.read(call, 1))
            },
            LinuxKfuncs.make("bpf_cpumask_any_and_distribute") { call throws(HelperFailure) in
                shape.first(zip(try shape.read(call, 1), try shape.read(call, 2)).map { $0 & $1 })
            },
            LinuxKfuncs.make("bpf_cpumask_weight") { call throws(HelperFailure) in
                UInt64(try shape.read(call, 1).reduce(0) { $0 + $1.nonzeroBitCount })
            },
        ]
    }
}
