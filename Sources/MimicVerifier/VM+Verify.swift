import MimicCore

/// A program the kernel's verifier would refuse, found before loading it into a VM.
public struct VerificationFailure: Error, Sendable, CustomStringConvertible {
    /// The program's name.
    public var program: String
    public var error: VerificationError

    public var description: String { "\(program): the kernel's verifier would reject it\n\(error.explanation)" }
}

extension VM {
    /// Loads an object after verifying every program as the kernel would (`verify: true`);
    /// throws `VerificationFailure` for the first program the kernel would refuse, or the
    /// load's `LoadError`.
    public func load(object: ObjectFile, verify: Bool, options: VerifierOptions = VerifierOptions()) throws
        -> LoadedObject
    {
        if verify {
            let verifier = Verifier(options: options)
            for program in object.programs {
                if let error = verifier.verify(object: object, program: program).error {
                    throw VerificationFailure(program: program.name, error: error)
                }
            }
        }
        return try load(object: object)
    }

    /// Loads one program after verifying it as a program of `type` with `maps` (`verify: true`).
    public func load(
        _ instructions: [RawInstruction], name: String = "program", type: ProgramType, maps: [VerifierMap] = [],
        verify: Bool, options: VerifierOptions = VerifierOptions()
    ) throws -> Program {
        if verify {
            let program = VerifierProgram(name: name, instructions: instructions, type: type, maps: maps)
            if let error = Verifier(options: options).verify(program).error {
                throw VerificationFailure(program: name, error: error)
            }
        }
        return try load(instructions, name: name)
    }
}
