/// A takeover failed; `message` is one line saying which step and why.
public struct HandoverError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What a running Switchyard hands to the process taking over from it, besides the descriptors
/// themselves: which descriptor is which listener, and the admin changes in force.
///
/// The text is versioned and line-based; the frame around it (`DescriptorFrame`) carries its
/// length. One line per item, words separated by one space:
///
///     switchyard-handover 1
///     pid 4242
///     descriptors 5
///     listener pg-primary 0.0.0.0:5000 0.0.0.0:5000 0,1
///     listener redis [::1]:0 [::1]:40211 2,3
///     admin 4 /run/switchyard/admin.sock
///     state drain pg-primary/10.0.0.1:5432
///     state add pg-replicas/10.0.0.4:5432,weight=2
///     tls-ticket-key 1796371200 00…0f 00…3f
///     end
///
/// - `listener SERVICE CONFIGURED BOUND POSITIONS`: the address as the sender's configuration
///   wrote it (a port may be 0, the host a name), the address it is bound to, and the positions
///   in the descriptor array of its sockets, worker 0's first (one `SO_REUSEPORT` socket per
///   worker of the sender).
/// - `admin POSITION PATH`: the listening admin socket, passed too so that it never stops
///   accepting; the path is the rest of the line.
/// - `state LINE`: one line of the state file (`RuntimeOverrides.fileText`).
/// - `tls-ticket-key CREATED NAME SECRET`: a session ticket key in force, newest first
///   (`TicketKeyRing`), so tickets issued before the takeover resume after it. Sent only when
///   the process has keys (it terminates TLS with tickets); the text then holds secrets, and
///   errors about these lines never quote them.
/// - `end` closes the message, so a cut text is never mistaken for a whole one.
///
/// Every descriptor is named exactly once. Unknown lines are errors: a format change bumps
/// the version, and a reader refuses versions it does not know, naming them.
public struct HandoverMessage: Equatable, Sendable {
    public static let version = 1
    public static let magic = "switchyard-handover"
    /// Longest text accepted, in bytes.
    public static let maximumLength = 1 << 20

    public struct Listener: Equatable, Sendable {
        public var service: String
        /// As the sender's configuration wrote it.
        public var configured: Endpoint
        /// As bound: an IP literal and the real port.
        public var bound: Endpoint
        /// Positions in the descriptor array, by the sender's worker index.
        public var descriptors: [Int]

        public init(service: String, configured: Endpoint, bound: Endpoint, descriptors: [Int]) {
            self.service = service
            self.configured = configured
            self.bound = bound
            self.descriptors = descriptors
        }
    }

    public struct AdminSocket: Equatable, Sendable {
        public var descriptor: Int
        public var path: String

        public init(descriptor: Int, path: String) {
            self.descriptor = descriptor
            self.path = path
        }
    }

    /// The sender's process id.
    public var processID: Int
    /// How many descriptors travel with the message.
    public var descriptorCount: Int
    public var listeners: [Listener]
    public var adminSocket: AdminSocket?
    public var overrides: RuntimeOverrides
    /// `instance drain` was in force: the new process starts drained too (`/healthz` 503).
    public var instanceDrained = false
    /// The session ticket keys in force, newest first.
    public var ticketKeys: [TicketKeyRing.Key] = []

    public init(processID: Int, descriptorCount: Int, listeners: [Listener], adminSocket: AdminSocket? = nil, overrides: RuntimeOverrides = RuntimeOverrides()) {
        self.processID = processID
        self.descriptorCount = descriptorCount
        self.listeners = listeners
        self.adminSocket = adminSocket
        self.overrides = overrides
    }

    /// The message's text. Call `validate()` first: a value that fails it (a path with a line
    /// break, say) does not read back.
    public var text: String {
        var lines = ["\(Self.magic) \(Self.version)", "pid \(processID)", "descriptors \(descriptorCount)"]
        for listener in listeners {
            let positions = listener.descriptors.map(String.init).joined(separator: ",")
            lines.append("listener \(listener.service) \(listener.configured) \(listener.bound) \(positions)")
        }
        if let adminSocket { lines.append("admin \(adminSocket.descriptor) \(adminSocket.path)") }
        // Only when drained, so a process that is ready can still hand over to an older binary.
        if instanceDrained { lines.append("instance drained") }
        for (service, command) in overrides.commands {
            lines.append("state \(RuntimeOverrides.line(service: service, command))")
        }
        for key in ticketKeys { lines.append(TicketKeyRing.handoverLine(key)) }
        lines.append("end")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Checks what both sides rely on: every position in range and used exactly once, every
    /// listener with at least one socket and a bound IP address and port, service names of
    /// the configuration's alphabet, a printable admin path.
    public func validate() throws(HandoverError) {
        guard processID > 0 else { throw HandoverError("handover: pid \(processID) is not a process id") }
        guard (0...DescriptorFrame.maximumDescriptors).contains(descriptorCount) else {
            throw HandoverError("handover: \(descriptorCount) descriptors is more than the \(DescriptorFrame.maximumDescriptors) allowed")
        }
        var used = [Bool](repeating: false, count: descriptorCount)
        func use(_ position: Int, _ what: String) throws(HandoverError) {
            guard position >= 0 && position < descriptorCount else {
                throw HandoverError("handover: \(what) names descriptor \(position), but \(descriptorCount) were passed")
            }
            guard !used[position] else { throw HandoverError("handover: descriptor \(position) is named twice (again by \(what))") }
            used[position] = true
        }
        for listener in listeners {
            let what = "listener \(listener.service) \(listener.bound)"
            guard ServiceConfiguration.isValidName(listener.service) else {
                throw HandoverError("handover: '\(listener.service)' is not a service name")
            }
            guard listener.bound.address != nil, listener.bound.port != 0 else {
                throw HandoverError("handover: \(what) must be bound to an IP address and a port")
            }
            guard !listener.descriptors.isEmpty else { throw HandoverError("handover: \(what) has no descriptor") }
            for position in listener.descriptors { try use(position, what) }
        }
        if let adminSocket {
            guard !adminSocket.path.isEmpty, adminSocket.path.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
                throw HandoverError("handover: admin socket path '\(adminSocket.path)' is empty or has control characters")
            }
            try use(adminSocket.descriptor, "the admin socket")
        }
        if let unused = used.firstIndex(of: false) {
            throw HandoverError("handover: descriptor \(unused) of \(descriptorCount) is not named by any line")
        }
    }

    /// Reads a message's text and validates it; `descriptorCount` is how many descriptors
    /// actually arrived with it, which must be what the message says. Throws a one-line
    /// message naming the line.
    public init(parsing text: String, descriptorCount received: Int) throws(HandoverError) {
        guard text.utf8.count <= Self.maximumLength else {
            throw HandoverError("handover: message is \(text.utf8.count) bytes; at most \(Self.maximumLength) are accepted")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.last == "" else { throw HandoverError("handover: message does not end with a newline (cut short?)") }
        lines.removeLast()
        guard let header = lines.first else { throw HandoverError("handover: empty message") }
        let headerWords = header.split(separator: " ", omittingEmptySubsequences: false)
        guard headerWords.count == 2, headerWords[0] == Self.magic else {
            throw HandoverError("handover: not a handover message (first line '\(Self.printable(header))')")
        }
        guard let version = Int(headerWords[1]) else {
            throw HandoverError("handover: version '\(Self.printable(headerWords[1]))' is not a number")
        }
        guard version == Self.version else {
            throw HandoverError("handover: the running process speaks version \(version) of the handover; this binary reads version \(Self.version) only")
        }
        guard lines.last == "end" else { throw HandoverError("handover: message has no 'end' line (cut short?)") }

        var processID: Int?
        var count: Int?
        var listeners: [Listener] = []
        var adminSocket: AdminSocket?
        var stateLines: [String] = []
        var instanceDrained = false
        var ticketKeys: [TicketKeyRing.Key] = []
        for (offset, line) in lines.dropFirst().dropLast().enumerated() {
            let number = offset + 2
            func fail(_ why: String) -> HandoverError {
                HandoverError("handover: line \(number) '\(Self.printable(line))': \(why)")
            }
            let words = line.split(separator: " ", omittingEmptySubsequences: false)
            switch words.first {
            case "pid":
                guard words.count == 2, let value = Int(words[1]), processID == nil else { throw fail("expected 'pid N' once") }
                processID = value
            case "descriptors":
                guard words.count == 2, let value = Int(words[1]), count == nil else { throw fail("expected 'descriptors N' once") }
                count = value
            case "listener":
                guard words.count == 5 else { throw fail("expected 'listener SERVICE CONFIGURED BOUND POSITIONS'") }
                let configured: Endpoint
                let bound: Endpoint
                do {
                    configured = try Endpoint(parsing: String(words[2]), allowPortZero: true)
                    bound = try Endpoint(parsing: String(words[3]))
                } catch {
                    throw fail(error.message)
                }
                var positions: [Int] = []
                for word in words[4].split(separator: ",", omittingEmptySubsequences: false) {
                    guard let position = Int(word) else { throw fail("'\(word)' is not a descriptor position") }
                    positions.append(position)
                }
                listeners.append(Listener(service: String(words[1]), configured: configured, bound: bound, descriptors: positions))
            case "admin":
                guard words.count >= 3, let position = Int(words[1]), adminSocket == nil else {
                    throw fail("expected 'admin POSITION PATH' once")
                }
                adminSocket = AdminSocket(descriptor: position, path: words[2...].joined(separator: " "))
            case "state":
                stateLines.append(words.dropFirst().joined(separator: " "))
            case "instance":
                guard words.count == 2, words[1] == "drained", !instanceDrained else { throw fail("expected 'instance drained' once") }
                instanceDrained = true
            case "tls-ticket-key":
                do {
                    ticketKeys.append(try TicketKeyRing.parseHandoverWords(Array(words.dropFirst())))
                } catch {
                    throw HandoverError("handover: line \(number) (a ticket key): \(error.message)")
                }
            default:
                throw fail("unknown line")
            }
        }
        guard let processID else { throw HandoverError("handover: message has no 'pid' line") }
        guard let count else { throw HandoverError("handover: message has no 'descriptors' line") }
        guard count == received else {
            throw HandoverError("handover: message names \(count) descriptors but \(received) arrived")
        }
        let overrides: RuntimeOverrides
        do {
            overrides = try RuntimeOverrides(parsing: stateLines.joined(separator: "\n"), file: "handover state")
        } catch {
            throw HandoverError("handover: \(error)")
        }
        self.init(processID: processID, descriptorCount: count, listeners: listeners, adminSocket: adminSocket, overrides: overrides)
        self.instanceDrained = instanceDrained
        self.ticketKeys = ticketKeys
        try validate()
    }

    private static func printable(_ text: Substring) -> String {
        let cut = text.prefix(80)
        return String(cut.unicodeScalars.map { $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" })
    }
}
