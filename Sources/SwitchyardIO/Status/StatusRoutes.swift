import NIOHTTP1
import SwitchyardCore

/// The status page's paths (`--status`):
/// - `GET /`: the page (`StatusPage.html`), readable as tables with JavaScript off;
/// - `GET /status.css`, `GET /status.js`: its stylesheet and script;
/// - `GET /status.json[?since=EPOCH]`: its data (`StatusDocument`), with the 1-second history
///   points after `since` when given;
/// - `GET /status/history.json?resolution=1|60`: every series at that resolution;
/// - `POST /status/action`: an action (`StatusAction`), with `status-admin` only.
/// Pages and data are sent with `Cache-Control: no-store`, and the page with a content
/// security policy that allows only its own script and style and no framing.
struct StatusRoutes: ControlRoutes {
    let document: @Sendable (_ since: Int64?) -> String
    let page: @Sendable () -> String
    let history: @Sendable (_ resolution: Int) -> String
    /// Runs an action; its HTTP status and text.
    let action: @Sendable (StatusAction.Request) -> (status: Int, text: String)

    static let pagePaths = ["/", "/status.json", "/status/history.json", "/status.css", "/status.js"]
    static let actionPath = "/status/action"

    var paths: [String] { Self.pagePaths + [Self.actionPath] }

    func bodyLimit(method: HTTPMethod, path: Substring) -> Int? {
        if path == Self.actionPath { return method == .POST ? StatusAction.maximumBodyBytes : 0 }
        return Self.pagePaths.contains(String(path)) ? 0 : nil
    }

    static let noStore = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")]
    static let pageHeaders = noStore + [
        ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
    ]

    func respond(to request: ControlRequest) -> ControlResponse? {
        let path = String(request.path)
        if path == Self.actionPath {
            guard request.head.method == .POST else { return .methodNotAllowed(request, allowed: ["POST"]) }
            let outcome = action(StatusAction.Request(peer: request.peer, headers: request.headerMap, body: request.body))
            return .text(HTTPResponseStatus(statusCode: outcome.status), outcome.text, headers: Self.noStore)
        }
        guard Self.pagePaths.contains(path) else { return nil }
        guard request.isGet else { return .methodNotAllowed(request, allowed: ["GET", "HEAD"]) }
        switch path {
        case "/":
            return ControlResponse(status: .ok, contentType: "text/html; charset=utf-8", body: Array(page().utf8), headers: Self.pageHeaders)
        case "/status.css":
            return ControlResponse(status: .ok, contentType: "text/css; charset=utf-8", body: Array(StatusPage.stylesheet.utf8), headers: Self.noStore)
        case "/status.js":
            return ControlResponse(status: .ok, contentType: "text/javascript; charset=utf-8", body: Array(StatusPage.script.utf8), headers: Self.noStore)
        case "/status.json":
            var since: Int64?
            if let text = request.parameter("since") {
                guard let value = Int64(text), value >= 0 else {
                    return .text(.badRequest, "since must be a time in seconds since the epoch\n")
                }
                since = value
            }
            return json(document(since))
        default:  // "/status/history.json"
            let text = request.parameter("resolution") ?? "1"
            guard text == "1" || text == "60" else {
                return .text(.badRequest, "resolution must be 1 or 60 (seconds)\n")
            }
            return json(history(text == "60" ? 60 : 1))
        }
    }

    private func json(_ text: String) -> ControlResponse {
        ControlResponse(status: .ok, contentType: "application/json", body: Array(text.utf8), headers: Self.noStore)
    }
}
