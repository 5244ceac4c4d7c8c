@testable import MimicVerifier
import XCTest

/// The bounds arithmetic never loses a value: for random ranges and members of them, the
/// concrete result of every ALU operation and branch lies within the abstract one.
final class BoundsSoundnessTests: XCTestCase {
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
        /// An interesting 64-bit value: small, near a boundary, or random.
        mutating func value() -> UInt64 {
            switch next() % 6 {
            case 0: return next() % 16
            case 1: return UInt64(bitPattern: -Int64(next() % 16))
            case 2: return 0x8000_0000 &+ next() % 8 &- 4
            case 3: return 0x8000_0000_0000_0000 &+ next() % 8 &- 4
            case 4: return next() & 0xffff_ffff
            default: return next()
            }
        }
    }

    /// An abstract value built the way programs build them: [base, base + width] by masking and
    /// adding, and a member of it.
    func sample(_ g: inout Generator) -> (Scalar, UInt64) {
        let base = g.value()
        let widthBits = Int(g.next() % 10)
        let width = widthBits == 0 ? 0 : (UInt64(1) << UInt64(widthBits)) - 1
        let offset = width == 0 ? 0 : g.next() % (width + 1)
        let abstract = Scalar.unsigned(max: width).applying(.add, .constant(base), bits: 64)
        return (abstract, base &+ offset)
    }

    func contains(_ s: Scalar, _ v: UInt64) -> Bool {
        let sv = Int64(bitPattern: v)
        let v32 = UInt32(truncatingIfNeeded: v)
        let s32 = Int32(bitPattern: v32)
        return s.umin <= v && v <= s.umax && s.smin <= sv && sv <= s.smax && s.u32min <= v32 && v32 <= s.u32max
            && s.s32min <= s32 && s32 <= s.s32max && s.varOff.contains(.constant(v))
    }

    func concrete(_ op: ALUOp, _ a: UInt64, _ b: UInt64, bits: Int) -> UInt64 {
        if bits == 32 {
            let x = UInt32(truncatingIfNeeded: a)
            let y = UInt32(truncatingIfNeeded: b)
            let r: UInt32
            switch op {
            case .add: r = x &+ y
            case .sub: r = x &- y
            case .mul: r = x &* y
            case .and: r = x & y
            case .or: r = x | y
            case .xor: r = x ^ y
            case .lsh: r = x << (y & 31)
            case .rsh: r = x >> (y & 31)
            case .arsh: r = UInt32(bitPattern: Int32(bitPattern: x) >> Int32(y & 31))
            default: r = 0
            }
            return UInt64(r)
        }
        switch op {
        case .add: return a &+ b
        case .sub: return a &- b
        case .mul: return a &* b
        case .and: return a & b
        case .or: return a | b
        case .xor: return a ^ b
        case .lsh: return a << (b & 63)
        case .rsh: return a >> (b & 63)
        case .arsh: return UInt64(bitPattern: Int64(bitPattern: a) >> Int64(b & 63))
        default: return 0
        }
    }

    func testALUResultsContainTheConcreteResult() {
        var g = Generator(state: 18)
        let ops: [ALUOp] = [.add, .sub, .mul, .and, .or, .xor, .lsh, .rsh, .arsh]
        for _ in 0..<20_000 {
            var (a, x) = sample(&g)
            var (b, y) = sample(&g)
            let op = ops[Int(g.next() % UInt64(ops.count))]
            let bits = g.next() % 2 == 0 ? 64 : 32
            if op == .lsh || op == .rsh || op == .arsh {
                y = g.next() % UInt64(bits)
                b = .constant(y)
            }
            if bits == 32 {
                // A 32-bit operation reads the low halves.
                a.coerce(bytes: 4)
                b.coerce(bytes: 4)
                x &= 0xffff_ffff
                y &= 0xffff_ffff
            }
            let result = a.applying(op, b, bits: bits)
            let value = concrete(op, x, y, bits: bits)
            XCTAssertTrue(contains(result, value), "\(op) \(bits)-bit: \(x) \(y) = \(value) not in \(result)")
            if !contains(result, value) { return }
        }
    }

    func testBranchesKeepTheValuesThatTakeThem() {
        var g = Generator(state: 7)
        let ops: [JumpOp] = [.eq, .ne, .gt, .ge, .lt, .le, .sgt, .sge, .slt, .sle, .set]
        let analysis = Analysis(program: VerifierProgram(instructions: [], type: .xdp), options: VerifierOptions())
        for _ in 0..<20_000 {
            let (a, x) = sample(&g)
            let (b, y) = g.next() % 3 == 0 ? (Scalar.constant(x), x) : sample(&g)
            let op = ops[Int(g.next() % UInt64(ops.count))]
            let is32 = g.next() % 2 == 0
            let (p, q) = is32 ? (x & 0xffff_ffff, y & 0xffff_ffff) : (x, y)
            let sp = is32 ? Int64(Int32(truncatingIfNeeded: p)) : Int64(bitPattern: p)
            let sq = is32 ? Int64(Int32(truncatingIfNeeded: q)) : Int64(bitPattern: q)
            let holds: Bool
            switch op {
            case .eq: holds = p == q
            case .ne: holds = p != q
            case .gt: holds = p > q
            case .ge: holds = p >= q
            case .lt: holds = p < q
            case .le: holds = p <= q
            case .sgt: holds = sp > sq
            case .sge: holds = sp >= sq
            case .slt: holds = sp < sq
            case .sle: holds = sp <= sq
            case .set: holds = p & q != 0
            }
            let predicted = analysis.branchTaken(a, b, op, is32: is32)
            if predicted == 1 { XCTAssertTrue(holds, "\(op) \(x) \(y) predicted taken") }
            if predicted == 0 { XCTAssertFalse(holds, "\(op) \(x) \(y) predicted not taken") }
            var a2 = a
            var b2 = b
            if holds {
                analysis.refine(&a2, &b2, op, is32: is32)
            } else if let negated = op.negated {
                analysis.refine(&a2, &b2, negated, is32: is32)
            } else {
                analysis.refineSetFalse(&a2, b2, is32: is32)
            }
            XCTAssertTrue(contains(a2, x) && contains(b2, y), "\(op) (32: \(is32)) \(x) \(y) lost: \(a2) \(b2)")
            if !(contains(a2, x) && contains(b2, y)) { return }
        }
    }
}
