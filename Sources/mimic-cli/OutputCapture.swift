#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import MimicPcap

/// The `--out` capture of `mimic run --pcap`, built in one allocation sized once from the input:
/// the file header, then one slot per input packet at a fixed offset, as large as the packet's
/// record unchanged. A packet that leaves alive writes its record into its own slot (from any
/// thread: slots do not overlap), so workers write straight into the file at their packets'
/// places, in parallel, with no buffer of their own, no growth and no merge copy. ``finish()``
/// then closes the gaps (packets dropped, records that shrank) in one pass, in place.
///
/// The memory is mapped anonymously and asked for huge pages, so building the file takes a few
/// page faults rather than one per 4 KiB. A record larger than its slot (a program grew the
/// packet) is kept aside by its `OutputRecords` and placed by ``finish()``.
///
/// Each writer notes the lengths of the records it wrote in an array of its own: the packets of
/// two workers interleave in the capture, so one shared array would have both threads write the
/// same cache lines for nearly every packet.
final class OutputCapture: @unchecked Sendable {
    /// The mapped memory: header, then the slots, then `slots` and each writer's `lengths`.
    private let storage: UnsafeMutableRawPointer
    private let mappedSize: Int
    /// `slots[i]`: the offset of packet i's slot; `slots[count]`: the end of the last one.
    private let slots: UnsafeMutableBufferPointer<Int>
    /// `lengths[w][i]`: the bytes of packet i's record in its slot when writer w wrote it, else
    /// 0; `OutputRecords.grownMark` when its record is kept aside.
    private let lengths: [UnsafeMutableBufferPointer<Int32>]
    private let nanosecond: Bool
    /// The file once ``finish()`` has run: `storage`'s first `byteCount` bytes, or `grownFile`.
    private var byteCount = 0
    private var grownFile: [UInt8]?
    /// The packets written, once ``finish()`` has run.
    private(set) var packetCount = 0

    /// Room for the records of `count` packets, packet i's slot `slotSize(i)` bytes (its record
    /// unchanged: `PcapWriter.recordHeaderSize` plus its captured length), after `header` (a
    /// `PcapWriter`'s file header, whose resolution every record takes), written by `writers`
    /// writers (`records(writer:)`).
    init(header: PcapWriter, count: Int, writers: Int = 1, slotSize: (Int) -> Int) throws(RuntimeError) {
        nanosecond = header.nanosecond
        var fileSize = header.byteCount
        for index in 0..<count { fileSize += slotSize(index) }
        // One mapping: the file, then (8-byte aligned) the slots' offsets, then each writer's
        // records' lengths (each array on a cache line pair of its own).
        let slotsOffset = (fileSize + 7) & ~7
        let lengthsOffset = (slotsOffset + (count + 1) * MemoryLayout<Int>.stride + 127) & ~127
        let lengthsStride = (max(count, 1) * MemoryLayout<Int32>.stride + 127) & ~127
        let writers = max(writers, 1)
        mappedSize = lengthsOffset + writers * lengthsStride
        let mapped = mmap(nil, mappedSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let mapped, mapped != MAP_FAILED else {
            throw RuntimeError(
                "--out: cannot allocate \(mappedSize) bytes for the output capture (\(String(cString: strerror(errno))))")
        }
        storage = mapped
        #if canImport(Glibc)
            // Huge pages where the kernel has them to give: a fault per 2 MiB, not per 4 KiB. Only
            // advice; without it the memory works as well.
            _ = madvise(storage, mappedSize, MADV_HUGEPAGE)
        #endif
        // Anonymous memory is zero-filled: every length starts at 0 (no record).
        slots = UnsafeMutableBufferPointer(
            start: (storage + slotsOffset).bindMemory(to: Int.self, capacity: count + 1), count: count + 1)
        lengths = (0..<writers).map { writer in
            UnsafeMutableBufferPointer(
                start: (mapped + lengthsOffset + writer * lengthsStride).bindMemory(to: Int32.self, capacity: count),
                count: count)
        }
        var offset = header.byteCount
        for index in 0..<count {
            slots[index] = offset
            offset += slotSize(index)
        }
        slots[count] = offset
        header.bytes.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress { storage.copyMemory(from: base, byteCount: bytes.count) }
        }
    }

    deinit {
        munmap(storage, mappedSize)
    }

    /// Writer `writer`'s records into this capture's slots (`writer` below the `writers` it was
    /// made for), for one thread (all may write at once, each packet's record written by one).
    func records(writer: Int = 0) -> OutputRecords {
        OutputRecords(
            storage: storage, slots: UnsafeBufferPointer(slots), lengths: lengths[writer], nanosecond: nanosecond)
    }


    /// Makes the file of the records written: `records` are the writers used, whose records kept
    /// aside are placed here. Closes the gaps in place (one pass, runs of whole slots moved at
    /// once), unless a record was kept aside: then the file is built anew, in capture order.
    func finish(_ records: [OutputRecords]) {
        let count = slots.count - 1
        // Every writer's lengths in the first writer's array: each packet's record was written by
        // one writer at most, whose entry is the only one that is not 0, so an OR of the entries
        // is that writer's (a loop the compiler vectorizes).
        let lengths = self.lengths[0]
        for other in self.lengths.dropFirst() {
            for index in 0..<count { lengths[index] |= other[index] }
        }
        let grown = records.flatMap(\.grown)
        if grown.isEmpty {
            var end = slots[0] // the header's end: where the next record goes
            var runStart = end // the run of records not yet moved: slots[runStart...]
            var runLength = 0
            func flush() {
                if runLength > 0, runStart != end { memmove(storage + end, storage + runStart, runLength) }
                end += runLength
                runLength = 0
            }
            for index in 0..<count {
                let length = Int(lengths[index])
                guard length > 0 else { continue }
                packetCount += 1
                if slots[index] != runStart + runLength {
                    flush()
                    runStart = slots[index]
                }
                runLength += length
                // A record shorter than its slot ends the run: the next starts after a gap.
                if length != slots[index + 1] - slots[index] {
                    flush()
                    runStart = slots[index + 1]
                }
            }
            flush()
            byteCount = end
        } else {
            let aside = Dictionary(grown.map { ($0.index, $0.record) }, uniquingKeysWith: { first, _ in first })
            var file = [UInt8](UnsafeRawBufferPointer(start: storage, count: slots[0]))
            for index in 0..<count {
                let length = Int(lengths[index])
                if length == Int(OutputRecords.grownMark), let record = aside[index] {
                    file += record
                } else if length > 0 {
                    file.append(contentsOf: UnsafeRawBufferPointer(start: storage + slots[index], count: length))
                } else {
                    continue
                }
                packetCount += 1
            }
            grownFile = file
        }
    }

    /// Writes the file (after ``finish()``) to `path` (`-`: standard output), as `Input.write`.
    func write(to path: String) throws(RuntimeError) {
        if let grownFile {
            try Input.write(grownFile, to: path)
        } else {
            try Input.write(UnsafeRawBufferPointer(start: storage, count: byteCount), to: path)
        }
    }
}

/// One thread's writer into an ``OutputCapture``: plain pointers into the capture's memory (no
/// reference counted per packet), and the records kept aside that outgrew their slots.
struct OutputRecords {
    fileprivate let storage: UnsafeMutableRawPointer
    fileprivate let slots: UnsafeBufferPointer<Int>
    fileprivate let lengths: UnsafeMutableBufferPointer<Int32>
    fileprivate let nanosecond: Bool
    /// Records larger than their packet's slot, by packet index.
    fileprivate private(set) var grown: [(index: Int, record: [UInt8])] = []

    /// `lengths`' mark of a record kept aside.
    fileprivate static let grownMark: Int32 = -1

    /// Writes packet `index`'s record: `data` captured at `timestamp`, `originalLength` bytes
    /// on the wire (written as at least `data.count`).
    mutating func write(_ data: UnsafeRawBufferPointer, index: Int, timestamp: UInt64, originalLength: UInt32) {
        let size = PcapWriter.recordHeaderSize + data.count
        if size <= slots[index + 1] - slots[index] {
            PcapWriter.storeRecord(
                data, timestamp: timestamp, originalLength: originalLength, nanosecond: nanosecond,
                at: storage + slots[index])
            lengths[index] = Int32(size)
        } else {
            let record = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
                if let base = buffer.baseAddress {
                    PcapWriter.storeRecord(
                        data, timestamp: timestamp, originalLength: originalLength, nanosecond: nanosecond,
                        at: UnsafeMutableRawPointer(base))
                }
                initialized = size
            }
            grown.append((index, record))
            lengths[index] = Self.grownMark
        }
    }
}
