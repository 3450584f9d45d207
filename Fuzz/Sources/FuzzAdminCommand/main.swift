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
    switch command {
    case let .drain(endpoint), let .ready(endpoint), let .maint(endpoint), let .remove(endpoint),
         let .shutdown(endpoint):
        checkRoundTrip(endpoint)
    case let .weight(endpoint, weight):
        checkRoundTrip(endpoint)
        fuzzCheck((0...BackendSpec.maximumWeight).contains(weight), "weight \(weight) out of range")
    case let .wait(endpoint, timeout):
        checkRoundTrip(endpoint)
        fuzzCheck(timeout >= .zero && timeout <= AdminCommand.maximumWait, "wait timeout \(timeout) out of range")
    case let .add(spec):
        fuzzCheck((try? BackendSpec(parsing: spec.description)) == spec, "added backend \(spec) does not read back")
    case .help, .showBackends, .showStats:
        break
    }
    return 0
}

private func checkRoundTrip(_ endpoint: Endpoint) {
    fuzzCheck(endpoint.port != 0, "accepted port 0 for \(endpoint)")
    fuzzCheck((try? Endpoint(parsing: endpoint.description)) == endpoint, "backend \(endpoint) does not read back")
}

runLibFuzzer(fuzzAdminCommand)
