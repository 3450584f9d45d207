// Fuzzes the per-source table's rules: `SourceSet.fuzz` runs the input as admissions, refusals,
// releases and clock steps on one set of the table against a model of open connections.
//
// Properties (checked inside `SourceSet.fuzz`): counts are exact, a source with open
// connections is never forgotten, limits are never exceeded, refusals and untracked admissions
// happen only when the rules say.
import FuzzSupport
import SwitchyardCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSourceTable(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    SourceSet.fuzz(fuzzBytes(data, size))
    return 0
}

runLibFuzzer(fuzzSourceTable)
