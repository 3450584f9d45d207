/// How an access-log line is written (`--access-log-format text|json`). One line per connection,
/// ended by `\n`, written when the connection closes.
///
/// `text`, modelled on HAProxy's `option tcplog`, thirteen fields separated by one space:
///
/// ```
/// 2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/10.0.0.5:6379 0.215/5007.113 212/1024 0 client_close - - - - -
/// ```
///
/// 1. accept time, UTC, RFC 3339 with milliseconds;
/// 2. client `ADDR:PORT` (`[ADDR]:PORT` for IPv6);
/// 3. listener `HOST:PORT` as configured;
/// 4. `SERVICE/BACKEND`, the backend as `show backends` names it, `-` if none was connected;
/// 5. `Tc/Tt`: backend connect time / session duration in milliseconds (`-` for Tc when no
///    connect succeeded);
/// 6. bytes from the client / bytes to the client;
/// 7. connect retries;
/// 8. termination cause (`TerminationCause.label`);
/// 9. TLS server name (SNI), `-` when none;
/// 10. to 13. for a terminated TLS session: its version, cipher, ALPN protocol and the client
///    certificate's subject (`-` when not terminated, or none).
///
/// HAProxy's tcplog reads `client [accept_date] frontend backend/server Tw/Tc/Tt bytes_read
/// termination_state ...`; this line keeps that order, drops the queue fields Switchyard does not
/// have, gives bytes both ways and the cause as a word. No field contains a space: any byte of
/// a name outside printable ASCII, a space, `"` or `\` is written `\xHH`.
///
/// `json`, one RFC 8259 object per line, keys in this order (absent values are `null`):
///
/// ```
/// {"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,
///  "listener":"127.0.0.1:6379","service":"default","backend":"10.0.0.5:6379","connect_ms":0.215,
///  "duration_ms":5007.113,"bytes_from_client":212,"bytes_to_client":1024,"retries":0,
///  "cause":"client_close","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,
///  "client_subject":null}
/// ```
public enum AccessLogFormat: String, CaseIterable, Sendable {
    case text
    case json

    /// The line for `record`, `\n` included.
    public func line(for record: AccessLogRecord) -> String {
        var bytes: [UInt8] = []
        append(record, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the line for `record` (`\n` included) to `buffer`; the writer reuses one buffer.
    public func append(_ record: AccessLogRecord, to buffer: inout [UInt8]) {
        switch self {
        case .text: Self.appendText(record, to: &buffer)
        case .json: Self.appendJSON(record, to: &buffer)
        }
    }

    private static func appendText(_ record: AccessLogRecord, to out: inout [UInt8]) {
        appendTimestamp(record.acceptedAtNanoseconds, to: &out)
        out.append(0x20)
        out.append(contentsOf: record.client.text.utf8)
        out.append(0x20)
        appendField(record.listener, to: &out)
        out.append(0x20)
        appendField(record.service, to: &out)
        out.append(UInt8(ascii: "/"))
        appendField(record.backend, to: &out)
        out.append(0x20)
        if let connect = record.connectNanoseconds {
            appendMilliseconds(connect, to: &out)
        } else {
            out.append(UInt8(ascii: "-"))
        }
        out.append(UInt8(ascii: "/"))
        appendMilliseconds(record.durationNanoseconds, to: &out)
        out.append(0x20)
        out.append(contentsOf: "\(record.bytesFromClient)/\(record.bytesToClient) \(record.retries) ".utf8)
        out.append(contentsOf: record.cause.label.utf8)
        out.append(0x20)
        appendField(record.serverName, to: &out)
        for field in [record.tls?.version, record.tls?.cipher, record.tls?.alpn, record.tls?.clientSubject] {
            out.append(0x20)
            appendField(field, to: &out)
        }
        out.append(0x0A)
    }

    private static func appendJSON(_ record: AccessLogRecord, to out: inout [UInt8]) {
        out.append(contentsOf: "{\"time\":\"".utf8)
        appendTimestamp(record.acceptedAtNanoseconds, to: &out)
        out.append(contentsOf: "\",\"client_address\":\"\(record.client.addressText)\",\"client_port\":\(record.client.port)".utf8)
        out.append(contentsOf: ",\"listener\":\(JSONText.string(record.listener))".utf8)
        out.append(contentsOf: ",\"service\":\(JSONText.string(record.service))".utf8)
        out.append(contentsOf: ",\"backend\":\(record.backend.map(JSONText.string) ?? "null")".utf8)
        out.append(contentsOf: ",\"connect_ms\":".utf8)
        if let connect = record.connectNanoseconds {
            appendMilliseconds(connect, to: &out)
        } else {
            out.append(contentsOf: "null".utf8)
        }
        out.append(contentsOf: ",\"duration_ms\":".utf8)
        appendMilliseconds(record.durationNanoseconds, to: &out)
        out.append(contentsOf: ",\"bytes_from_client\":\(record.bytesFromClient),\"bytes_to_client\":\(record.bytesToClient)".utf8)
        out.append(contentsOf: ",\"retries\":\(record.retries),\"cause\":\"\(record.cause.label)\"".utf8)
        out.append(contentsOf: ",\"server_name\":\(record.serverName.map(JSONText.string) ?? "null")".utf8)
        out.append(contentsOf: ",\"tls_version\":\(record.tls.map { JSONText.string($0.version) } ?? "null")".utf8)
        out.append(contentsOf: ",\"tls_cipher\":\(record.tls.map { JSONText.string($0.cipher) } ?? "null")".utf8)
        out.append(contentsOf: ",\"alpn\":\(record.tls?.alpn.map(JSONText.string) ?? "null")".utf8)
        out.append(contentsOf: ",\"client_subject\":\(record.tls?.clientSubject.map(JSONText.string) ?? "null")}\n".utf8)
    }

    /// A name with no space in it: `-` when nil or empty; bytes outside `!`...`~`, `"` and `\`
    /// become `\xHH`, so a hostile server name cannot forge fields or lines.
    private static func appendField(_ text: String?, to out: inout [UInt8]) {
        guard let text, !text.isEmpty else {
            out.append(UInt8(ascii: "-"))
            return
        }
        for byte in text.utf8 {
            if byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
                out.append(byte)
            } else {
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "x"), Hex.digits[Int(byte >> 4)], Hex.digits[Int(byte & 0xF)]])
            }
        }
    }

    /// `5007.113`: milliseconds with three decimals (microsecond resolution); negatives as 0.
    private static func appendMilliseconds(_ nanoseconds: Int64, to out: inout [UInt8]) {
        let microseconds = max(nanoseconds, 0) / 1000
        let fraction = microseconds % 1000
        out.append(contentsOf: "\(microseconds / 1000).".utf8)
        appendPadded(Int(fraction), width: 3, to: &out)
    }

    /// `2026-12-01T12:12:51.443Z` for nanoseconds since the Unix epoch (UTC, proleptic Gregorian).
    static func appendTimestamp(_ nanoseconds: Int64, to out: inout [UInt8]) {
        let milliseconds = nanoseconds >= 0 ? nanoseconds / 1_000_000 : (nanoseconds - 999_999) / 1_000_000
        let (days, millisecondOfDay) = floorDivision(milliseconds, 86_400_000)
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        appendPadded(Int(year), width: 4, to: &out)
        out.append(UInt8(ascii: "-"))
        appendPadded(month, width: 2, to: &out)
        out.append(UInt8(ascii: "-"))
        appendPadded(day, width: 2, to: &out)
        out.append(UInt8(ascii: "T"))
        let seconds = Int(millisecondOfDay / 1000)
        appendPadded(seconds / 3600, width: 2, to: &out)
        out.append(UInt8(ascii: ":"))
        appendPadded(seconds / 60 % 60, width: 2, to: &out)
        out.append(UInt8(ascii: ":"))
        appendPadded(seconds % 60, width: 2, to: &out)
        out.append(UInt8(ascii: "."))
        appendPadded(Int(millisecondOfDay % 1000), width: 3, to: &out)
        out.append(UInt8(ascii: "Z"))
    }

    private static func floorDivision(_ value: Int64, _ divisor: Int64) -> (Int64, Int64) {
        let quotient = value >= 0 ? value / divisor : -((-value + divisor - 1) / divisor)
        return (quotient, value - quotient * divisor)
    }

    /// Year, month (1...12) and day (1...31) of a day count since 1970-01-01, by Howard Hinnant's
    /// `civil_from_days` (http://howardhinnant.github.io/date_algorithms.html).
    static func civilDate(daysSinceEpoch: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = Int(dayOfYear - (153 * monthIndex + 2) / 5 + 1)
        let month = Int(monthIndex < 10 ? monthIndex + 3 : monthIndex - 9)
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func appendPadded(_ value: Int, width: Int, to out: inout [UInt8]) {
        let digits = Array(String(value).utf8)
        if digits.count < width { out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: width - digits.count)) }
        out.append(contentsOf: digits)
    }
}
