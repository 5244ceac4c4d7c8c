// The context callbacks of the Linux plugin (ABI 1.1): a context file builds a MimicLinux context
// on the shadow process (its regions mirrored into the host process), and the run's outcome goes
// back as JSON.

import CMimicPlugin
import MimicCore
import MimicJSON
import MimicLinux
import MimicMemory

enum PluginContexts {
    static let attach:
        @convention(c) (
            UnsafePointer<mimic_host>?, UnsafeMutablePointer<mimic_call>?, UnsafePointer<CChar>?, Int,
            UnsafeMutablePointer<CChar>?, Int
        ) -> Int32 = { host, call, json, length, message, capacity in
            func fail(_ text: String) -> Int32 {
                LinuxPlugin.copy(text, to: message, capacity: capacity)
                return MIMIC_ERR_INVALID.rawValue
            }
            guard let host, let call, let json, length >= 0 else {
                return fail("attach_context: missing call or JSON text")
            }
            let shadow: ShadowProcess
            switch LinuxPlugin.shadow(of: call, host: host) {
            case .success(let found): shadow = found
            case .failure(let failure): return fail(failure.description)
            }
            let bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(json), count: length)
            let context: any Context
            do throws(ContextError) {
                context = try ContextFile.load(data: bytes)
            } catch {
                return fail("context file: \(error)")
            }
            return shadow.serving(call) {
                do throws(SetupError) {
                    try context.attach(to: shadow.process)
                } catch {
                    return fail("cannot attach the context: \(error)")
                }
                shadow.syncToHost(call, arguments: nil)
                return MIMIC_OK.rawValue
            }
        }

    static let result:
        @convention(c) (
            UnsafePointer<mimic_host>?, UnsafeMutablePointer<mimic_call>?, UInt64,
            UnsafeMutablePointer<CChar>?, Int
        ) -> Int64 = { host, call, r0, buffer, capacity in
            guard let host, let call, case .success(let shadow) = LinuxPlugin.shadow(of: call, host: host) else {
                return -1
            }
            let text = Array(json(of: shadow.process, returnValue: r0).utf8)
            if let buffer, text.count < capacity {
                for (i, byte) in text.enumerated() { buffer[i] = CChar(bitPattern: byte) }
                buffer[text.count] = 0
            }
            return Int64(text.count)
        }

    /// What a run produced, as the JSON object documented in Docs/Plugins.md: `type`, `action`,
    /// `packet` and `metadata` (base64), `redirect`, `clones`, `fields`, `trace`, `warnings`.
    static func json(of process: MimicCore.Process, returnValue: UInt64) -> String {
        var members: [(String, String)] = []
        let state = LinuxProcessState.of(process)
        if let result = XDPContext.result(of: process, returnValue: returnValue) {
            members.append(("type", quote("xdp_md")))
            if let action = result.action { members.append(("action", quote(action.name))) }
            members.append(("packet", quote(Base64.encode(result.packet))))
            members.append(("metadata", quote(Base64.encode(result.metadata))))
            if let redirect = result.redirect { members.append(("redirect", json(redirect))) }
        } else if let result = SKBContext.result(of: process, returnValue: returnValue) {
            members.append(("type", quote("sk_buff")))
            if let action = result.action { members.append(("action", quote(action.name))) }
            members.append(("packet", quote(Base64.encode(result.packet))))
            if let redirect = result.redirect { members.append(("redirect", json(redirect))) }
            if !result.clones.isEmpty {
                let clones = result.clones.map { clone in
                    object([
                        ("ifindex", "\(clone.ifindex)"), ("flags", "\(clone.flags)"),
                        ("packet", quote(Base64.encode(clone.packet))),
                    ])
                }
                members.append(("clones", "[" + clones.joined(separator: ",") + "]"))
            }
            let f = result.fields
            var fields: [(String, String)] = [
                ("len", "\(f.len)"), ("pkt_type", "\(f.pktType)"), ("mark", "\(f.mark)"),
                ("queue_mapping", "\(f.queueMapping)"),
                ("protocol", "\(f.protocol)"), ("vlan_present", "\(f.vlanPresent)"), ("vlan_tci", "\(f.vlanTCI)"),
                ("vlan_proto", "\(f.vlanProto)"), ("priority", "\(f.priority)"),
                ("ingress_ifindex", "\(f.ingressIfindex)"),
                ("ifindex", "\(f.ifindex)"), ("tc_index", "\(f.tcIndex)"), ("hash", "\(f.hash)"),
                ("tc_classid", "\(f.tcClassid)"),
                ("napi_id", "\(f.napiID)"), ("tstamp", "\(f.tstamp)"),
            ]
            for (i, value) in f.cb.enumerated() { fields.append(("cb\(i)", "\(value)")) }
            members.append(("fields", object(fields)))
            if let tag = result.vlanTag {
                members.append(("vlan", object([("proto", "\(tag.proto)"), ("tci", "\(tag.tci)")])))
            }
        } else {
            members.append(("type", quote("generic")))
        }
        members.append(("trace", "[" + (state?.traceOutput ?? []).map(quote).joined(separator: ",") + "]"))
        members.append(("warnings", "[" + (state?.warnings ?? []).map(quote).joined(separator: ",") + "]"))
        return object(members)
    }

    static func json(_ redirect: Redirect) -> String {
        var members: [(String, String)] = [("description", quote(redirect.description))]
        if let ifindex = redirect.ifindex { members.append(("ifindex", "\(ifindex)")) }
        switch redirect {
        case .interface(_, let flags):
            members.append(("flags", "\(flags)"))
        case .map(let target):
            members.append(("map", quote(target.mapName)))
            members.append(("key", "\(target.key)"))
        }
        return object(members)
    }

    static func object(_ members: [(String, String)]) -> String {
        "{" + members.map { quote($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
    }

    /// A JSON string literal.
    static func quote(_ text: String) -> String { JSONValue.quote(text) }
}
