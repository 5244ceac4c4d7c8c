import Foundation
import MimicCore
import MimicJSON
import Synchronization

/// Reads context files: the JSON envelope `{ "name": ..., "type": ..., "ctx": { ... } }` of the
/// Go mimic (format: `Docs/Contexts.md`), dispatching on `type` through a registry.
///
/// Built in: `generic`, `xdp_md`, `sk_buff`, `captured`. Library users add their own:
///
///     ContextFile.register(type: "my_ctx") { ctx, name throws(ContextError) in
///         MyContext(bytes: try ctx["bytes"].base64())
///     }
///
/// Every problem is a `ContextError` naming the JSON path of the field
/// (`ctx.memory[2].value.size: expected 8, 16, 32 or 64, got 12`); bad input never crashes.
public enum ContextFile {
    /// Builds a context from the `ctx` field of an envelope (its path is `ctx`, or
    /// `ctx.subContext.ctx` inside a captured context) and the envelope's `name`.
    public typealias Decoder = @Sendable (_ ctx: JSONField, _ name: String) throws(ContextError) -> any Context

    /// A decoded envelope.
    public struct Loaded {
        public var name: String
        public var type: String
        public var context: any Context
    }

    private static let registry = Mutex<[String: Decoder]>([
        "generic": { ctx, name throws(ContextError) in try GenericContext(json: ctx, name: name) },
        "xdp_md": { ctx, name throws(ContextError) in try XDPContext(json: ctx, name: name) },
        "sk_buff": { ctx, name throws(ContextError) in try SKBContext(json: ctx, name: name) },
        "captured": { ctx, name throws(ContextError) in try CapturedContext(json: ctx, name: name) },
        "bpf_flow_dissector": { ctx, name throws(ContextError) in try FlowDissectorContext(json: ctx, name: name) },
        "bpf_sk_lookup": { ctx, name throws(ContextError) in try SKLookupContext(json: ctx, name: name) },
        "bpf_sock_addr": { ctx, name throws(ContextError) in try SockAddrContext(json: ctx, name: name) },
        "bpf_sock_ops": { ctx, name throws(ContextError) in try SockOpsContext(json: ctx, name: name) },
        "bpf_sock": { ctx, name throws(ContextError) in try SockContext(json: ctx, name: name) },
        "sk_msg_md": { ctx, name throws(ContextError) in try SKMsgContext(json: ctx, name: name) },
        "sk_reuseport_md": { ctx, name throws(ContextError) in try SKReuseportContext(json: ctx, name: name) },
        "bpf_nf_ctx": { ctx, name throws(ContextError) in try NetfilterContext(json: ctx, name: name) },
    ])

    /// Adds (or replaces) the decoder for context type `type`.
    public static func register(type: String, decoder: @escaping Decoder) {
        registry.withLock { $0[type] = decoder }
    }

    /// The context types the registry knows, sorted.
    public static var registeredTypes: [String] { registry.withLock { $0.keys.sorted() } }

    /// Reads a context file's bytes and returns its context.
    public static func load(data: some Collection<UInt8>) throws(ContextError) -> any Context {
        try loadEnvelope(data: data).context
    }

    /// The largest context file read, checked before parsing: 16 MiB holds packets far past the
    /// page the kernel's `BPF_PROG_TEST_RUN` takes, and parsing costs several times a file's size.
    public static let maxFileSize = 16 << 20

    /// Reads a context file's bytes: its name, type and context.
    public static func loadEnvelope(data: some Collection<UInt8>) throws(ContextError) -> Loaded {
        guard data.count <= maxFileSize else {
            throw ContextError(
                path: "", "the file has \(data.count) bytes, more than the \(maxFileSize) a context file may have")
        }
        return try decode(JSONField(try JSONValue.parse(data), path: ""))
    }

    /// Reads a context file's bytes that may hold one envelope or, as edb writes them, a JSON
    /// array of envelopes (each element is decoded with its path, `[2].ctx.memory[0]`). An
    /// empty array is an error.
    public static func loadAll(data: some Collection<UInt8>) throws(ContextError) -> [Loaded] {
        let document = JSONField(try JSONValue.parse(data), path: "")
        guard case .array = document.value else { return [try decode(document)] }
        let elements = try document.elements()
        guard !elements.isEmpty else { throw document.error("an empty array of contexts") }
        var loaded: [Loaded] = []
        for element in elements { loaded.append(try decode(element)) }
        return loaded
    }

    /// Reads the context file at `url`.
    public static func load(contentsOf url: URL) throws(ContextError) -> any Context {
        let data: Data
        do {
            let size = try url.resourceValues(forKeys: [.fileSizeKey]).fileSize ?? 0
            guard size <= maxFileSize else {
                throw ContextError(
                    path: "",
                    "\(url.lastPathComponent) has \(size) bytes, more than the \(maxFileSize) a context file may have")
            }
            data = try Data(contentsOf: url)
        } catch let error as ContextError {
            throw error
        } catch {
            throw ContextError(path: "", "cannot read \(url.path): \(error.localizedDescription)")
        }
        do {
            return try load(data: data)
        } catch {
            throw ContextError(path: error.path, "\(url.lastPathComponent): \(error.message)")
        }
    }

    /// Decodes an envelope at any position (the document, or a captured context's `subContext`).
    public static func decode(_ envelope: JSONField) throws(ContextError) -> Loaded {
        try envelope.object(knownMembers: ["name", "type", "ctx"])
        let name = try envelope["name"].optionalString() ?? ""
        let typeField = envelope["type"]
        let type = try typeField.string()
        guard let decoder = registry.withLock({ $0[type] }) else {
            throw typeField.error(
                "unknown context type \"\(type)\" (known: \(registeredTypes.joined(separator: ", ")))")
        }
        let ctx = envelope["ctx"]
        guard !ctx.isMissing else { throw ctx.error("missing") }
        return Loaded(name: name, type: type, context: try decoder(ctx, name))
    }
}
