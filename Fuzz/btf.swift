import MimicCore

/// BTF: parse a `.BTF` blob, then spell, size and resolve every type (each must terminate).
func fuzzOne(_ bytes: [UInt8]) {
    guard let btf = try? BTF(bytes: bytes) else { return }
    for id in 0..<UInt32(min(btf.count, 4096)) {
        _ = btf.typeName(id)
        _ = btf.size(of: id)
        _ = btf.resolve(id)
        _ = btf.spinLockOffset(in: id)
    }
}
