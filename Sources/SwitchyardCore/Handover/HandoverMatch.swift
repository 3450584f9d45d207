/// Which handed-over listener serves which listener of the new configuration, in a takeover.
///
/// Rules, in this order:
/// 1. **Same service, same configured address** (as written, so `127.0.0.1:0` keeps the port
///    the kernel chose for the old process, and a hostname keeps its socket).
/// 2. **Same bound address** (the new address resolved, a real port): the socket moves even if
///    the listener moved to another service or is written differently.
///
/// Handed-over listeners nothing takes are closed once the old process has stopped accepting
/// (their queued connections are lost, as with any removed listener); new listeners nothing
/// serves are bound fresh before the takeover commits, so that a failure there changes nothing.
public struct HandoverMatch: Equatable, Sendable {
    public struct Kept: Equatable, Sendable {
        public var listener: ActivationMatch.ConfiguredListener
        public var handed: HandoverMessage.Listener
    }

    /// In the order of the new configuration's listeners.
    public private(set) var kept: [Kept] = []
    /// New listeners to bind fresh.
    public private(set) var toBind: [ActivationMatch.ConfiguredListener] = []
    /// Handed-over listeners to close after the takeover, in message order.
    public private(set) var toClose: [HandoverMessage.Listener] = []

    /// `listeners` are the new configuration's, resolved where possible (`Endpoint.address`).
    public init(handed: [HandoverMessage.Listener], listeners: [ActivationMatch.ConfiguredListener]) {
        var used = [Bool](repeating: false, count: handed.count)
        var chosen = [Int?](repeating: nil, count: listeners.count)
        for (index, listener) in listeners.enumerated() {
            if let found = handed.indices.first(where: {
                !used[$0] && handed[$0].service == listener.service && handed[$0].configured.description == listener.endpoint.description
            }) {
                used[found] = true
                chosen[index] = found
            }
        }
        for (index, listener) in listeners.enumerated() where chosen[index] == nil {
            guard listener.endpoint.port != 0, let address = listener.endpoint.address else { continue }
            if let found = handed.indices.first(where: {
                !used[$0] && handed[$0].bound.address == address && handed[$0].bound.port == listener.endpoint.port
            }) {
                used[found] = true
                chosen[index] = found
            }
        }
        for (index, listener) in listeners.enumerated() {
            if let found = chosen[index] {
                kept.append(Kept(listener: listener, handed: handed[found]))
            } else {
                toBind.append(listener)
            }
        }
        toClose = handed.indices.filter { !used[$0] }.map { handed[$0] }
    }

    /// One line per change, for the log: what is bound fresh and what is closed.
    public var summary: [String] {
        toBind.map { "service \($0.service): \($0.endpoint) was not handed over; binding it" }
            + toClose.map { "service \($0.service): \($0.bound) is not in the new configuration; closing it after the takeover" }
    }
}
