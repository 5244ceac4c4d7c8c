import MimicCore
import MimicMemory

/// An emulator's network (`LinuxConfiguration.network`) with what the helpers look up in it
/// prepared once: routing tables and devices by ifindex. Immutable; shared by every process.
final class NetworkState: Sendable {
    let network: Network
    let routing: RoutingTables
    private let byIndex: [UInt32: Network.Interface]

    /// What `Network.check()` finds wrong with the description, or nil.
    let problem: String?
    /// The conntrack table the conntrack kfuncs read and insert into (`network.conntrack` first).
    let conntrack: Conntrack

    init(_ network: Network) {
        self.network = network
        do {
            try network.check()
            problem = nil
        } catch {
            problem = "\(error)"
        }
        routing = RoutingTables(network)
        conntrack = Conntrack(network.conntrack)
        var byIndex: [UInt32: Network.Interface] = [:]
        for interface in network.interfaces { byIndex[interface.ifindex] = interface }
        self.byIndex = byIndex
    }

    func interface(_ ifindex: UInt32) -> Network.Interface? { byIndex[ifindex] }

    /// Fails a helper when the description is invalid (`Network.check()`), so a description built
    /// in Swift without checking cannot give wrong answers.
    func requireValid(_ call: HelperCall) throws(HelperFailure) {
        if let problem { throw .message("\(call.name): the network description is invalid: \(problem)") }
    }

    /// The device a context arrived on: `xdp_md.ingress_ifindex` / `__sk_buff.ifindex`, where 0
    /// is loopback (ifindex 1), as the kernel's test run receives on it. A context's device the
    /// description does not list is taken as an Ethernet device of MTU 1500 without addresses
    /// (so a context naming any ifindex still runs).
    func currentDevice(_ ifindex: UInt32) -> Network.Interface {
        let index = ifindex == 0 ? 1 : ifindex
        if let known = byIndex[index] { return known }
        if index == 1 { return Network.Interface.loopback }
        return Network.Interface(ifindex: index, name: "if\(index)", mac: [0, 0, 0, 0, 0, 0])
    }

    /// `__dev_via_ifindex`: 0 is the current device, others must exist.
    func device(_ ifindex: UInt32, current: UInt32) -> Network.Interface? {
        if ifindex == 0 || ifindex == (current == 0 ? 1 : current) { return currentDevice(current) }
        return byIndex[ifindex]
    }

    /// The valid neighbour entry for `address` on device `ifindex`, as `__ipv4_neigh_lookup_noref`
    /// / `__ipv6_neigh_lookup_noref` find it (IPv4 on loopback looks up 0.0.0.0).
    func neighbour(_ address: [UInt8], on device: Network.Interface) -> Network.Neighbour? {
        let key = device.isLoopback && address.count == 4 ? [0, 0, 0, 0] : address
        return network.neighbours.first { $0.ifindex == device.ifindex && $0.address == key && $0.state.isValid }
    }
}

/// The sockets and tunnel metadata one run holds: references the program took with the socket
/// lookups (each must be released before the program exits, as the verifier demands), the VM
/// addresses of the socket structs it was given, and the tunnel metadata `bpf_skb_set_tunnel_key`
/// set.
final class SocketReferences {
    /// The `struct bpf_sock` region of each network socket the run was given, by socket index.
    var sockAddresses: [Int: UInt64] = [:]
    /// The `struct bpf_tcp_sock` region of each TCP socket, by socket index.
    var tcpAddresses: [Int: UInt64] = [:]
    /// Socket index by `struct bpf_sock` address.
    var socketAt: [UInt64: Int] = [:]
    /// References held, by `struct bpf_sock` address.
    var held: [UInt64: Int] = [:]
    /// The `struct bpf_sock` address of the socket each `struct bpf_tcp_sock` or `bpf_skc_to_*`
    /// address belongs to (such a pointer carries its socket's reference).
    var tcpOwner: [UInt64: UInt64] = [:]
    /// Sockets a socket map lookup gave that the network does not list (a context's own
    /// socket a `sock_ops` program added), by `struct bpf_sock` address.
    var mapped: [UInt64: MappedSocket] = [:]

    /// A description of what is still held, or nil.
    func unreleased(in network: Network) -> String? {
        let open = held.filter { $0.value > 0 }.sorted { $0.key < $1.key }
        guard !open.isEmpty else { return nil }
        let names = open.map { address, count in
            let socket = socketAt[address].map { network.sockets[$0] }
            let text =
                socket.map { "\($0.transport.rawValue) socket \(Network.endpointText($0.localAddress, $0.localPort))" }
                ?? "socket"
            return "\(text) (cookie \(socket?.cookie ?? 0))\(count > 1 ? " ×\(count)" : "")"
        }
        return
            "the program exited holding a reference to \(names.joined(separator: ", ")) from a socket lookup; release it with bpf_sk_release (the kernel's verifier refuses the program: \"Unreleased reference\")"
    }
}

extension Network {
    /// `10.0.0.1:80`, `[2001:db8::1]:80`.
    static func endpointText(_ address: [UInt8], _ port: UInt16) -> String {
        if address.count == 4 { return "\(address.map(String.init).joined(separator: ".")):\(port)" }
        let words = stride(from: 0, to: 16, by: 2).map {
            String(UInt16(address[$0]) << 8 | UInt16(address[$0 + 1]), radix: 16)
        }
        return "[\(words.joined(separator: ":"))]:\(port)"
    }
}
