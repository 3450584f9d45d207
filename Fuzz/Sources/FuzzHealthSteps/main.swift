// Fuzzes the health check step parser and runner: `HealthStepScript.fuzz` decodes a YAML list of
// `steps:` items with the configuration file's step decoder, then runs the script against a
// reply cut into chunks.
//
// Properties (checked inside `HealthStepScript.fuzz`): refusals say something; decoded steps
// pass validation; sends are never empty; once the backend closes, a verdict comes within one
// event a step, never a wait; a pass has no steps left; verdicts are one line.
import FuzzSupport
import SwitchyardCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHealthSteps(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    HealthStepScript.fuzz(fuzzText(data, size))
    return 0
}

runLibFuzzer(fuzzHealthSteps)
