extension Duration {
    /// Parses `500ms`, `2s`, `1.5s`, `1m`, `1h` or `0` (only zero may omit its unit).
    /// Throws a `ConfigError` naming the text otherwise.
    ///
    /// The whole part is counted exactly in nanoseconds, so `N` of a unit is exactly N of it
    /// (a product in `Double` is off by a few nanoseconds past about 100 days, and then `Nms`
    /// read back as N - 1 whole milliseconds); only a fraction is rounded, to the nanosecond.
    public init(parsing text: String) throws(ConfigError) {
        if text == "0" { self = .zero; return }
        let units: [(suffix: String, nanoseconds: Int64)] = [
            ("ms", 1_000_000), ("us", 1_000), ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000),
        ]
        let limit: Int64 = 366 * 86_400 * 1_000_000_000
        for unit in units where text.hasSuffix(unit.suffix) {
            let number = text.dropLast(unit.suffix.count)
            // "m" must not swallow "ms": the loop tries "ms" first, and "1ms".dropLast(1) is "1m".
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
                  Double(number) != nil else {
                continue
            }
            // Double accepted it, so it is digits with at most one point ("1.", ".5" included).
            let point = number.firstIndex(of: ".") ?? number.endIndex
            let wholeDigits = number[..<point].drop(while: { $0 == "0" })
            guard wholeDigits.count <= 18, let whole = wholeDigits.isEmpty ? 0 : Int64(wholeDigits),
                  whole <= limit / unit.nanoseconds else {
                continue
            }
            var total = whole * unit.nanoseconds
            let fractionDigits = point < number.endIndex ? number[number.index(after: point)...] : ""
            if !fractionDigits.isEmpty, let fraction = Double("0." + fractionDigits) {
                total += Int64((fraction * Double(unit.nanoseconds)).rounded())
            }
            guard total <= limit else { continue }
            self = .nanoseconds(total)
            return
        }
        throw ConfigError("'\(text)' is not a duration: use a number with ms, s, m or h, such as 500ms or 2s")
    }

    /// Whole milliseconds, rounded down.
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// Whole nanoseconds, saturating.
    public var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? Int64.max : product + attoseconds / 1_000_000_000
    }

    /// `1.5s`-style text for logs and admin replies.
    public var shortDescription: String {
        let ms = milliseconds
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }
}
