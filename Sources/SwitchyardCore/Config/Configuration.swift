/// Everything an instance runs from: global settings and its services.
///
/// One immutable value, built either from the command line (one service named `default`) or from
/// a YAML file (`ConfigFile`), and validated by `validate()`. A reload builds a new value and
/// applies `ConfigDifference(from:to:)`.
public struct Configuration: Equatable, Sendable {
    public var global: GlobalSettings
    /// Sorted by name; names are unique.
    public var services: [ServiceConfiguration]

    public init(global: GlobalSettings = GlobalSettings(), services: [ServiceConfiguration]) {
        self.global = global
        self.services = services.sorted { $0.name < $1.name }
    }

    public func service(named name: String) -> ServiceConfiguration? {
        services.first { $0.name == name }
    }

    /// Every listen address of every service, with its service's name.
    public var listeners: [(service: String, endpoint: Endpoint)] {
        services.flatMap { service in service.listen.map { (service.name, $0) } }
    }

    /// Checks every value and every rule across services; throws the first problem found, with
    /// the path of the key it concerns.
    public func validate() throws(ConfigIssue) {
        try global.validate()
        guard !services.isEmpty else {
            throw ConfigIssue(path: [.key("services")], "no services are configured: at least one is needed")
        }
        var names = Set<String>()
        var listenOwners: [String: String] = [:]
        let routeTargets = Set(services.compactMap(\.settings.routing).flatMap(\.targets))
        for service in services {
            guard let routing = service.settings.routing else { continue }
            for target in routing.targets {
                guard let routed = self.service(named: target) else {
                    throw ConfigIssue(path: [.key("services"), .key(service.name), .key("route-by-sni")],
                                      "route-by-sni of '\(service.name)' names service '\(target)', which is not defined")
                }
                guard routed.settings.routing == nil else {
                    throw ConfigIssue(path: [.key("services"), .key(service.name), .key("route-by-sni")],
                                      "route-by-sni of '\(service.name)' names '\(target)', which routes by SNI itself")
                }
            }
        }
        for service in services {
            guard names.insert(service.name).inserted else {
                throw ConfigIssue(path: [.key("services"), .key(service.name)], "service '\(service.name)' is defined twice")
            }
            try service.validate(routedTo: routeTargets.contains(service.name))
            for (index, endpoint) in service.listen.enumerated() {
                let key = endpoint.description
                if let owner = listenOwners[key] {
                    throw ConfigIssue(
                        path: [.key("services"), .key(service.name), .key("listen"), .index(index)],
                        owner == service.name
                            ? "listen address \(key) is listed twice in service '\(service.name)'"
                            : "listen address \(key) is used by two services: '\(owner)' and '\(service.name)'")
                }
                if endpoint.port != 0 { listenOwners[key] = service.name }
            }
        }
    }
}

/// One step of the path to a value in the configuration: a mapping key or a list index.
public enum ConfigPathComponent: Equatable, Sendable, CustomStringConvertible {
    case key(String)
    case index(Int)

    public var description: String {
        switch self {
        case let .key(key): key
        case let .index(index): "[\(index)]"
        }
    }
}

/// A configuration value that was refused, with the path of the key it concerns. The file loader
/// turns the path into a line and column; the command line shows the message alone.
public struct ConfigIssue: Error, Equatable, Sendable, CustomStringConvertible {
    public var path: [ConfigPathComponent]
    public var message: String

    public init(path: [ConfigPathComponent], _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { message }
}
