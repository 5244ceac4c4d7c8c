import CMimicPlugin
import MimicJSON

/// A program context a plugin builds (ABI 1.1 `attach_context`) from a context file: the JSON
/// envelope `{"name": ..., "type": ..., "ctx": {...}}`. With MimicLinux as a plugin the types
/// are those of its context files (`xdp_md`, `sk_buff`, `generic`, `captured`;
/// Docs/Contexts.md), so a host can run XDP, tc and traced programs without linking MimicLinux.
///
/// ```swift
/// let context = PluginContext(json: text, emulator: plugin)
/// let process = try vm.makeProcess(for: program, context: context)
/// try process.run()
/// let result = try plugin.contextResult(of: process)   // verdict, packet, trace, ...
/// ```
public struct PluginContext: Context, Sendable {
    /// The context file's text.
    public var json: String
    /// The plugin that builds it (the VM's emulator, or part of its `CompositeEmulator`).
    public let emulator: PluginEmulator

    public init(json: String, emulator: PluginEmulator) {
        self.json = json
        self.emulator = emulator
    }

    /// Asks the plugin to map the context's memory into `process` and set R1–R5. A bad context
    /// fails with the plugin's message, which names the JSON path at fault.
    public func attach(to process: Process) throws(SetupError) {
        try emulator.attachContext(json: json, to: process)
    }
}

/// What a process that ran on a plugin's context produced, as the plugin described it
/// (`context_result`). The members below are those MimicLinux writes; `json` is the whole text,
/// for plugins with members of their own.
public struct PluginContextResult: Sendable, Equatable {
    /// The plugin's JSON text.
    public var json: String
    /// The context type (`xdp_md`, `sk_buff`, `generic`, ...), if the plugin says.
    public var type: String?
    /// R0 as the program returned it.
    public var returnValue: UInt64
    /// The verdict's name (`XDP_PASS`, `TC_ACT_OK`), when R0 is one.
    public var action: String?
    /// The packet as the program left it, for packet contexts.
    public var packet: [UInt8]?
    /// Where the packet was redirected, in words, and the target interface if there is one.
    public var redirect: String?
    public var redirectIfindex: UInt32?
    /// Numeric fields of the context after the run (`mark`, `priority`, ... of an `__sk_buff`).
    public var fields: [String: UInt64]
    /// Program output (`bpf_trace_printk` lines).
    public var trace: [String]
    /// Things worth knowing that did not stop the run.
    public var warnings: [String]

    /// Reads the JSON object a plugin's `context_result` wrote. Numbers are read exactly
    /// (`fields` values are full 64-bit), with the package's own codec (MimicJSON).
    public init(json: String, returnValue: UInt64) throws(PluginError) {
        func invalid(_ detail: String) -> PluginError { .invalidAnswer(plugin: "context result", detail: detail) }
        let value: JSONValue
        do throws(JSONError) {
            value = try JSONValue.parse(json)
        } catch {
            throw invalid("not JSON (\(error)): \(json.prefix(200))")
        }
        guard case .object = value else { throw invalid("not a JSON object: \(json.prefix(200))") }
        let document = JSONField(value, path: "")
        self.json = json
        self.returnValue = returnValue
        do throws(JSONError) {
            type = try document["type"].optionalString()
            action = try document["action"].optionalString()
            packet = document["packet"].isMissing ? nil : try document["packet"].base64()
            let redirect = document["redirect"]
            if !redirect.isMissing {
                try redirect.object()
                self.redirect = try redirect["description"].optionalString()
                redirectIfindex = try redirect["ifindex"].optionalInteger(UInt32.self)
            }
            fields = [:]
            if !document["fields"].isMissing {
                for (name, value) in try document["fields"].members() { fields[name] = try value.bits64() }
            }
            trace = try document["trace"].optionalElements().map { field throws(JSONError) in try field.string() }
            warnings = try document["warnings"].optionalElements().map { field throws(JSONError) in try field.string() }
        } catch {
            throw invalid(error.description)
        }
    }
}

extension PluginEmulator {
    /// Has the plugin build a context from `json` for `process` (what `PluginContext` does).
    public func attachContext(json: String, to process: Process) throws(SetupError) {
        guard let attach = library.attachContext else {
            throw .message(PluginError.unsupported(plugin: name, what: "contexts").description)
        }
        guard let state = process.emulatorState(library.stateKey) else {
            throw .message(
                "the process was not prepared by plugin \(name) (make it in a VM whose emulator includes the plugin)")
        }
        let bytes = Array(json.utf8)
        let (status, message) = PluginEmulator.withCall(process, state) { call in
            bytes.withUnsafeBufferPointer { text in
                text.withMemoryRebound(to: CChar.self) { text in
                    PluginText.withError { attach(HostServices.table, call, text.baseAddress, text.count, $0, $1) }
                }
            }
        }
        guard status == MIMIC_OK.rawValue else {
            throw .message(message.isEmpty ? "plugin \(name) could not attach the context (status \(status))" : message)
        }
    }

    /// What `process`, run on a `PluginContext`, produced: nil while it has not exited.
    ///
    /// - Throws: `PluginError` when the plugin has no `context_result` or answers with
    ///   something that is not a JSON object.
    public func contextResult(of process: Process) throws(PluginError) -> PluginContextResult? {
        guard case .exited(let r0) = process.state else { return nil }
        guard let result = library.contextResult else { throw .unsupported(plugin: name, what: "context results") }
        guard let state = process.emulatorState(library.stateKey) else { return nil }
        var capacity = 4096
        // A second call gets a buffer of the length the first reported; a plugin that then
        // reports a longer text still is answering inconsistently, not slowly.
        for attempt in 0..<2 {
            var buffer = [CChar](repeating: 0, count: capacity)
            let length = PluginEmulator.withCall(process, state) { call in
                buffer.withUnsafeMutableBufferPointer { result(HostServices.table, call, r0, $0.baseAddress, $0.count) }
            }
            guard length >= 0 else { throw .invalidAnswer(plugin: name, detail: "context_result failed (\(length))") }
            guard length < Int64(1 << 30) else {
                throw .invalidAnswer(plugin: name, detail: "a context result of \(length) bytes")
            }
            if Int(length) >= capacity {
                guard attempt == 0 else {
                    throw .invalidAnswer(
                        plugin: name, detail: "context_result asked for \(length) bytes after \(capacity - 1)")
                }
                capacity = Int(length) + 1
                continue
            }
            let text = String(decoding: buffer[0..<Int(length)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            do {
                return try PluginContextResult(json: text, returnValue: r0)
            } catch {
                throw .invalidAnswer(plugin: name, detail: "\(error)")
            }
        }
        throw .invalidAnswer(plugin: name, detail: "context_result never fit its buffer")
    }
}
