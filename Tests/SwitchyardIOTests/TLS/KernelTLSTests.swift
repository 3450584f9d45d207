import Foundation
import Testing
@testable import SwitchyardIO

@Suite struct KernelTLSTests {
    /// The probe gives one of its two answers and leaves no descriptor open. This machine's
    /// kernel has no CONFIG_TLS (the brief), where it must say so rather than claim kTLS.
    @Test func theProbeAnswersWithoutLeavingADescriptor() throws {
        let before = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        let answer = KernelTLS.probe()
        let after = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        #expect(answer == "available" || answer == "unavailable: the kernel has no TLS module (CONFIG_TLS)", "\(answer)")
        #expect(after <= before, "\(before) descriptors before the probe, \(after) after")
        // No tls module loaded, built in, or on disk to load: the probe must not claim kTLS.
        if !FileManager.default.fileExists(atPath: "/sys/module/tls"),
           (try? String(contentsOfFile: "/lib/modules/\(uname())/modules.builtin", encoding: .utf8))?.contains("/tls.ko") != true,
           !FileManager.default.fileExists(atPath: "/lib/modules/\(uname())/kernel/net/tls") {
            #expect(answer != "available", "no tls module anywhere, yet the probe says kTLS is available")
        }
    }

    private func uname() -> String {
        var name = utsname()
        Glibc.uname(&name)
        return withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
