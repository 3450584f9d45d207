// Fuzzes the YAML configuration file reader, `ConfigFile.parse(_:file:)`.
//
// Properties: parsing never traps; a refusal points into the file (line and column from 1, the
// line at most one past the last) and says something; an accepted file yields at least one
// service, each with a listener and a backend.
import FuzzSupport
import SwitchyardCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfigFile(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = fuzzText(data, size)
    do {
        let configuration = try ConfigFile.parse(text, file: "fuzz.yaml")
        fuzzCheck(!configuration.services.isEmpty, "accepted a file without services: \(text.debugDescription)")
    } catch {
        // YAML breaks lines at CR and LF alike (a CR LF pair once), and YAML 1.1 at NEL, LS and
        // PS too; Character.isNewline counts all of those (and VT, FF), so this is a bound.
        let lines = text.reduce(1) { $0 + ($1.isNewline ? 1 : 0) }
        fuzzCheck(error.line >= 1 && error.column >= 1 && error.line <= lines + 1,
                  "error at \(error.line):\(error.column) in a file of at most \(lines) lines: \(error.message)")
        fuzzCheck(!error.message.isEmpty, "empty error message for \(text.debugDescription)")
    }
    return 0
}

runLibFuzzer(fuzzConfigFile)
