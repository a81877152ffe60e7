// `okoctl of ...`: Oko's OpenFlow extension messages, for a controller user who reaches the switch over
// OpenFlow only (REST may be closed to them): load a filter program, read and write its maps, and watch
// the maps that SEND_MAPS rules send. TARGET is tcp:HOST:PORT (okod's `openflow.listen`).
//
// Each command opens one OpenFlow 1.3 connection (HELLO, then the request followed by a BARRIER so that
// success is known: every reply and error of the request precede the BARRIER_REPLY), using the same codec
// as the switch. The connection is a blocking socket with a timeout: okoctl has nothing else to do.
// Exit codes as for the REST verbs: 1 the switch refused (its error is printed), 3 unreachable, 5 local.
import ArgumentParser
import Foundation
import OkoOpenFlow

struct OpenFlowCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "of",
        abstract: "Speak Oko's OpenFlow extensions to a switch (TARGET is tcp:HOST:PORT).",
        discussion: """
            Examples:
              okoctl of load-filter-prog tcp:127.0.0.1:6653 1 firewall.o
              okoctl of update-map tcp:127.0.0.1:6653 1 0 0a000002=0000000000000000
              okoctl of dump-map tcp:127.0.0.1:6653 1
              okoctl of watch-maps tcp:127.0.0.1:6653 --count 3
            """,
        subcommands: [OpenFlowLoadFilterProgram.self, OpenFlowUpdateMap.self, OpenFlowDumpMap.self, OpenFlowWatchMaps.self])
}

struct OpenFlowOptions: ParsableArguments {
    @Argument(help: "The switch's OpenFlow address, tcp:HOST:PORT.") var target: String
    @Option(name: .long, help: "Seconds to wait for the switch (default 10).") var timeout: Double = 10
}

/// A blocking OpenFlow 1.3 connection (one request at a time).
final class OpenFlowConnection {
    private let socket: Int32
    private var framer = OpenFlowFramer()
    private var nextXID: UInt32 = 1
    private let timeout: Double
    /// Asynchronous DUMP_MAP_REPLY messages (SEND_MAPS) that arrived while waiting for something else.
    var asynchronousDumps: [(UInt16, [MapDump])] = []

    init(target: String, timeout: Double) throws {
        guard target.hasPrefix("tcp:"), let colon = target.lastIndex(of: ":"), colon > target.index(target.startIndex, offsetBy: 3),
              let port = UInt16(target[target.index(after: colon)...])
        else { throw OkoctlError.usage("'\(target)' is not tcp:HOST:PORT") }
        var host = String(target[target.index(target.startIndex, offsetBy: 4)..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.timeout = timeout

        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var info: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &info) == 0, let first = info else {
            throw OkoctlError.unreachable("cannot resolve '\(host)'")
        }
        defer { freeaddrinfo(info) }
        socket = Glibc.socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw OkoctlError.local("socket: \(String(cString: strerror(errno)))") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard connect(socket, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let reason = String(cString: strerror(errno))
            close(socket)
            throw OkoctlError.unreachable("cannot reach the switch at \(target): \(reason)")
        }
        try send(.hello(Hello(versions: [OpenFlowVersion.v1_3])))
        let hello = try receive()
        guard case .hello = hello.body, hello.version == OpenFlowVersion.v1_3 else {
            throw OkoctlError.local("the switch did not answer HELLO with OpenFlow 1.3")
        }
    }

    deinit { close(socket) }

    @discardableResult
    func send(_ body: MessageBody) throws -> UInt32 {
        let xid = nextXID
        nextXID &+= 1
        let bytes: [UInt8]
        do { bytes = try OpenFlowMessage(xid: xid, body: body).encode() } catch {
            throw OkoctlError.local("cannot encode the request: \(error.reason)")
        }
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw OkoctlError.unreachable("sending to the switch failed: \(String(cString: strerror(errno)))") }
            sent += n
        }
        return xid
    }

    /// The next message; answers ECHO_REQUESTs on the way.
    func receive() throws -> OpenFlowMessage {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let next: [UInt8]?
            do { next = try framer.nextMessage() } catch { throw OkoctlError.local("\(error)") }
            if let next {
                let message: OpenFlowMessage
                do { message = try OpenFlowMessage.decode(next) } catch {
                    throw OkoctlError.local("the switch sent a message okoctl cannot decode: \(error.reason)")
                }
                if case .echoRequest(let data) = message.body {
                    _ = try? OpenFlowMessage(xid: message.xid, body: .echoReply(data)).encode()
                        .withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    continue
                }
                return message
            }
            let n = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if n == 0 { throw OkoctlError.unreachable("the switch closed the connection") }
            if n < 0 {
                throw errno == EAGAIN || errno == EWOULDBLOCK
                    ? OkoctlError.unreachable("no answer from the switch within \(timeout) s")
                    : OkoctlError.unreachable("reading from the switch failed: \(String(cString: strerror(errno)))")
            }
            framer.append(buffer[0..<n])
        }
    }

    /// Sends `body` then a BARRIER; returns the replies to `body`; a switch ERROR becomes `refused`.
    func request(_ body: MessageBody) throws -> [MessageBody] {
        let xid = try send(body)
        let barrier = try send(.barrierRequest)
        var replies: [MessageBody] = []
        var failure: ErrorMessage?
        while true {
            let message = try receive()
            if message.xid == barrier, case .barrierReply = message.body { break }
            if message.xid == xid {
                if case .error(let error) = message.body { failure = error } else { replies.append(message.body) }
            } else if message.xid == 0, case .oko(.dumpMapReply(let program, let maps)) = message.body {
                asynchronousDumps.append((program, maps))
            }
        }
        if let failure { throw OkoctlError.refused(status: Int(failure.type), message: Self.describe(failure)) }
        return replies
    }

    static func describe(_ error: ErrorMessage) -> String {
        if error.type == 0xffff {
            let text = String(decoding: error.data, as: UTF8.self)
            return "OFPET_EXPERIMENTER code \(error.code): \(text)"
        }
        let type = ErrorType(rawValue: error.type).map { "\($0)" } ?? "type \(error.type)"
        return "\(type) code \(error.code)"
    }
}

func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

func bytes(hex text: Substring, what: String) throws -> [UInt8] {
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { throw OkoctlError.usage("\(what) '\(text)' is not whole bytes of hex") }
    var result: [UInt8] = []
    for i in stride(from: 0, to: digits.count, by: 2) {
        guard let byte = UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16) else {
            throw OkoctlError.usage("\(what) '\(text)' is not hex")
        }
        result.append(byte)
    }
    return result
}

func printMapDumps(program: UInt16, _ maps: [MapDump], json: Bool) {
    if json {
        let text = maps.map { m in
            let entries = m.entries.map { "{\"key\": \"\(hex($0.key))\", \"value\": \"\(hex($0.value))\"}" }
            return "{\"map\": \(m.mapID), \"key_size\": \(m.keySize), \"value_size\": \(m.valueSize), \"entries\": [\(entries.joined(separator: ", "))]}"
        }
        print("{\"program\": \(program), \"maps\": [\(text.joined(separator: ", "))]}")
        return
    }
    for m in maps {
        print("program \(program) map \(m.mapID) (\(m.keySize)-byte keys, \(m.valueSize)-byte values): \(m.entries.count) entries")
        for e in m.entries { print("  \(hex(e.key)) = \(hex(e.value))") }
    }
}

struct OpenFlowLoadFilterProgram: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "load-filter-prog",
                                                    abstract: "Load (or replace) a filter program from an ELF object (LOAD_FILTER_PROG).")
    @OptionGroup var options: OpenFlowOptions
    @Argument(help: "Program id (the filter_prog value of rules).") var program: UInt16
    @Argument(help: "ELF object built with clang -O2 -target bpf.") var file: String

    func run() async throws {
        try await perform {
            let elf = [UInt8](try readFile(file))
            let connection = try OpenFlowConnection(target: options.target, timeout: options.timeout)
            _ = try connection.request(.oko(.loadFilterProgram(programID: program, elf: elf)))
            print("program \(program) loaded (\(elf.count) bytes)")
        }
    }
}

struct OpenFlowUpdateMap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "update-map",
                                                    abstract: "Insert or overwrite map entries (UPDATE_MAP).")
    @OptionGroup var options: OpenFlowOptions
    @Argument(help: "Program id.") var program: UInt16
    @Argument(help: "Map id (its index in the object).") var map: UInt16
    @Argument(help: "Entries as KEYHEX=VALUEHEX.") var entries: [String]

    func run() async throws {
        try await perform {
            var parsed: [MapEntry] = []
            for item in entries {
                let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw OkoctlError.usage("entry '\(item)' is not KEYHEX=VALUEHEX") }
                parsed.append(MapEntry(key: try bytes(hex: parts[0], what: "key"), value: try bytes(hex: parts[1], what: "value")))
            }
            guard let first = parsed.first else { throw OkoctlError.usage("give at least one entry") }
            guard parsed.allSatisfy({ $0.key.count == first.key.count && $0.value.count == first.value.count }) else {
                throw OkoctlError.usage("all entries must have the same key size and the same value size")
            }
            let connection = try OpenFlowConnection(target: options.target, timeout: options.timeout)
            _ = try connection.request(.oko(.updateMap(programID: program, map: MapDump(
                mapID: map, keySize: UInt32(first.key.count), valueSize: UInt32(first.value.count), entries: parsed))))
            print("map \(map) of program \(program): \(parsed.count) entries written")
        }
    }
}

struct OpenFlowDumpMap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dump-map",
                                                    abstract: "Print the entries of a program's maps (DUMP_MAP).")
    @OptionGroup var options: OpenFlowOptions
    @Argument(help: "Program id.") var program: UInt16
    @Argument(help: "Map ids (default: every map).") var maps: [UInt16] = []
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() async throws {
        try await perform {
            let connection = try OpenFlowConnection(target: options.target, timeout: options.timeout)
            var merged: [MapDump] = []
            for reply in try connection.request(.oko(.dumpMapRequest(programID: program, mapIDs: maps))) {
                guard case .oko(.dumpMapReply(_, let parts)) = reply else { continue }
                // A large map arrives in slices over several replies.
                for part in parts {
                    if let i = merged.firstIndex(where: { $0.mapID == part.mapID }) {
                        merged[i].entries += part.entries
                    } else {
                        merged.append(part)
                    }
                }
            }
            printMapDumps(program: program, merged, json: json)
        }
    }
}

struct OpenFlowWatchMaps: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "watch-maps",
                                                    abstract: "Print the maps that SEND_MAPS rules send to controllers.")
    @OptionGroup var options: OpenFlowOptions
    @Option(name: .long, help: "Stop after this many messages (default 1).") var count = 1
    @Flag(name: .long, help: "Print JSON lines.") var json = false

    func run() async throws {
        try await perform {
            let connection = try OpenFlowConnection(target: options.target, timeout: options.timeout)
            var seen = 0
            while seen < count {
                let message = try connection.receive()
                guard message.xid == 0, case .oko(.dumpMapReply(let program, let maps)) = message.body else { continue }
                printMapDumps(program: program, maps, json: json)
                seen += 1
            }
        }
    }
}
