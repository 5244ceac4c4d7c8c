import MimicJSON

/// Why a context could not be read or set up, with the JSON path of the field at fault.
///
/// `path` uses the JSON structure of the context file (`ctx.memory[2].value.size`); for contexts
/// built in Swift it names the property. The description reads
/// `ctx.memory[2].value.size: expected 8, 16, 32 or 64, got 12`.
///
/// The same type as MimicJSON's `JSONError`, which `JSONField` throws: reading a context file
/// and checking its values report errors one way.
public typealias ContextError = JSONError
