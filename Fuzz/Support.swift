// Shared by every harness of Fuzz/ (built by Scripts/fuzz.sh, never part of the products).
// Each harness defines `fuzzOne(_ bytes: [UInt8])`; a Swift trap or an AddressSanitizer report is
// a crash, which libFuzzer saves under Fuzz/crashes/<target>/.

@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    fuzzOne(bytes)
    return 0
}

/// The instruction limit of fuzzed runs: enough for loops to matter, small enough to keep
/// thousands of executions a second.
let fuzzInstructionLimit: UInt64 = 10_000
