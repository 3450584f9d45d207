import NIOHTTP1
import SwitchyardCore

/// One request as a route set sees it: its head, its body (within the route's limit) and the
/// client's address.
struct ControlRequest {
    let head: HTTPRequestHead
    let path: Substring
    let query: Substring
    let body: [UInt8]
    let peer: IPAddress?

    init(head: HTTPRequestHead, body: [UInt8], peer: IPAddress?) {
        self.head = head
        let parts = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        path = parts.first ?? ""
        query = parts.count > 1 ? parts[1] : ""
        self.body = body
        self.peer = peer
    }

    var isGet: Bool { head.method == .GET || head.method == .HEAD }

    /// The value of query parameter `name` (`a=1&b=2`), undecoded.
    func parameter(_ name: String) -> Substring? {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.first == Substring(name) { return parts.count > 1 ? parts[1] : "" }
        }
        return nil
    }

    /// Header values by lowercased name, the first of each.
    var headerMap: [String: String] {
        var map: [String: String] = [:]
        for (name, value) in head.headers where map[name.lowercased()] == nil { map[name.lowercased()] = value }
        return map
    }
}

/// What a route answers.
struct ControlResponse {
    var status: HTTPResponseStatus
    var contentType: String
    var body: [UInt8]
    var headers: [(String, String)] = []

    static func text(_ status: HTTPResponseStatus, _ text: String, headers: [(String, String)] = []) -> ControlResponse {
        ControlResponse(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8), headers: headers)
    }

    /// 405 for a method a path does not take; `allowed` as `["GET", "HEAD"]`.
    static func methodNotAllowed(_ request: ControlRequest, allowed: [String]) -> ControlResponse {
        .text(.methodNotAllowed, "method \(request.head.method) not allowed: use \(allowed.joined(separator: " or "))\n",
              headers: [("Allow", allowed.joined(separator: ", "))])
    }
}

/// A set of paths one control listener serves; a listener may serve several sets.
protocol ControlRoutes: Sendable {
    /// The paths, for the 404 text.
    var paths: [String] { get }
    /// The largest body read for a request of `method` to `path` (more is refused with 413);
    /// nil when no path of this set matches.
    func bodyLimit(method: HTTPMethod, path: Substring) -> Int?
    /// The answer; nil when no path of this set matches. Called on the listener's thread.
    func respond(to request: ControlRequest) -> ControlResponse?
}
