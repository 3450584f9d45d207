/// Date arithmetic for a certificate's `notAfter`: OpenSSL hands it over as a broken-down UTC
/// time (ASN1_TIME_to_tm(3)); the health checker keeps it as seconds since the Unix epoch and
/// the metrics export the seconds left (`switchyard_backend_certificate_expiry_seconds`).
public enum CertificateExpiry {
    /// Seconds from 1970-01-01T00:00:00Z to a UTC calendar time of the proleptic Gregorian
    /// calendar (`month` 1 to 12, `day` 1 to 31). Negative before 1970.
    /// Howard Hinnant's `days_from_civil` (http://howardhinnant.github.io/date_algorithms.html).
    public static func secondsSinceEpoch(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) -> Int64 {
        let shifted = month <= 2 ? year - 1 : year
        let era = (shifted >= 0 ? shifted : shifted - 399) / 400
        let yearOfEra = shifted - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = Int64(era) * 146_097 + Int64(dayOfEra) - 719_468
        return days * 86_400 + Int64(hour) * 3600 + Int64(minute) * 60 + Int64(second)
    }

    /// `2026-12-05T08:00:00Z` for seconds since the Unix epoch (the access log's calendar).
    public static func timestamp(_ seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let within = seconds - days * 86_400
        let (year, month, day) = AccessLogFormat.civilDate(daysSinceEpoch: days)
        func two(_ value: some BinaryInteger) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(year)-\(two(month))-\(two(day))T\(two(within / 3600)):\(two(within / 60 % 60)):\(two(within % 60))Z"
    }

    /// For a check's text: `expires in 29d`, `expires in 23h`, `expires in 5m`, or
    /// `expired 2d ago`; whole units, rounded down.
    public static func describe(notAfter: Int64, now: Int64) -> String {
        let left = notAfter - now
        let span = left.magnitude
        let text = switch span {
        case 172_800...: "\(span / 86_400)d"
        case 3600...: "\(span / 3600)h"
        case 60...: "\(span / 60)m"
        default: "\(span)s"
        }
        return left >= 0 ? "expires in \(text)" : "expired \(text) ago"
    }
}
