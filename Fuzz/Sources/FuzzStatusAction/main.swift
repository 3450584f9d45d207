// Fuzzes the status page's action requests (`POST /status/action`): headers and a form body
// from a browser, checked and turned into an admin socket line. `StatusAction.fuzz(_:)` traps if
// an accepted request could become anything but one page action on one backend.
import FuzzSupport
import SwitchyardCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzStatusAction(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    StatusAction.fuzz(fuzzBytes(data, size))
    return 0
}

runLibFuzzer(fuzzStatusAction)
