import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// The headless Chromium driver (`Support/Chromium.swift`) against a page served on loopback by
    /// `python3 -m http.server`, so that a failing status-page test points at the page, not the driver.
    @Suite struct ChromiumDriver {
        /// A folder with `index.html` (whose script fetches `data.json` and shows its token) served
        /// on a free loopback port; the server is stopped by its PID on deinit.
        final class StaticSite {
            let token = "token-\(UInt32.random(in: 0...UInt32.max))"
            let endpoint: TCPEndpoint
            private let server: ForegroundServer

            init() throws {
                let folder = try ConfiguredProxy.makeFolder()
                try ConfiguredProxy.write("""
                    <!doctype html><html><head><title>driver check</title></head><body>
                    <h1>driver check</h1><p id="token">waiting</p>
                    <script>
                    fetch("data.json").then(r => r.json()).then(d => {
                        document.getElementById("token").textContent = d.token; window.fetched = true })
                    </script></body></html>
                    """, to: folder + "/index.html")
                try ConfiguredProxy.write("{\"token\": \"\(token)\"}", to: folder + "/data.json")
                endpoint = try Sockets.freeEndpoint()
                server = try ForegroundServer("/usr/bin/python3", [
                    "-m", "http.server", "\(endpoint.port)", "--bind", "127.0.0.1", "--directory", folder,
                ], folder: folder)
                try server.waitUntilListening(endpoint, timeout: 10)
            }

            deinit {
                server.stop()
                try? FileManager.default.removeItem(atPath: server.folder)
            }

            var url: String { "http://\(endpoint)/index.html" }
        }

        @Test func navigatesEvaluatesWaitsAndTakesAPNGScreenshotThenLeavesNoProcess() throws {
            let site = try StaticSite()
            let browser = try Chromium.launch(width: 800, height: 600)
            let group = browser.pid

            try browser.open(site.url)
            #expect(try browser.evaluate("document.title") as? String == "driver check")
            // The page's own script fetched data.json from the server and wrote its token.
            #expect(browser.waitUntil("window.fetched === true", timeout: 10), "the page's fetch did not finish")
            #expect(try browser.evaluate("document.getElementById('token').textContent") as? String == site.token)
            #expect(try browser.evaluate("new Promise(done => setTimeout(() => done(6 * 7), 50))") as? Int == 42)
            let object = try browser.evaluate("({rows: [1, 2], name: 'x'})") as? [String: Any]
            #expect(object?["rows"] as? [Int] == [1, 2] && object?["name"] as? String == "x", "\(object ?? [:])")
            #expect(try browser.evaluate("undefined") == nil)
            #expect(throws: HarnessError.self) { try browser.evaluate("null.property") }
            #expect(!browser.waitUntil("window.neverSet === true", timeout: 0.5))

            let path = try browser.screenshot(named: "chromium-driver-check.png")
            let png = try Data(contentsOf: URL(fileURLWithPath: path))
            #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), "not a PNG: \(path)")
            // IHDR: width and height, big-endian, at bytes 16 and 20.
            let bytes = [UInt8](png)
            let width = bytes.count > 24 ? bytes[16..<20].reduce(0) { $0 << 8 | Int($1) } : 0
            let height = bytes.count > 24 ? bytes[20..<24].reduce(0) { $0 << 8 | Int($1) } : 0
            #expect(width == 800 && height == 600, "screenshot of \(width) x \(height), not the window's 800 x 600")

            // A page that cannot be reached is an error, not a hang.
            let refused = try Sockets.freeEndpoint()
            #expect(throws: HarnessError.self) { try browser.open("http://\(refused)/") }

            let helpers = ProcessTable.liveMembers(ofGroup: group)
            #expect(helpers.count > 1, "chromium started no helper process: \(helpers)")
            browser.stop()
            #expect(ProcessTable.liveMembers(ofGroup: group).isEmpty)
            #expect(helpers.filter(\.isStillLive).isEmpty, "left running: \(helpers.filter(\.isStillLive))")
        }

        @Test func withJavaScriptOffThePageRunsNoScriptButCanStillBeRead() throws {
            let site = try StaticSite()
            let browser = try Chromium.launch(javaScript: false)
            defer { browser.stop() }
            try browser.open(site.url)
            #expect(try browser.evaluate("document.querySelector('h1').textContent") as? String == "driver check")
            #expect(!browser.waitUntil("window.fetched === true", timeout: 2))
            #expect(try browser.evaluate("document.getElementById('token').textContent") as? String == "waiting")
        }

        @Test func stoppingAChromiumWhoseBrowserProcessWasKilledLeavesNoHelper() throws {
            let site = try StaticSite()
            let browser = try Chromium.launch()
            try browser.open(site.url)
            let helpers = ProcessTable.liveMembers(ofGroup: browser.pid)
            #expect(helpers.count > 1)

            kill(browser.pid, SIGKILL)
            browser.stop()

            #expect(ProcessTable.liveMembers(ofGroup: browser.pid).isEmpty)
            #expect(helpers.filter(\.isStillLive).isEmpty, "left running: \(helpers.filter(\.isStillLive))")
        }
    }
}
