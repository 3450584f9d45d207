// Fuzzes `Duration(parsing:)`: every duration flag (`--connect-timeout`, `--health-interval`…)
// and the TIMEOUT of the admin `wait` command.
//
// Properties: parsing never traps; a refusal is one line naming the text; an accepted duration
// is from zero to 366 days; its whole milliseconds, written `Nms`, read back to the same whole
// milliseconds; the derived views (`milliseconds`, `nanosecondsClamped`, `shortDescription`)
// never trap.
import FuzzSupport
import SwitchyardCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDuration(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = fuzzText(data, size)
    let duration: Duration
    do {
        duration = try Duration(parsing: text)
    } catch {
        fuzzCheck(!error.message.isEmpty, "empty refusal for \(text.debugDescription)")
        return 0
    }
    fuzzCheck(duration >= .zero && duration <= .seconds(366 * 86_400), "\(text.debugDescription) parsed to \(duration)")
    let milliseconds = duration.milliseconds
    fuzzCheck(duration.nanosecondsClamped >= 0, "negative nanoseconds from \(text.debugDescription)")
    fuzzCheck(!duration.shortDescription.isEmpty, "empty description of \(duration)")
    let again = try? Duration(parsing: "\(milliseconds)ms")
    fuzzCheck(again?.milliseconds == milliseconds, "\(milliseconds)ms does not read back (from \(text.debugDescription))")
    return 0
}

runLibFuzzer(fuzzDuration)
