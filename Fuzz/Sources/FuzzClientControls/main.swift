// Fuzzes the per-client controls' address matching: `ClientControls.fuzz` parses `allow`,
// `deny` and `source-mask` lines with the configuration's parsers and checks addresses against a
// bit-by-bit reference.
//
// Properties (checked inside `ClientControls.fuzz`): refusals are one line, blocks and masks
// re-parse to themselves, `allow`/`deny` verdicts match the reference (deny wins, IPv4 and
// IPv4-mapped IPv6 agree), masking is idempotent and keeps the family.
import FuzzSupport
import SwitchyardCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzClientControls(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    ClientControls.fuzz(fuzzText(data, size))
    return 0
}

runLibFuzzer(fuzzClientControls)
