/// What a register holds, in the kernel verifier's terms (`enum bpf_reg_type`).
public enum RegisterType: Hashable, Sendable {
    case notInit
    case scalar
    /// The program's context (`PTR_TO_CTX`).
    case context
    /// A map (`CONST_PTR_TO_MAP`), from `lddw` of a map.
    case mapPointer
    /// A map value (`PTR_TO_MAP_VALUE`).
    case mapValue
    /// A map key on the stack of a callback (`PTR_TO_MAP_KEY`).
    case mapKey
    /// The stack of a frame (`PTR_TO_STACK`).
    case stack
    /// Packet data (`PTR_TO_PACKET`).
    case packet
    /// Packet metadata (`PTR_TO_PACKET_META`).
    case packetMeta
    /// The end of packet data (`PTR_TO_PACKET_END`).
    case packetEnd
    /// Memory a helper returned (`PTR_TO_MEM`): ring-buffer records, per-CPU pointers.
    case memory
    /// `struct bpf_sock` (`PTR_TO_SOCKET`).
    case socket
    /// `struct bpf_sock_common` (`PTR_TO_SOCK_COMMON`).
    case socketCommon
    /// `struct bpf_tcp_sock` (`PTR_TO_TCP_SOCK`).
    case tcpSocket
    /// A kernel object typed by BTF (`PTR_TO_BTF_ID`), e.g. a task.
    case btfObject
    /// A buffer of a map element iterator's key or value (`PTR_TO_BUF`), whose size the kernel
    /// checks when the iterator is attached to a map.
    case buffer
    /// A sub-program, for callbacks (`PTR_TO_FUNC`).
    case function
    /// The flow dissector's `struct bpf_flow_keys` (`PTR_TO_FLOW_KEYS`), from `skb->flow_keys`.
    case flowKeys

    /// The kernel's name in the verifier log (`reg_type_str`).
    public var kernelName: String {
        switch self {
        case .notInit: "?"
        case .scalar: "scalar"
        case .context: "ctx"
        case .mapPointer: "map_ptr"
        case .mapValue: "map_value"
        case .mapKey: "map_key"
        case .stack: "fp"
        case .packet: "pkt"
        case .packetMeta: "pkt_meta"
        case .packetEnd: "pkt_end"
        case .memory: "mem"
        case .socket: "sock"
        case .socketCommon: "sock_common"
        case .tcpSocket: "tcp_sock"
        case .btfObject: "ptr_"
        case .buffer: "buf"
        case .function: "func"
        case .flowKeys: "flow_keys"
        }
    }

    var isPacket: Bool { self == .packet || self == .packetMeta }
}

/// One register's abstract value (`struct bpf_reg_state`).
public struct Register: Hashable, Sendable {
    public var type: RegisterType = .notInit
    /// The pointer may be NULL (`PTR_MAYBE_NULL`).
    public var maybeNull = false
    /// The fixed part of a pointer's offset (`reg->off`).
    public var offset: Int64 = 0
    /// A scalar's value, or the variable part of a pointer's offset.
    public var bounds = Scalar.unknown
    /// Links copies: a null check or a packet range check on one applies to all (`reg->id`).
    /// A scalar's id may carry `Register.addConst64` or `addConst32`: it is a copy plus
    /// `linkDelta` (`rX = rY; rX += k`), refined with the others as their value plus the
    /// difference of the deltas (`BPF_ADD_CONST`).
    public var id: UInt32 = 0
    /// Scalars whose id has an `addConst` flag: the constant added since the copy (`reg->off`).
    public var linkDelta: Int64 = 0
    /// The reference this pointer holds, 0 for none (`reg->ref_obj_id`).
    public var referenceID: UInt32 = 0
    /// Packet pointers: bytes known to be inside the packet from the base (`reg->range`);
    /// memory: its size.
    public var range: Int64 = 0
    /// Map pointers and map values: the index of the map in the verifier's map list.
    public var map: Int = -1
    /// Stack pointers: the frame whose stack it points into.
    public var frame: Int = 0
    /// Function pointers: the sub-program index; BTF objects: a name for messages.
    public var subprogram: Int = 0
    /// Read-only memory (`MEM_RDONLY`).
    public var readOnly = false
    /// A ring-buffer record (`MEM_RINGBUF`).
    public var ringBuffer = false
    /// The BTF-typed object's type name (for messages).
    public var btfName: String = ""
    /// BTF objects: the struct's id in the kernel's BTF (`reg->btf_id`), 0 when unknown (no
    /// kernel BTF): reads through the pointer then give scalars.
    public var btfID: UInt32 = 0
    /// BTF objects: trusted, RCU, untrusted (`PTR_TRUSTED`, `MEM_RCU`, `PTR_UNTRUSTED`); memory:
    /// `.untrusted` for a pointer to a non-struct read from a kernel struct.
    public var btfFlags = BTFPointerFlags()

    public init() {}

    /// Id flags of a scalar linked to its copies with a constant added, by a 64-bit or a 32-bit
    /// add or subtract (`BPF_ADD_CONST64`, `BPF_ADD_CONST32`).
    static let addConst64: UInt32 = 1 << 31
    static let addConst32: UInt32 = 1 << 30
    static let addConst: UInt32 = addConst64 | addConst32

    /// The id without its `addConst` flags: what the copies share.
    var baseID: UInt32 { id & ~Register.addConst }

    /// No longer linked to anything.
    mutating func unlink() {
        id = 0
        linkDelta = 0
    }

    static func scalar(_ bounds: Scalar) -> Register {
        var r = Register()
        r.type = .scalar
        r.bounds = bounds
        return r
    }

    static func constant(_ value: UInt64) -> Register { scalar(.constant(value)) }
    static let unknownScalar = scalar(.unknown)

    static func pointer(_ type: RegisterType) -> Register {
        var r = Register()
        r.type = type
        r.bounds = .constant(0)
        return r
    }

    public var isInitialized: Bool { type != .notInit }
    public var isPointer: Bool { type != .notInit && type != .scalar }
    public var isScalar: Bool { type == .scalar }
    var isNullConstant: Bool { type == .scalar && bounds.constantValue == 0 }

    /// The type as the kernel prints it: `map_value_or_null`, `ptr_or_null_`, `scalar`.
    public var typeName: String {
        // reg_type_str: rdonly_, ringbuf_, then the BTF flags, before the base name.
        var name = type.kernelName
        if type == .btfObject || type == .memory { name = btfFlags.prefix + name }
        if ringBuffer, type == .memory { name = "ringbuf_" + name }
        if readOnly, type == .memory || type == .buffer { name = "rdonly_" + name }
        // PTR_TO_BTF_ID's postfix follows its `ptr_` (`trusted_ptr_or_null_`).
        if maybeNull { name += type == .btfObject ? "or_null_" : "_or_null" }
        return name
    }
}

/// What a stack byte holds (`enum bpf_stack_slot_type`).
public enum StackSlot: UInt8, Hashable, Sendable {
    /// Never written (`STACK_INVALID`).
    case invalid
    /// Written with something the verifier does not track (`STACK_MISC`).
    case misc
    /// Known to be zero (`STACK_ZERO`).
    case zero
    /// Part of a spilled register (`STACK_SPILL`).
    case spill
    /// Part of an open-coded iterator (`STACK_ITER`).
    case iterator

    var character: Character {
        switch self {
        case .invalid: "?"
        case .misc: "m"
        case .zero: "0"
        case .spill: "r"
        case .iterator: "i"
        }
    }
}

/// The stack bytes of one frame (512), with the register spilled in each 8-byte slot.
struct Stack: Hashable {
    static let size = 512
    /// Byte `i` is at `fp - 512 + i`.
    var bytes = [StackSlot](repeating: .invalid, count: Stack.size)
    /// Slot `i` covers bytes `8i ..< 8i+8`.
    var spilled = [Register](repeating: Register(), count: Stack.size / 8)
    /// The deepest byte touched, as a positive depth (`allocated_stack`).
    var depth = 0

    /// The byte index of `fp + offset` (offset negative).
    static func index(_ offset: Int) -> Int { Stack.size + offset }
}

/// One call frame: its registers and stack (`struct bpf_func_state`).
struct Frame: Hashable {
    var registers = [Register](repeating: Register(), count: 11)
    var stack = Stack()
    /// The instruction of the call that made this frame (-1 for the entry).
    var callSite = -1
    /// The sub-program this frame runs.
    var subprogram = 0
    /// A frame of a callback (`bpf_loop`), which returns to its helper call.
    var isCallback = false
    /// For callbacks: the helper's call instruction.
    var callbackHelper = -1
}

/// A reference the program holds and must release (`struct bpf_reference_state`).
struct Reference: Hashable {
    var id: UInt32
    /// The instruction that acquired it.
    var instruction: Int
    /// What it is, for messages: "ringbuf record", "socket".
    var kind: String
}

/// The whole abstract state of one path (`struct bpf_verifier_state`).
struct VerifierState: Hashable {
    var frames: [Frame] = [Frame()]
    var references: [Reference] = []
    /// The instruction of the held `bpf_spin_lock`, -1 for none.
    var lockInstruction = -1
    /// `bpf_rcu_read_lock` nesting.
    var rcuDepth = 0
    /// Open iterators (by stack slot) are tracked in the stack; this counts `may_goto` depth.
    var mayGotoDepth = 0
    /// The last comparison of a packet pointer with its end on this path (for advice only).
    var lastPacketCheck = -1

    var current: Frame {
        get { frames[frames.count - 1] }
        set { frames[frames.count - 1] = newValue }
    }

    subscript(register r: Int) -> Register {
        get { frames[frames.count - 1].registers[r] }
        set { frames[frames.count - 1].registers[r] = newValue }
    }

    /// Every register and spilled slot of every frame, for id-based updates.
    mutating func updateAll(_ body: (inout Register) -> Void) {
        for f in frames.indices {
            for r in 0..<11 { body(&frames[f].registers[r]) }
            for s in frames[f].stack.spilled.indices where frames[f].stack.bytes[s * 8 + 7] == .spill {
                body(&frames[f].stack.spilled[s])
            }
        }
    }
}
