/// A status page action (`POST /status/action`): the checks it must pass and the admin command
/// it becomes. The command is then run as the admin socket runs it (`AdminController.handle`),
/// so a page action and a socket command give the same reply and the same state-file record.
///
/// The request is form-encoded: `backend=SERVICE/HOST:PORT&action=drain|ready|maint|weight`
/// (`&weight=N` with `weight`). It must carry:
/// - the token of `status-admin-token-file`, as `Authorization: Bearer TOKEN` (or
///   `X-Switchyard-Token: TOKEN`);
/// - the page's anti-CSRF token, `X-CSRF-Token`, which only a page served by this process
///   knows (a form on another site can neither read it nor set a header);
/// - when the browser says where it comes from, this server: an `Origin` of `http://HOST` for
///   the request's `Host`, and a `Sec-Fetch-Site` of `same-origin` (or `none`).
/// It must come from an address of `status-admin-from` (loopback when that is empty).
public enum StatusAction {
    /// The actions a page offers; everything else stays on the admin socket.
    public static let verbs = ["drain", "ready", "maint", "weight"]
    /// Longest request body read.
    public static let maximumBodyBytes = 4096

    /// Why a request was refused, with its HTTP status.
    public struct Refusal: Error, Sendable, Equatable {
        public let status: Int
        public let message: String
        init(_ status: Int, _ message: String) {
            self.status = status
            self.message = message
        }
    }

    /// What the access checks look at.
    public struct Request: Sendable {
        public var peer: IPAddress?
        /// Header values by lowercased name (the first of each).
        public var headers: [String: String]
        public var body: [UInt8]

        public init(peer: IPAddress?, headers: [String: String], body: [UInt8]) {
            self.peer = peer
            self.headers = headers
            self.body = body
        }
    }

    /// The addresses actions are accepted from when `status-admin-from` is empty. (Made at each
    /// use: a global holding it keeps its storage behind pointers whose spare bits carry enum
    /// tags, which LeakSanitizer then reports as leaked.)
    public static var loopback: [CIDR] { [try! CIDR(parsing: "127.0.0.0/8"), try! CIDR(parsing: "::1")] }

    /// Checks `request` and gives the admin command line it asks for.
    ///
    /// - `enabled`: `status-admin`; `from`: `status-admin-from`; `csrfToken`: this process's;
    ///   `adminToken`: the token file's first line, or nil when it could not be read.
    public static func command(
        for request: Request, enabled: Bool, from: [CIDR], csrfToken: String, adminToken: Result<String, ConfigError>
    ) -> Result<String, Refusal> {
        guard enabled else {
            return .failure(Refusal(403, "the status page is read-only: actions need status-admin: true"))
        }
        let allowed = from.isEmpty ? loopback : from
        guard let peer = request.peer, allowed.contains(where: { $0.contains(peer) }) else {
            return .failure(Refusal(403, "actions are not accepted from \(request.peer?.description ?? "this address"): see status-admin-from"))
        }
        if let site = request.headers["sec-fetch-site"], site != "same-origin", site != "none" {
            return .failure(Refusal(403, "cross-site request refused (Sec-Fetch-Site: \(site))"))
        }
        if let origin = request.headers["origin"] {
            guard let host = request.headers["host"], origin == "http://\(host)" || origin == "https://\(host)" else {
                return .failure(Refusal(403, "cross-site request refused (Origin: \(origin))"))
            }
        }
        guard let csrf = request.headers["x-csrf-token"], constantTimeEqual(csrf, csrfToken) else {
            return .failure(Refusal(403, "missing or wrong X-CSRF-Token: send the one the page carries"))
        }
        let expected: String
        switch adminToken {
        case let .success(token): expected = token
        case let .failure(error): return .failure(Refusal(503, "cannot check the admin token: \(error.message)"))
        }
        guard !expected.isEmpty else {
            return .failure(Refusal(503, "the admin token file is empty: every action is refused"))
        }
        guard let given = token(in: request.headers), constantTimeEqual(given, expected) else {
            return .failure(Refusal(401, "missing or wrong admin token (Authorization: Bearer TOKEN)"))
        }
        guard request.body.count <= maximumBodyBytes else {
            return .failure(Refusal(413, "request body too large: the limit is \(maximumBodyBytes) bytes"))
        }
        let form: [String: String]
        switch FormEncoding.decode(request.body) {
        case let .success(fields): form = fields
        case let .failure(error): return .failure(Refusal(400, error.message))
        }
        return line(form: form).mapError { Refusal(400, $0.message) }
    }

    /// The admin command line of a decoded form.
    static func line(form: [String: String]) -> Result<String, ConfigError> {
        guard let action = form["action"], verbs.contains(action) else {
            return .failure(ConfigError("action must be one of \(verbs.joined(separator: ", "))"))
        }
        guard let backend = form["backend"], !backend.isEmpty,
              backend.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(ConfigError("backend must be SERVICE/HOST:PORT"))
        }
        do {
            _ = try BackendName(parsing: backend)
        } catch {
            return .failure(ConfigError("backend: \(error.message)"))
        }
        if action == "weight" {
            guard let weight = form["weight"], !weight.isEmpty, weight.count <= 3, weight.allSatisfy(\.isASCII),
                  weight.allSatisfy(\.isNumber) else {
                return .failure(ConfigError("weight must be a number from 0 to 256"))
            }
            return .success("weight \(backend) \(weight)")
        }
        return .success("\(action) \(backend)")
    }

    /// The admin token a request carries.
    static func token(in headers: [String: String]) -> String? {
        if let authorization = headers["authorization"] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { return String(parts[1]) }
            return nil
        }
        return headers["x-switchyard-token"]
    }

    /// Compares without stopping at the first difference, so the time taken does not tell how
    /// much of a guess was right.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(truncatingIfNeeded: x.count ^ y.count) | (x.count == y.count ? 0 : 1)
        for index in 0..<max(x.count, y.count) {
            difference |= (index < x.count ? x[index] : 0) ^ (index < y.count ? y[index] : 0)
        }
        return difference == 0
    }

    /// The token of a token file's text: its first line, without surrounding blanks.
    public static func token(fromFile text: String) -> String {
        let first = text.split(maxSplits: 1, omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).first ?? ""
        return first.trimmingCharacters(inSetOf: " \t\r")
    }
}

/// `application/x-www-form-urlencoded` (the WHATWG URL standard's form decoding): `&`-separated
/// `name=value` pairs, `+` for a space, `%XX` escapes. The first of a repeated name wins.
public enum FormEncoding {
    public static func decode(_ body: [UInt8]) -> Result<[String: String], ConfigError> {
        var fields: [String: String] = [:]
        for pair in body.split(separator: UInt8(ascii: "&")) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = unescape(parts[0]), let value = unescape(parts.count > 1 ? parts[1] : []) else {
                return .failure(ConfigError("the form is not valid application/x-www-form-urlencoded text"))
            }
            if fields[name] == nil { fields[name] = value }
        }
        return .success(fields)
    }

    /// One name or value decoded; nil for a bad escape or bytes that are not UTF-8.
    static func unescape(_ bytes: ArraySlice<UInt8>) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                out.append(0x20)
            } else if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.endIndex,
                      let high = Hex.value(bytes[index + 1]), let low = Hex.value(bytes[index + 2]) else { return nil }
                out.append(high << 4 | low)
                index += 2
            } else {
                out.append(byte)
            }
            index += 1
        }
        return String(validating: out, as: UTF8.self)
    }
}
