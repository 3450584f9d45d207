// Fuzzes the admin protocol's command line: `AdminCommand(parsing:)` with one line as the admin
// server hands it over (bytes up to the newline, invalid UTF-8 replaced).
//
// Properties: parsing never traps; a refusal is one line (it is sent back as the reply's status
// line, so a line break would forge reply lines); an accepted line is printable ASCII; an
// accepted backend reads back as itself.
import FuzzSupport
import SwitchyardCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAdminCommand(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let line = fuzzText(data, size)
    let command: AdminCommand
    do {
        command = try AdminCommand(parsing: line)
    } catch {
        fuzzCheck(isOneLine(error.message), "refusal is not one line: \(error.message.debugDescription)")
        return 0
    }
    var text = Substring(line)
    if text.hasSuffix("\r") { text = text.dropLast() }
    fuzzCheck(
        text.unicodeScalars.allSatisfy { $0 == "\t" || (0x20..<0x7F).contains($0.value) },
        "accepted a line that is not printable ASCII: \(line.debugDescription)")
    // Commands added later fall under `default` and get the checks above.
    switch command {
    case let .drain(name), let .ready(name), let .maint(name), let .remove(name), let .shutdown(name):
        checkRoundTrip(name)
    case let .weight(name, weight):
        checkRoundTrip(name)
        fuzzCheck((0...BackendSpec.maximumWeight).contains(weight), "weight \(weight) out of range")
    case let .wait(name, timeout):
        checkRoundTrip(name)
        fuzzCheck(timeout >= .zero && timeout <= AdminCommand.maximumWait, "wait timeout \(timeout) out of range")
    case let .add(_, spec):
        fuzzCheck((try? BackendSpec(parsing: spec.description)) == spec, "added backend \(spec) does not read back")
    default:
        break
    }
    return 0
}

private func checkRoundTrip(_ name: BackendName) {
    fuzzCheck(name.endpoint.port != 0, "accepted port 0 for \(name)")
    fuzzCheck((try? BackendName(parsing: name.description)) == name, "backend \(name) does not read back")
}

runLibFuzzer(fuzzAdminCommand)
