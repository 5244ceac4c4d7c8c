#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Checks a file is a whole ELF shared library before it is given to `dlopen`.
///
/// The dynamic loader maps a library's segments as its program headers describe them and trusts
/// the file to hold them: a truncated library is mapped past its end and touching it kills the
/// process with SIGBUS. So the ELF header and every program header's extent are checked
/// against the file's size first, and files that are ELF but not shared libraries (an eBPF
/// object, an executable, another machine's library) are named as such.
enum SharedLibraryFile {
    /// `EM_BPF`: the ELF machine of eBPF objects.
    static let bpfMachine: UInt16 = 247

    /// Why the file at `path` cannot be a loadable shared library, or nil when its headers are
    /// whole. Only ELF files are checked (other formats, such as Mach-O, go to the loader as is).
    static func problem(path: String) -> String? {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { return "cannot open it: \(String(cString: strerror(errno)))" }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            return "cannot read its size: \(String(cString: strerror(errno)))"
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else { return "it is not a regular file" }
        let size = UInt64(status.st_size)

        func read(_ count: Int, at offset: UInt64) -> [UInt8]? {
            var bytes = [UInt8](repeating: 0, count: count)
            let got = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, count, off_t(offset)) }
            return got == count ? bytes : nil
        }
        guard let ident = read(min(64, Int(size)), at: 0), ident.count >= 4 else {
            return "it is \(size) bytes, too short for an ELF header"
        }
        #if canImport(Darwin)
            guard ident.starts(with: [0x7F, 0x45, 0x4C, 0x46]) else { return nil } // Mach-O: the loader checks it
        #else
            guard ident.starts(with: [0x7F, 0x45, 0x4C, 0x46]) else {
                return "it is not an ELF file (it does not start with 0x7f 'ELF')"
            }
        #endif
        guard ident.count >= 20 else { return "the file is truncated: \(size) bytes, less than an ELF header" }
        let littleEndian = ident[5] == 1
        func u16(_ bytes: [UInt8], _ at: Int) -> UInt64 {
            littleEndian
                ? UInt64(bytes[at]) | UInt64(bytes[at + 1]) << 8 : UInt64(bytes[at]) << 8 | UInt64(bytes[at + 1])
        }
        func u32(_ bytes: [UInt8], _ at: Int) -> UInt64 {
            littleEndian ? u16(bytes, at) | u16(bytes, at + 2) << 16 : u16(bytes, at) << 16 | u16(bytes, at + 2)
        }
        func u64(_ bytes: [UInt8], _ at: Int) -> UInt64 {
            littleEndian ? u32(bytes, at) | u32(bytes, at + 4) << 32 : u32(bytes, at) << 32 | u32(bytes, at + 4)
        }
        let machine = UInt16(u16(ident, 18))
        if machine == bpfMachine {
            return
                "it is an eBPF object (ELF machine EM_BPF), not a shared library: eBPF objects are programs to run (`mimic run`), plugins are host libraries"
        }
        let type = u16(ident, 16)
        guard type == 3 else {
            let kind =
                [1: "a relocatable object (.o)", 2: "an executable", 4: "a core file"][Int(type)] ?? "ELF type \(type)"
            return "it is \(kind), not a shared library (ELF type ET_DYN)"
        }
        guard ident[4] == 2 else { return "it is a 32-bit ELF file; this host loads 64-bit libraries" }
        guard ident.count == 64 else { return "the file is truncated: \(size) bytes, less than the 64-byte ELF header" }
        let phoff = u64(ident, 32)
        let phentsize = u16(ident, 54)
        let phnum = u16(ident, 56)
        guard phnum > 0 else { return "it has no program headers, so there is nothing to load" }
        guard phentsize == 56 else { return "its program headers are \(phentsize) bytes each, not the 56 of ELF64" }
        let (tableEnd, overflow) = phoff.addingReportingOverflow(phnum * phentsize)
        guard !overflow, tableEnd <= size else {
            return
                "the file is truncated: it is \(size) bytes but its \(phnum) program headers end at byte \(overflow ? "beyond 2^64" : String(tableEnd))"
        }
        guard let table = read(Int(phnum * phentsize), at: phoff) else { return "cannot read its program headers" }
        for index in 0..<Int(phnum) {
            let base = index * 56
            let kind = u32(table, base)
            // PT_LOAD and PT_DYNAMIC are read from the file by the loader.
            guard kind == 1 || kind == 2 else { continue }
            let offset = u64(table, base + 8)
            let fileSize = u64(table, base + 32)
            let (end, overflow) = offset.addingReportingOverflow(fileSize)
            guard !overflow, end <= size else {
                let what = kind == 1 ? "loadable segment" : "dynamic section"
                return
                    "the file is truncated: it is \(size) bytes but its \(what) (program header \(index)) needs bytes up to \(overflow ? "beyond 2^64" : String(end))"
            }
        }
        return nil
    }
}
