import Testing
@testable import SwitchyardCore
@Test func endpointParses() throws { #expect(try Endpoint(parsing: "127.0.0.1:80").port == 80) }
