import MimicPcap

/// pcap and pcapng: read every packet of a capture.
func fuzzOne(_ bytes: [UInt8]) {
    _ = try? PcapReader.readAll(bytes)
}
