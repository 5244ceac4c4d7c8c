/// Why a context could not be read or set up, with the JSON path of the field at fault.
///
/// `path` uses the JSON structure of the context file (`ctx.memory[2].value.size`); for contexts
/// built in Swift it names the property. The description reads
/// `ctx.memory[2].value.size: expected 8, 16, 32 or 64, got 12`.
public struct ContextError: Error, Sendable, Equatable, CustomStringConvertible {
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
