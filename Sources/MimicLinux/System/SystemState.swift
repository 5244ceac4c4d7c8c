import MimicCore
import MimicMemory
import Synchronization

/// What one emulator keeps of its `EmulatedSystem` while it runs: the kernel objects laid out in
/// its VM (once, when the first process is prepared) and each task's user memory (shared by
/// every run naming the task, so `bpf_probe_write_user` changes persist).
final class SystemState: Sendable {
    let system: EmulatedSystem
    let kernel: KernelMemory?
    let userMemories: [UInt32: UserMemory]
    /// The tasks by pid and the cgroup ids by path (found once, not by a walk per event).
    let tasks: [UInt32: EmulatedSystem.Task]
    let cgroupIDs: [String: UInt64]

    init(system: EmulatedSystem, kernel: KernelMemory?) {
        self.system = system
        self.kernel = kernel
        var tasks: [UInt32: EmulatedSystem.Task] = [:]
        for task in system.tasks where tasks[task.pid] == nil { tasks[task.pid] = task }
        self.tasks = tasks
        var ids: [String: UInt64] = [:]
        for cgroup in system.cgroups where ids[cgroup.path] == nil { ids[cgroup.path] = cgroup.id }
        cgroupIDs = ids
        var memories: [UInt32: UserMemory] = [:]
        for task in system.tasks { memories[task.pid] = UserMemory(task.memory) }
        userMemories = memories
    }
}

extension LinuxEmulator {
    /// The emulated system's state in `vm`, laying out its kernel objects on first use
    /// (`LinuxConfiguration.kernelBTF` decides their layout; without one there are none).
    func systemState(in vm: VM) throws(SetupError) -> SystemState {
        try systemStateCache.withLock { cached throws(SetupError) in
            if let cached { return cached }
            let system = configuration.system ?? EmulatedSystem()
            var kernel: KernelMemory?
            if let btf = configuration.kernelBTF {
                do {
                    kernel = try KernelMemory.build(system, btf: btf, in: vm)
                } catch {
                    throw .message("\(error)")
                }
            }
            let state = SystemState(system: system, kernel: kernel)
            cached = state
            return state
        }
    }

    /// The kernel objects of `configuration.system` in `vm` (nil without `kernelBTF`, or when
    /// it has no `task_struct`): where each task's `task_struct` is.
    public func kernelMemory(in vm: VM) throws(SetupError) -> KernelMemory? { try systemState(in: vm).kernel }

    /// The environment of a run as task `pid` of `configuration.system`: its ids, name,
    /// `task_struct`, cgroups, namespace, stacks and user memory.
    public func environment(forTask pid: UInt32, in vm: VM) throws(SetupError) -> TaskEnvironment {
        let state = try systemState(in: vm)
        guard let task = state.tasks[pid] else {
            throw .message("the emulated system has no task with pid \(pid)")
        }
        return TaskEnvironment(task: task, in: state)
    }

    /// Lays out the system's kernel objects in `vm`'s shared memory while an object loads, so
    /// that every process starts with them (a shared region mapped after a process was made
    /// could take an address that process already uses).
    func layOutSystem(in vm: VM) throws(LoadError.Reason) {
        guard configuration.system != nil || configuration.kernelBTF != nil else { return }
        do { _ = try systemState(in: vm) } catch { throw .unsupported(error.description) }
    }

    /// Makes the kernel objects visible to `process` when they were laid out after it was made
    /// (a VM that loaded no object); fails clearly if the process uses their address.
    func mapSystem(into process: MimicCore.Process) throws(SetupError) {
        guard configuration.system != nil || configuration.kernelBTF != nil else { return }
        let state = try systemState(in: process.vm)
        guard let kernel = state.kernel else { return }
        if let (storage, offset) = process.memory.storage(containing: kernel.base) {
            guard storage === kernel.storage, offset == 0 else {
                throw .message(
                    "the emulated kernel's objects were laid out after this process was made, at an address it uses; load an object (or call LinuxEmulator.kernelMemory(in:)) before making processes"
                )
            }
            return
        }
        do {
            try process.memory.map(kernel.storage, name: "kernel objects", kind: .readOnly, at: kernel.base)
        } catch {
            throw .message("cannot map the emulated kernel's objects: \(error)")
        }
    }
}

extension TaskEnvironment {
    /// The environment of a run as `task`.
    init(task: EmulatedSystem.Task, in state: SystemState) {
        self.init(pid: task.pid, tgid: task.tgid, uid: task.uid, gid: task.gid, comm: task.comm)
        let system = state.system
        taskAddress = state.kernel?.taskAddresses[task.pid] ?? 0
        cgroupAncestry = EmulatedSystem.ancestry(of: task.cgroup, ids: state.cgroupIDs)
        pidNamespace = task.pidNamespace
        namespaceDevice = system.namespaceDevice
        namespacePid = task.namespacePid ?? task.pid
        namespaceTgid = task.namespaceTgid ?? task.tgid
        kernelStack = task.kernelStack.compactMap { system.address(of: $0) }
        userStack = task.userStack.compactMap { system.address(of: $0) }
        userMemory = state.userMemories[task.pid]
    }
}

extension TaskEnvironment {
    /// This environment as the emulated system's task with the same pid, when the process's
    /// emulator has a system listing it: the task's identity (ids, name, `task_struct`, cgroups,
    /// namespace, stacks, user memory) with this environment's clock, random seed, NUMA node,
    /// attach cookie and function address. Otherwise unchanged.
    func inSystem(of process: MimicCore.Process) -> TaskEnvironment {
        guard let emulator = process.vm.emulator as? LinuxEmulator, emulator.configuration.system != nil,
            var task = try? emulator.environment(forTask: pid, in: process.vm)
        else { return self }
        task.clock = clock
        task.randomSeed = randomSeed
        task.numaNode = numaNode
        task.attachCookie = attachCookie
        task.functionAddress = functionAddress
        return task
    }
}
