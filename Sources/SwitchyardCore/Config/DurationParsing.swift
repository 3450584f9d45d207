extension Duration {
    /// Parses `500ms`, `2s`, `1.5s`, `1m`, `1h` or `0` (only zero may omit its unit).
    /// Throws a `ConfigError` naming the text otherwise.
    public init(parsing text: String) throws(ConfigError) {
        if text == "0" { self = .zero; return }
        let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, seconds) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            // "m" must not swallow "ms": the loop tries "ms" first, and "1ms".dropLast(1) is "1m".
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
                  let value = Double(number), value.isFinite, value >= 0, value * seconds <= 366 * 86_400 else {
                continue
            }
            self = .nanoseconds(Int64((value * seconds * 1e9).rounded()))
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
