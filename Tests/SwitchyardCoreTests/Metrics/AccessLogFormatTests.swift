import SwitchyardCore
import Testing

@Suite struct AccessLogFormatTests {
    /// 2026-12-01T12:12:51.443000999Z.
    static let acceptedAt: Int64 = 1_796_127_171_443_000_999

    static func record(_ cause: TerminationCause) -> AccessLogRecord {
        // Causes where no backend was ever connected carry no backend and no connect time.
        // Refused and rejected ones (per-client controls) never got that far and took no time.
        let closedAtAccept = cause == .refused || cause.rejectionReason != nil
        let connected = ![.connectFailure, .noBackend, .queueFull, .queueTimeout].contains(cause) && !closedAtAccept
        return AccessLogRecord(
            acceptedAtNanoseconds: acceptedAt,
            client: PeerAddress(ipv4: 10, 0, 1, 2, port: 33313),
            listener: "127.0.0.1:6379", service: "default",
            backend: connected ? "10.0.0.5:6379" : nil,
            connectNanoseconds: connected ? 215_400 : nil,
            durationNanoseconds: closedAtAccept ? 0 : 5_007_113_900,
            bytesFromClient: connected ? 212 : 0, bytesToClient: connected ? 1024 : 0,
            retries: cause == .connectFailure ? 2 : 0, cause: cause)
    }

    static let expectedText: [TerminationCause: String] = [
        .clientClose: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/10.0.0.5:6379 0.215/5007.113 212/1024 0 client_close - - - - -\n",
        .backendClose: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/10.0.0.5:6379 0.215/5007.113 212/1024 0 backend_close - - - - -\n",
        .clientReset: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/10.0.0.5:6379 0.215/5007.113 212/1024 0 client_reset - - - - -\n",
        .backendReset: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/10.0.0.5:6379 0.215/5007.113 212/1024 0 backend_reset - - - - -\n",
        .connectFailure: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/- -/5007.113 0/0 2 connect_failure - - - - -\n",
        .noBackend: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/- -/5007.113 0/0 0 no_backend - - - - -\n",
        .queueFull: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/- -/5007.113 0/0 0 queue_full - - - - -\n",
        .queueTimeout: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/- -/5007.113 0/0 0 queue_timeout - - - - -\n",
        .idleTimeout: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/10.0.0.5:6379 0.215/5007.113 212/1024 0 idle_timeout - - - - -\n",
        .adminShutdown: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/10.0.0.5:6379 0.215/5007.113 212/1024 0 admin_shutdown - - - - -\n",
        .gracefulStop: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/10.0.0.5:6379 0.215/5007.113 212/1024 0 graceful_stop - - - - -\n",
        .backendDown: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/10.0.0.5:6379 0.215/5007.113 212/1024 0 backend_down - - - - -\n",
        .backupPreempted: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/10.0.0.5:6379 0.215/5007.113 212/1024 0 backup_preempted - - - - -\n",
        .removalGrace: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/10.0.0.5:6379 0.215/5007.113 212/1024 0 removal_grace - - - - -\n",
        .refused: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/- -/0.000 0/0 0 refused - - - - -\n",
        .rejectedDeny: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/- -/0.000 0/0 0 rejected_deny - - - - -\n",
        .rejectedNotAllowed: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/- -/0.000 0/0 0 rejected_not_allowed - - - - -\n",
        .rejectedSourceLimit: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/- -/0.000 0/0 0 rejected_source_limit - - - - -\n",
        .rejectedSourceRate: "2026-12-01T12:12:51.443Z 10.0.1.2:33313 127.0.0.1:6379 default/- -/0.000 0/0 0 rejected_source_rate - - - - -\n",
    ]

    static let expectedJSON: [TerminationCause: String] = [
        .clientClose: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":"10.0.0.5:6379","connect_ms":0.215,"duration_ms":5007.113,"bytes_from_client":212,"bytes_to_client":1024,"retries":0,"cause":"client_close","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .backendClose: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":"10.0.0.5:6379","connect_ms":0.215,"duration_ms":5007.113,"bytes_from_client":212,"bytes_to_client":1024,"retries":0,"cause":"backend_close","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .clientReset: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":"10.0.0.5:6379","connect_ms":0.215,"duration_ms":5007.113,"bytes_from_client":212,"bytes_to_client":1024,"retries":0,"cause":"client_reset","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .backendReset: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":"10.0.0.5:6379","connect_ms":0.215,"duration_ms":5007.113,"bytes_from_client":212,"bytes_to_client":1024,"retries":0,"cause":"backend_reset","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .connectFailure: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":null,"connect_ms":null,"duration_ms":5007.113,"bytes_from_client":0,"bytes_to_client":0,"retries":2,"cause":"connect_failure","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .noBackend: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":null,"connect_ms":null,"duration_ms":5007.113,"bytes_from_client":0,"bytes_to_client":0,"retries":0,"cause":"no_backend","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .queueFull: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":null,"connect_ms":null,"duration_ms":5007.113,"bytes_from_client":0,"bytes_to_client":0,"retries":0,"cause":"queue_full","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .queueTimeout: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":null,"connect_ms":null,"duration_ms":5007.113,"bytes_from_client":0,"bytes_to_client":0,"retries":0,"cause":"queue_timeout","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .idleTimeout: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":"10.0.0.5:6379","connect_ms":0.215,"duration_ms":5007.113,"bytes_from_client":212,"bytes_to_client":1024,"retries":0,"cause":"idle_timeout","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .adminShutdown: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":"10.0.0.5:6379","connect_ms":0.215,"duration_ms":5007.113,"bytes_from_client":212,"bytes_to_client":1024,"retries":0,"cause":"admin_shutdown","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .gracefulStop: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":"10.0.0.5:6379","connect_ms":0.215,"duration_ms":5007.113,"bytes_from_client":212,"bytes_to_client":1024,"retries":0,"cause":"graceful_stop","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .backendDown: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":"10.0.0.5:6379","connect_ms":0.215,"duration_ms":5007.113,"bytes_from_client":212,"bytes_to_client":1024,"retries":0,"cause":"backend_down","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .backupPreempted: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":"10.0.0.5:6379","connect_ms":0.215,"duration_ms":5007.113,"bytes_from_client":212,"bytes_to_client":1024,"retries":0,"cause":"backup_preempted","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .removalGrace: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":"10.0.0.5:6379","connect_ms":0.215,"duration_ms":5007.113,"bytes_from_client":212,"bytes_to_client":1024,"retries":0,"cause":"removal_grace","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .refused: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":null,"connect_ms":null,"duration_ms":0.000,"bytes_from_client":0,"bytes_to_client":0,"retries":0,"cause":"refused","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .rejectedDeny: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":null,"connect_ms":null,"duration_ms":0.000,"bytes_from_client":0,"bytes_to_client":0,"retries":0,"cause":"rejected_deny","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .rejectedNotAllowed: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":null,"connect_ms":null,"duration_ms":0.000,"bytes_from_client":0,"bytes_to_client":0,"retries":0,"cause":"rejected_not_allowed","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .rejectedSourceLimit: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":null,"connect_ms":null,"duration_ms":0.000,"bytes_from_client":0,"bytes_to_client":0,"retries":0,"cause":"rejected_source_limit","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
        .rejectedSourceRate: #"{"time":"2026-12-01T12:12:51.443Z","client_address":"10.0.1.2","client_port":33313,"listener":"127.0.0.1:6379","service":"default","backend":null,"connect_ms":null,"duration_ms":0.000,"bytes_from_client":0,"bytes_to_client":0,"retries":0,"cause":"rejected_source_rate","server_name":null,"tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n",
    ]

    @Test(arguments: TerminationCause.allCases)
    func textLineForEveryCause(cause: TerminationCause) {
        #expect(AccessLogFormat.text.line(for: Self.record(cause)) == Self.expectedText[cause])
    }

    @Test(arguments: TerminationCause.allCases)
    func jsonLineForEveryCause(cause: TerminationCause) {
        #expect(AccessLogFormat.json.line(for: Self.record(cause)) == Self.expectedJSON[cause])
    }

    @Test func ipv6ClientsAndServerNames() {
        var bytes = InlineArray<16, UInt8>(repeating: 0)
        bytes[0] = 0x20; bytes[1] = 0x01; bytes[2] = 0x0d; bytes[3] = 0xb8; bytes[15] = 1
        var record = Self.record(.clientClose)
        record.client = PeerAddress(ipv6: bytes, port: 443)
        record.listener = "[::]:443"
        record.serverName = "db.example.com"
        #expect(AccessLogFormat.text.line(for: record) ==
            "2026-12-01T12:12:51.443Z [2001:db8::1]:443 [::]:443 default/10.0.0.5:6379 0.215/5007.113 212/1024 0 client_close db.example.com - - - -\n")
        let json = AccessLogFormat.json.line(for: record)
        #expect(json.contains(#""client_address":"2001:db8::1","client_port":443,"listener":"[::]:443""#))
        #expect(json.hasSuffix(#""server_name":"db.example.com","tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n"))
    }

    @Test func aTerminatedSessionAddsItsVersionCipherALPNAndClientSubject() {
        var record = Self.record(.clientClose)
        record.serverName = "redis.example.com"
        record.tls = AccessLogTLS(version: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", alpn: "redis", clientSubject: "CN=app one,O=Example")
        #expect(AccessLogFormat.text.line(for: record).hasSuffix(
            " client_close redis.example.com TLSv1.3 TLS_AES_128_GCM_SHA256 redis CN=app\\x20one,O=Example\n"))
        #expect(AccessLogFormat.json.line(for: record).hasSuffix(
            #""server_name":"redis.example.com","tls_version":"TLSv1.3","tls_cipher":"TLS_AES_128_GCM_SHA256","alpn":"redis","client_subject":"CN=app one,O=Example"}"# + "\n"))
        record.tls = AccessLogTLS(version: "TLSv1.2", cipher: "ECDHE-RSA-AES128-GCM-SHA256")
        #expect(AccessLogFormat.text.line(for: record).hasSuffix(" TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 - -\n"))
    }

    @Test func mappedIPv4ClientsReadAsIPv4() {
        var bytes = InlineArray<16, UInt8>(repeating: 0)
        bytes[10] = 0xFF; bytes[11] = 0xFF; bytes[12] = 192; bytes[13] = 0; bytes[14] = 2; bytes[15] = 7
        #expect(PeerAddress(ipv6: bytes, port: 80).text == "[::ffff:192.0.2.7]:80")
    }

    @Test func hostileServerNameCannotForgeFieldsOrLines() {
        var record = Self.record(.clientClose)
        record.serverName = "a b\n\"x\\y\u{7f}é"
        let text = AccessLogFormat.text.line(for: record)
        #expect(text.hasSuffix(#" client_close a\x20b\x0a\x22x\x5cy\x7f\xc3\xa9 - - - -"# + "\n"))
        #expect(text.split(separator: " ").count == 13)
        #expect(text.filter { $0 == "\n" }.count == 1)
        let json = AccessLogFormat.json.line(for: record)
        #expect(json.hasSuffix(#""server_name":"a b\n\"x\\y\u007fé","tls_version":null,"tls_cipher":null,"alpn":null,"client_subject":null}"# + "\n"))
        #expect(json.filter { $0 == "\n" }.count == 1)
    }

    @Test func timestampsAcrossLeapDaysAndBeforeTheEpoch() {
        func stamp(_ nanoseconds: Int64) -> String {
            var record = Self.record(.clientClose)
            record.acceptedAtNanoseconds = nanoseconds
            return String(AccessLogFormat.text.line(for: record).prefix(24))
        }
        #expect(stamp(0) == "1970-01-01T00:00:00.000Z")
        #expect(stamp(951_868_799_999_000_000) == "2000-02-29T23:59:59.999Z")
        #expect(stamp(951_868_800_000_000_000) == "2000-03-01T00:00:00.000Z")
        #expect(stamp(-500_000_000) == "1969-12-31T23:59:59.500Z")
        #expect(stamp(-1) == "1969-12-31T23:59:59.999Z")
    }
}
