import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// The status page in a real browser (headless Chromium, `Support/Chromium.swift`): what it
    /// renders, how it follows the instance live, its charts and actions, and its plain view with
    /// JavaScript off. Screenshots are kept in the test artifacts; with
    /// `SWITCHYARD_UPDATE_SCREENSHOT=1` the first is also written to `Docs/status-page.png`
    /// (README's).
    @Suite(.timeLimit(.minutes(3))) struct StatusBrowser {
        /// The JavaScript text of `tr[data-backend=ADDRESS] CELL`.
        static func cell(_ backend: TCPEndpoint, _ cell: String) -> String {
            "document.querySelector('tr[data-backend=\"\(backend)\"] \(cell)')?.textContent"
        }

        @Test func thePageFollowsTheInstanceLiveAndItsActionsNeedTheToken() throws {
            let instance = try StatusPageInstance(admin: true)
            let browser = try Chromium.launch(width: 1400, height: 1000)
            defer { browser.stop() }
            let url = "http://\(instance.status)/"
            try browser.open(url)

            // Every service and backend of the two-service configuration, rendered by the script.
            #expect(browser.waitUntil("document.querySelector('#live.ok') !== null", timeout: 10), "the page never went live")
            #expect(try browser.evaluate("[...document.querySelectorAll('section.service')].map(s => s.dataset.service).sort().join()") as? String == "cache,web")
            #expect(try browser.evaluate("document.querySelectorAll('tr[data-backend]').length") as? Int == 3)
            for backend in instance.backends {
                #expect(try browser.evaluate(Self.cell(backend.endpoint, ".state")) as? String == "ready")
                #expect(try browser.evaluate(Self.cell(backend.endpoint, ".health")) as? String == "up")
            }
            // A marker a reload would lose.
            _ = try browser.evaluate("window.notReloaded = true")

            // Charts have points after traffic, and their peak is not zero.
            try instance.relay(20)
            let charted = browser.waitUntil("""
                (() => { const c = document.querySelector('section[data-service="web"] > .charts svg.chart[data-chart="0"]');
                         return c && Number(c.dataset.points) >= 2 && !c.parentElement.textContent.includes('peak 0') })()
                """, timeout: 10)
            #expect(charted, "no chart points after traffic")
            // Hovering a chart shows a point's time and value.
            let hover = try browser.evaluate("""
                (() => { const svg = document.querySelector('section[data-service="web"] > .charts svg.chart[data-chart="0"]');
                         const box = svg.getBoundingClientRect();
                         svg.dispatchEvent(new MouseEvent('mousemove', { bubbles: true, clientX: box.right - 2, clientY: box.top + 5 }));
                         const tip = document.getElementById('tip'); return tip.hidden ? '' : tip.textContent })()
                """) as? String ?? ""
            #expect(hover.contains("connections/s"), "hover showed '\(hover)'")
            _ = try browser.evaluate("document.getElementById('services').dispatchEvent(new MouseEvent('mouseleave'))")
            let screenshot = try browser.screenshot(named: "status-page-live.png")

            // Drained through the admin socket: the page says so within 2 s, without a reload.
            let drained = instance.backends[0].endpoint
            #expect(try instance.proxy.admin.send("drain web/\(drained)").isOK)
            #expect(browser.waitUntil("\(Self.cell(drained, ".state")) === 'drain'", timeout: 2), "the drain did not show within 2 s")
            #expect(try browser.evaluate("window.notReloaded === true") as? Bool == true)

            // A stopped backend turns down (health checks: fall 1 every 300 ms).
            let stopped = instance.backends[1]
            stopped.stop()
            #expect(browser.waitUntil("\(Self.cell(stopped.endpoint, ".health")) === 'down'", timeout: 10), "the stopped backend never showed down")
            let withStates = try browser.screenshot(named: "status-page-drain-down.png")
            if ProcessInfo.processInfo.environment["SWITCHYARD_UPDATE_SCREENSHOT"] == "1" {
                let docs = SwitchyardProcess.repositoryRoot.appendingPathComponent("Docs/status-page.png").path
                try? FileManager.default.removeItem(atPath: docs)
                try FileManager.default.copyItem(atPath: withStates, toPath: docs)
            }

            // An action with the token drains a backend; one without it is refused and changes nothing.
            let target = instance.backends[2].endpoint
            func click(_ action: String) throws {
                _ = try browser.evaluate("document.querySelector('tr[data-backend=\"\(target)\"] button[data-action=\"\(action)\"]').click()")
            }
            _ = try browser.evaluate("document.getElementById('token').value = 'not-the-token'")
            try click("drain")
            #expect(browser.waitUntil("document.getElementById('message').textContent.includes('refused (401)')", timeout: 5),
                    "\(String(describing: try? browser.evaluate("document.getElementById('message').textContent")))")
            #expect(try instance.proxy.admin.backends()[target.description]?["state"] as? String == "ready")
            _ = try browser.evaluate("document.getElementById('token').value = '\(StatusPageInstance.token)'")
            try click("drain")
            #expect(browser.waitUntil("\(Self.cell(target, ".state")) === 'drain'", timeout: 5), "the page's drain did not take")
            #expect(try instance.proxy.admin.backends()[target.description]?["state"] as? String == "drain")
            #expect(try browser.evaluate("document.getElementById('message').className") as? String == "ok")
            try browser.screenshot(named: "status-page-action.png")

            // The instance stops answering: the page says so.
            instance.proxy.process.kill()
            #expect(browser.waitUntil("document.querySelector('#live.stale')?.textContent.includes('not answering') === true", timeout: 10))
            try browser.screenshot(named: "status-page-stale.png")
            #expect(FileManager.default.fileExists(atPath: screenshot))
        }

        @Test func withJavaScriptOffThePageIsPlainTablesThatReload() throws {
            let instance = try StatusPageInstance(admin: false)
            #expect(try instance.proxy.admin.send("maint cache/\(instance.backends[2].endpoint)").isOK)
            let browser = try Chromium.launch(width: 1200, height: 800, javaScript: false)
            defer { browser.stop() }
            try browser.open("http://\(instance.status)/")
            #expect(try browser.evaluate("document.querySelectorAll('section.service').length") as? Int == 2)
            #expect(try browser.evaluate("document.querySelectorAll('tr[data-backend]').length") as? Int == 3)
            #expect(try browser.evaluate(Self.cell(instance.backends[2].endpoint, ".state")) as? String == "maint")
            #expect(try browser.evaluate("document.querySelector('noscript')?.textContent.includes('refresh') === true || document.querySelector('meta[http-equiv=refresh]') !== null") as? Bool == true)
            // Nothing the script would have drawn.
            #expect(try browser.evaluate("document.querySelectorAll('svg.chart').length") as? Int == 0)
            try browser.screenshot(named: "status-page-no-javascript.png")
        }
    }
}
