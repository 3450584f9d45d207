import Testing

extension EndToEnd {
    @Suite(.enabled(if: Sockets.ipv6LoopbackAvailable, "IPv6 loopback (::1) is not available"))
    struct IPv6 {
        @Test(arguments: RelayMode.allCases)
        func ipv6ListenerRelaysToIPv6BackendIntact(relay: RelayMode) throws {
            let backend = try TestBackend(.identify(name: "v6"), host: Sockets.ipv6Loopback)
            let proxy = try SwitchyardProcess(
                relay: relay, listenHosts: [Sockets.ipv6Loopback], backends: [backend.endpoint.description])
            #expect(proxy.listen.description.hasPrefix("[::1]:"))

            let connection = try TCPConnection(to: proxy.listen)
            let banner = try connection.receive(exactly: 3)
            #expect(String(decoding: banner, as: UTF8.self) == "v6\n")
            try connection.verifyEchoStream(seed: 0x1276, count: 1 << 20, timeout: 10)
        }
    }
}
