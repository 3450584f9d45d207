// Fuzzes `Endpoint(parsing:)`, which reads `--listen`, every BACKEND argument and the BACKEND of
// admin commands, with and without `allowPortZero`.
//
// Properties: parsing never traps; a refusal names the problem (not empty); an accepted endpoint
// has a non-empty host, a port allowed by the call, an `address` exactly when the host is an IP
// literal, and reads back from its description as itself; whatever is accepted without port 0
// is also accepted with it.
import FuzzSupport
import SwitchyardCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEndpoint(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = fuzzText(data, size)
    let strict: Endpoint?
    do {
        strict = try Endpoint(parsing: text)
    } catch {
        fuzzCheck(!error.message.isEmpty, "empty refusal for \(text.debugDescription)")
        strict = nil
    }
    let lenient = try? Endpoint(parsing: text, allowPortZero: true)
    if let strict {
        fuzzCheck(strict.port != 0, "accepted port 0 without allowPortZero: \(text.debugDescription)")
        fuzzCheck(lenient == strict, "allowPortZero changed the result for \(text.debugDescription)")
    }
    if let endpoint = lenient {
        fuzzCheck(!endpoint.host.isEmpty, "empty host from \(text.debugDescription)")
        fuzzCheck(endpoint.address == IPAddress(endpoint.host), "address does not match host \(endpoint.host.debugDescription)")
        let again = try? Endpoint(parsing: endpoint.description, allowPortZero: true)
        fuzzCheck(again == endpoint, "\(text.debugDescription) parsed to \(endpoint), which reads back as \(String(describing: again))")
    }
    // The address parser on its own: whatever it accepts prints as text it accepts again, to
    // the same bytes (IPv6 in RFC 5952 form).
    if let address = IPAddress(text) {
        fuzzCheck(address.bytes.count == (address.isIPv6 ? 16 : 4), "address \(address) has \(address.bytes.count) bytes")
        fuzzCheck(IPAddress(address.description) == address, "address \(text.debugDescription) prints as \(address), which reads back differently")
    }
    return 0
}

runLibFuzzer(fuzzEndpoint)
