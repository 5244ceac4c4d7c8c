import MimicCore

/// Assembler + disassembler round trip: text that assembles, disassembled and assembled again,
/// gives the same instructions; bytecode that decodes disassembles and reassembles the same.
func fuzzOne(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    if let instructions = try? Assembler.assemble(text) {
        roundTrip(instructions)
    }
    if let instructions = try? RawInstruction.decode(Array(bytes.prefix(bytes.count / 8 * 8))) {
        roundTrip(instructions)
    }
}

func roundTrip(_ instructions: [RawInstruction]) {
    let lines = Disassembler.disassemble(instructions)
    guard !lines.contains(where: { if case .invalid = $0 { true } else { false } }) else { return }
    let listing = lines.map(\.text).joined(separator: "\n")
    guard let again = try? Assembler.assemble(listing) else {
        fatalError("the disassembly does not assemble:\n\(listing)")
    }
    guard Disassembler.disassemble(again).map(\.text) == lines.map(\.text) else {
        fatalError("the round trip changed the program:\n\(listing)")
    }
}
