/// The kernel's map types (`enum bpf_map_type` in `linux/bpf.h`), by their UAPI numbers.
///
/// Swift names read naturally; `cName` gives the C spelling, as swift-system does for errno.
public enum MapType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case unspec = 0
    case hash = 1
    case array = 2
    case progArray = 3
    case perfEventArray = 4
    case perCPUHash = 5
    case perCPUArray = 6
    case stackTrace = 7
    case cgroupArray = 8
    case lruHash = 9
    case lruPerCPUHash = 10
    case lpmTrie = 11
    case arrayOfMaps = 12
    case hashOfMaps = 13
    case devMap = 14
    case sockMap = 15
    case cpuMap = 16
    case xskMap = 17
    case sockHash = 18
    case cgroupStorage = 19
    case reuseportSockarray = 20
    case perCPUCgroupStorage = 21
    case queue = 22
    case stack = 23
    case skStorage = 24
    case devMapHash = 25
    case structOps = 26
    case ringBuffer = 27
    case inodeStorage = 28
    case taskStorage = 29
    case bloomFilter = 30
    case userRingBuffer = 31

    /// The C enumerator, e.g. `BPF_MAP_TYPE_PERCPU_HASH`.
    public var cName: String {
        switch self {
        case .unspec: "BPF_MAP_TYPE_UNSPEC"
        case .hash: "BPF_MAP_TYPE_HASH"
        case .array: "BPF_MAP_TYPE_ARRAY"
        case .progArray: "BPF_MAP_TYPE_PROG_ARRAY"
        case .perfEventArray: "BPF_MAP_TYPE_PERF_EVENT_ARRAY"
        case .perCPUHash: "BPF_MAP_TYPE_PERCPU_HASH"
        case .perCPUArray: "BPF_MAP_TYPE_PERCPU_ARRAY"
        case .stackTrace: "BPF_MAP_TYPE_STACK_TRACE"
        case .cgroupArray: "BPF_MAP_TYPE_CGROUP_ARRAY"
        case .lruHash: "BPF_MAP_TYPE_LRU_HASH"
        case .lruPerCPUHash: "BPF_MAP_TYPE_LRU_PERCPU_HASH"
        case .lpmTrie: "BPF_MAP_TYPE_LPM_TRIE"
        case .arrayOfMaps: "BPF_MAP_TYPE_ARRAY_OF_MAPS"
        case .hashOfMaps: "BPF_MAP_TYPE_HASH_OF_MAPS"
        case .devMap: "BPF_MAP_TYPE_DEVMAP"
        case .sockMap: "BPF_MAP_TYPE_SOCKMAP"
        case .cpuMap: "BPF_MAP_TYPE_CPUMAP"
        case .xskMap: "BPF_MAP_TYPE_XSKMAP"
        case .sockHash: "BPF_MAP_TYPE_SOCKHASH"
        case .cgroupStorage: "BPF_MAP_TYPE_CGROUP_STORAGE"
        case .reuseportSockarray: "BPF_MAP_TYPE_REUSEPORT_SOCKARRAY"
        case .perCPUCgroupStorage: "BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE"
        case .queue: "BPF_MAP_TYPE_QUEUE"
        case .stack: "BPF_MAP_TYPE_STACK"
        case .skStorage: "BPF_MAP_TYPE_SK_STORAGE"
        case .devMapHash: "BPF_MAP_TYPE_DEVMAP_HASH"
        case .structOps: "BPF_MAP_TYPE_STRUCT_OPS"
        case .ringBuffer: "BPF_MAP_TYPE_RINGBUF"
        case .inodeStorage: "BPF_MAP_TYPE_INODE_STORAGE"
        case .taskStorage: "BPF_MAP_TYPE_TASK_STORAGE"
        case .bloomFilter: "BPF_MAP_TYPE_BLOOM_FILTER"
        case .userRingBuffer: "BPF_MAP_TYPE_USER_RINGBUF"
        }
    }

    /// The lower-case name bpftool prints, e.g. `percpu_hash`.
    public var description: String { String(cName.dropFirst("BPF_MAP_TYPE_".count)).lowercased() }
}
