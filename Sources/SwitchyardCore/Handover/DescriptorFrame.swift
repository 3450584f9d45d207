/// The frame in which descriptors and a payload travel over a UNIX stream socket.
///
/// On the wire: a 16-byte header, the payload, then one marker byte per batch of at most
/// `descriptorsPerBatch` descriptors, each marker sent by its own sendmsg(2) with the batch as
/// `SCM_RIGHTS`. The header:
///
///     bytes 0-3   "SWYF"
///     byte  4     version (1)
///     bytes 5-7   zero
///     bytes 8-11  descriptor count, big-endian
///     bytes 12-15 payload length, big-endian
///
/// The kernel refuses more than 253 descriptors in one message (`SCM_MAX_FD`), hence batches;
/// a receive that reads a marker gets that marker's descriptors and stops there (unix(7)), so a
/// receiver reading byte counts the header gives collects every batch and nothing more.
public enum DescriptorFrame {
    public static let magic: [UInt8] = Array("SWYF".utf8)
    public static let version: UInt8 = 1
    public static let headerLength = 16
    /// `SCM_MAX_FD` in the kernel (include/net/scm.h).
    public static let descriptorsPerBatch = 253
    /// Most descriptors one frame may carry (256 workers times 16 listeners).
    public static let maximumDescriptors = 4096
    public static let markerByte = UInt8(ascii: "F")

    public struct Header: Equatable, Sendable {
        public var descriptorCount: Int
        public var payloadLength: Int

        public init(descriptorCount: Int, payloadLength: Int) {
            self.descriptorCount = descriptorCount
            self.payloadLength = payloadLength
        }

        /// Marker bytes after the payload: one per batch of descriptors.
        public var batchCount: Int {
            (descriptorCount + DescriptorFrame.descriptorsPerBatch - 1) / DescriptorFrame.descriptorsPerBatch
        }

        public var bytes: [UInt8] {
            var result = DescriptorFrame.magic + [DescriptorFrame.version, 0, 0, 0]
            for value in [UInt32(descriptorCount), UInt32(payloadLength)] {
                result += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
            }
            return result
        }

        /// Decodes 16 header bytes and checks them against the receiver's limits. A peer that
        /// answered something else (an admin `ERROR:` line from a process that does not know
        /// the command) is named by the text it sent.
        public init(decoding bytes: [UInt8], maximumDescriptors: Int, maximumPayload: Int) throws(HandoverError) {
            guard bytes.count == DescriptorFrame.headerLength else {
                throw HandoverError("handover frame header is \(bytes.count) bytes, not \(DescriptorFrame.headerLength)")
            }
            guard Array(bytes[0..<4]) == DescriptorFrame.magic else {
                let text = String(bytes.map { $0 >= 0x20 && $0 < 0x7F ? Character(Unicode.Scalar($0)) : "." })
                throw HandoverError("the peer did not send a handover frame; it sent '\(text)...'")
            }
            guard bytes[4] == DescriptorFrame.version else {
                throw HandoverError("handover frame version \(bytes[4]) is not supported (this binary reads version \(DescriptorFrame.version))")
            }
            func word(_ offset: Int) -> Int {
                Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            }
            descriptorCount = word(8)
            payloadLength = word(12)
            guard descriptorCount <= maximumDescriptors else {
                throw HandoverError("handover frame carries \(descriptorCount) descriptors; at most \(maximumDescriptors) are accepted")
            }
            guard payloadLength <= maximumPayload else {
                throw HandoverError("handover frame payload is \(payloadLength) bytes; at most \(maximumPayload) are accepted")
            }
        }
    }
}
