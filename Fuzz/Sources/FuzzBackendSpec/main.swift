// Fuzzes `BackendSpec(parsing:)`: every BACKEND argument (`HOST:PORT[,weight=N]`) and `add`.
//
// Properties: parsing never traps; a refusal is not empty; an accepted backend has a weight from
// 0 to the maximum, a non-zero port, and reads back from its description as itself.
import FuzzSupport
import SwitchyardCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBackendSpec(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = fuzzText(data, size)
    let spec: BackendSpec
    do {
        spec = try BackendSpec(parsing: text)
    } catch {
        fuzzCheck(!error.message.isEmpty, "empty refusal for \(text.debugDescription)")
        return 0
    }
    fuzzCheck((0...BackendSpec.maximumWeight).contains(spec.weight), "weight \(spec.weight) out of range from \(text.debugDescription)")
    fuzzCheck(spec.endpoint.port != 0, "accepted port 0 from \(text.debugDescription)")
    fuzzCheck(spec.weightGiven || spec.weight == 1, "weight \(spec.weight) without weight= in \(text.debugDescription)")
    let again = try? BackendSpec(parsing: spec.description)
    fuzzCheck(again == spec, "\(text.debugDescription) parsed to \(spec), which reads back as \(String(describing: again))")
    return 0
}

runLibFuzzer(fuzzBackendSpec)
