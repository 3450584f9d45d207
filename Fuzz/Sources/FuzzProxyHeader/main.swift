// Fuzzes the PROXY protocol v1/v2 header reader, the first bytes a `proxy-protocol: accept`
// listener reads from a client. `ProxyHeader.fuzz(_:)` parses the bytes and checks its own
// properties (prefixes agree with the whole, pieces agree with one parse, a complete header
// re-parses and re-encodes to itself), trapping if one fails.
import FuzzSupport
import SwitchyardCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProxyHeader(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    _ = ProxyHeader.fuzz(fuzzBytes(data, size))
    return 0
}

runLibFuzzer(fuzzProxyHeader)
