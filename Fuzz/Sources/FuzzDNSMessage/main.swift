// Fuzzes the DNS message codec with what a resolver may answer (backends found by DNS):
// `DNSMessage.fuzz(_:)` parses the bytes and, when that succeeds, reads them as the reply to a
// query for their own first question, so the answer checks and the CNAME chase run too.
import FuzzSupport
import SwitchyardCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDNSMessage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    DNSMessage.fuzz(fuzzBytes(data, size))
    return 0
}

runLibFuzzer(fuzzDNSMessage)
