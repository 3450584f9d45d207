// Fuzzes `HealthCheckConfig.decodeEscapes`, which decodes `--health-send` and `--health-expect`.
//
// Properties: decoding never traps; a refusal is not empty; text without a backslash decodes to
// its own UTF-8; any bytes written back with escapes (`\\`, `\xHH` for the rest of what is not
// printable ASCII) decode to the same bytes.
import FuzzSupport
import SwitchyardCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHealthEscapes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = fuzzText(data, size)
    do {
        let bytes = try HealthCheckConfig.decodeEscapes(text)
        if !text.utf8.contains(UInt8(ascii: "\\")) {
            fuzzCheck(bytes == Array(text.utf8), "text without escapes changed: \(text.debugDescription)")
        }
        fuzzCheck(bytes.count <= text.utf8.count, "decoding grew \(text.utf8.count) bytes to \(bytes.count)")
    } catch {
        fuzzCheck(!error.message.isEmpty, "empty refusal for \(text.debugDescription)")
    }
    // The raw input bytes as an operator would have to type them.
    let raw = fuzzBytes(data, size)
    let escaped = escape(raw)
    let decoded = try? HealthCheckConfig.decodeEscapes(escaped)
    fuzzCheck(decoded == raw, "\(escaped.debugDescription) does not decode back to its \(raw.count) bytes")
    return 0
}

/// `bytes` as escape text: printable ASCII as itself (the backslash doubled), the rest `\xHH`.
private func escape(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var text: [UInt8] = []
    for byte in bytes {
        switch byte {
        case UInt8(ascii: "\\"): text += [byte, byte]
        case 0x20..<0x7F: text.append(byte)
        default: text += [UInt8(ascii: "\\"), UInt8(ascii: "x"), digits[Int(byte >> 4)], digits[Int(byte & 0xF)]]
        }
    }
    return String(decoding: text, as: UTF8.self)
}

runLibFuzzer(fuzzHealthEscapes)
