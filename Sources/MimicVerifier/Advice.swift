/// Plain-words advice for messages that do not carry their own.
enum Advice {
    static func sentence(for f: Failure, analysis: Analysis) -> String {
        switch f.kind {
        case .invalidInstruction:
            return
                "the bytecode holds an instruction the kernel does not accept; recompile with a current clang (-O2 -target bpf)"
        case .controlFlow:
            if f.message.hasPrefix("unreachable") {
                return "the kernel refuses dead code: remove the instructions no path reaches"
            }
            if f.message.hasPrefix("last insn") {
                return "a function falls off its end: every path of every function must end in a return (exit)"
            }
            return "a jump leaves its function or the program; every branch target must be inside the same function"
        case .loop:
            return "the loop must end on every path; bound it with a counter compared against a constant"
        case .nullPointer:
            return "check the pointer against NULL before using it"
        case .unknownHelper:
            return "the helper is not available to this program type"
        case .pointerArithmetic:
            return
                "only adding or subtracting a bounded number to a pointer is allowed; other arithmetic turns it into an unusable value"
        case .stackAccess:
            return "stack accesses must stay within r10-512 .. r10-1"
        case .lock:
            return "take and release bpf_spin_lock on the same path, with no calls in between"
        default:
            return ""
        }
    }
}
