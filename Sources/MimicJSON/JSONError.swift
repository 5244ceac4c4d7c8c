/// What is wrong with a JSON document or with one of its values, and where.
///
/// `path` follows the document's structure (`ctx.memory[2].value.size`); it is empty for the
/// document as a whole (a syntax error, whose message names the line and column). The
/// description reads `ctx.memory[2].value.size: expected 8, 16, 32 or 64, got 12`.
///
/// MimicLinux calls it `ContextError`: its context files are read with `JSONField`, and contexts
/// built in Swift use the same type with the property's name as the path.
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where the problem is: a JSON path (`ctx.packet`), or empty for the document as a whole.
    public var path: String
    /// What is wrong, for the user.
    public var message: String

    public init(path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}
