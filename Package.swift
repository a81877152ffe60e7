// swift-tools-version: 6.1
// Oko: a DPDK software switch whose flow tables match on BPF filter programs.
//
// Module graph, lowest layer first (a module imports only modules above it in this list):
//   CDPDK, CElf, CNghttp2      C shims / system libraries
//   OkoBPF                     eBPF ISA: decoder, assembler, disassembler, interpreter
//   OkoJIT                     x86-64 JIT for OkoBPF programs
//   OkoMaps                    BPF maps (hash, array, LRU, Bloom, count-min, ...)
//   OkoVerifier                static safety proof of a program (types, ranges, termination)
//   OkoLoader                  ELF/BTF loader, helpers, verifier -> runnable programs
//   OkoDPDK                    Swift wrapper of the EAL, ports, mempools
//   OkoDatapath                bridges, parser, classifier, caches, actions, PMD threads
//   OkoStore                   durable configuration store (SQLite WAL through GRDB)
//   OkoSyntax                  JSON documents and flow-rule syntax (ovs-ofctl text and JSON); no dependencies
//   OkoOpenFlow                OpenFlow 1.3 codec and endpoint (drives OkoDatapath)
//   OkoHTTP                    HTTP/1.1 + HTTP/2 (nghttp2) server; knows nothing of switches
//   OkoAPI                     REST resources and metrics on OkoHTTP + OkoDatapath
//   okod, okoctl, oko-bpf-plugin  executables
import PackageDescription

let dpdkCFlags: [CSetting] = [
    .unsafeFlags([
        "-I/usr/include/dpdk", "-I/usr/include/x86_64-linux-gnu/dpdk",
        "-include", "rte_config.h", "-march=corei7",
    ]),
]

let dpdkLibraries = [
    "rte_eal", "rte_mempool", "rte_mbuf", "rte_ethdev", "rte_ring", "rte_net", "rte_kvargs",
    "rte_telemetry", "rte_bpf",
]

let swift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]
// The verifier explores hundreds of thousands of states for a program like p0f: optimised even in debug
// builds, so that okod test runs and `swift test` load programs in seconds, not minutes.
let optimisedInDebug: [SwiftSetting] = swift6 + [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "Oko",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "okod", targets: ["okod"]),
        .executable(name: "okoctl", targets: ["okoctl"]),
        .executable(name: "oko-bpf-plugin", targets: ["oko-bpf-plugin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // C shims
        .target(
            name: "CDPDK",
            cSettings: dpdkCFlags,
            linkerSettings: dpdkLibraries.map { .linkedLibrary($0) }
        ),
        .systemLibrary(name: "CElf", pkgConfig: "libelf", providers: [.apt(["libelf-dev"])]),
        .systemLibrary(name: "CNghttp2", pkgConfig: "libnghttp2", providers: [.apt(["libnghttp2-dev"])]),

        // eBPF engine
        .target(name: "OkoBPF", swiftSettings: swift6),
        .target(name: "OkoJIT", dependencies: ["OkoBPF"], swiftSettings: swift6),
        .target(name: "OkoMaps", swiftSettings: swift6),
        .target(name: "OkoVerifier", dependencies: ["OkoBPF"], swiftSettings: optimisedInDebug),
        .target(
            name: "OkoLoader",
            dependencies: ["OkoBPF", "OkoJIT", "OkoMaps", "OkoVerifier", "CElf"],
            swiftSettings: swift6
        ),

        // datapath
        .target(name: "OkoDPDK", dependencies: ["CDPDK"], swiftSettings: swift6),
        .target(
            name: "OkoDatapath",
            dependencies: ["OkoDPDK", "OkoLoader", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swift6
        ),

        // control plane
        .target(name: "OkoSyntax", swiftSettings: swift6),
        .target(name: "OkoStore", dependencies: [.product(name: "GRDB", package: "GRDB.swift")], swiftSettings: swift6),
        .target(
            name: "OkoOpenFlow",
            dependencies: [
                "OkoDatapath",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swift6
        ),
        .target(
            name: "OkoHTTP",
            dependencies: [
                "CNghttp2",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swift6
        ),
        .target(
            name: "OkoAPI",
            dependencies: ["OkoSyntax", "OkoHTTP", "OkoDatapath", "OkoLoader", "OkoMaps", "OkoVerifier", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swift6
        ),

        // executables
        .executableTarget(
            name: "okod",
            dependencies: [
                "OkoDatapath", "OkoDPDK", "OkoAPI", "OkoHTTP", "OkoSyntax", "OkoOpenFlow", "OkoLoader", "OkoMaps",
                "OkoStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swift6
        ),
        .executableTarget(
            name: "okoctl",
            dependencies: ["OkoLoader", "OkoAPI", "OkoSyntax", "OkoOpenFlow", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swift6
        ),
        .executableTarget(name: "oko-fuzz", dependencies: ["OkoSyntax", "OkoLoader", "OkoVerifier", "OkoBPF", "OkoOpenFlow", "OkoDatapath"], swiftSettings: swift6),
        .executableTarget(
            name: "oko-http-bench", dependencies: ["OkoHTTP"], path: "Benchmarks/http/oko-http-bench",
            swiftSettings: swift6
        ),
        .executableTarget(name: "oko-bpf-plugin", dependencies: ["OkoBPF", "OkoJIT"], swiftSettings: swift6),
        .executableTarget(name: "oko-maps-bench", dependencies: ["OkoMaps"], path: "Benchmarks/maps", swiftSettings: swift6),
        .executableTarget(name: "oko-bpf-bench", dependencies: ["OkoBPF", "OkoJIT"], swiftSettings: swift6),

        // tests
        .testTarget(name: "OkoBPFTests", dependencies: ["OkoBPF", "OkoJIT"], swiftSettings: swift6),
        .testTarget(name: "OkoJITTests", dependencies: ["OkoJIT", "OkoBPF"], swiftSettings: swift6),
        .testTarget(name: "OkoMapsTests", dependencies: ["OkoMaps"], swiftSettings: swift6),
        .testTarget(name: "OkoVerifierTests", dependencies: ["OkoVerifier", "OkoBPF"], swiftSettings: swift6),
        .testTarget(
            name: "OkoLoaderTests", dependencies: ["OkoLoader", "OkoBPF", "OkoMaps", "OkoVerifier"], exclude: ["Programs", "Unsafe"], swiftSettings: swift6),
        .testTarget(name: "OkoDPDKTests", dependencies: ["OkoDPDK"], swiftSettings: swift6),
        .testTarget(name: "OkoDatapathTests", dependencies: ["OkoDatapath"], swiftSettings: swift6),
        .testTarget(name: "OkoOpenFlowTests", dependencies: ["OkoOpenFlow"], swiftSettings: swift6),
        .testTarget(
            name: "OkoHTTPTests",
            dependencies: [
                "OkoHTTP", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swift6
        ),
        .testTarget(name: "OkoSyntaxTests", dependencies: ["OkoSyntax"], swiftSettings: swift6),
        .testTarget(name: "OkoAPITests", dependencies: ["OkoAPI", "OkoHTTP", "OkoDatapath", "OkoSyntax", "OkoLoader"], swiftSettings: swift6),
        .testTarget(name: "OkoStoreTests", dependencies: ["OkoStore"], swiftSettings: swift6),
        .testTarget(name: "OkodTests", dependencies: [], exclude: ["Controllers"], swiftSettings: swift6),
    ]
)
