import NIOHTTP1
import SwitchyardCore

/// The metrics listener's paths (`--metrics`):
/// - `GET /metrics` (or `HEAD`) answers 200 with the exposition, in OpenMetrics when the
///   `Accept` header prefers it (`ExpositionFormat.negotiate`), else the Prometheus text format.
/// - `GET /healthz` answers 200 `ok` while `health()` says so (the instance is ready and some
///   backend is selectable), else 503 with a line saying why, for a router's or an upstream
///   load balancer's check.
/// - Another method on those paths is 405 with `Allow: GET, HEAD`.
struct MetricsRoutes: ControlRoutes {
    let render: @Sendable (ExpositionFormat) -> [UInt8]
    let health: @Sendable () -> (ok: Bool, body: String)

    var paths: [String] { ["/metrics", "/healthz"] }

    func bodyLimit(method: HTTPMethod, path: Substring) -> Int? {
        path == "/metrics" || path == "/healthz" ? 0 : nil
    }

    func respond(to request: ControlRequest) -> ControlResponse? {
        switch request.path {
        case "/metrics" where request.isGet:
            let format = ExpositionFormat.negotiate(accept: request.head.headers.first(name: "accept"))
            return ControlResponse(status: .ok, contentType: format.contentType, body: render(format))
        case "/healthz" where request.isGet:
            let health = health()
            return .text(health.ok ? .ok : .serviceUnavailable, health.body)
        case "/metrics", "/healthz":
            return .methodNotAllowed(request, allowed: ["GET", "HEAD"])
        default:
            return nil
        }
    }
}
