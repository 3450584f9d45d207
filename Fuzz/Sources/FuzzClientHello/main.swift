// Fuzzes the TLS ClientHello reader that routing by SNI runs on a client's first bytes.
// `ClientHello.fuzz(_:)` reads the bytes and checks its own properties (pieces and halves agree
// with one read, prefixes agree with the whole, `received` is what was fed), trapping if one fails.
import FuzzSupport
import SwitchyardCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzClientHello(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    _ = ClientHello.fuzz(fuzzBytes(data, size))
    return 0
}

runLibFuzzer(fuzzClientHello)
