// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "dbgbox",
    // Linux only (WSL 2 included): the engine uses eventfd, /proc and glibc directly. No other
    // platform is declared, since none is built or tested.
    products: [
        .executable(name: "dbgbox", targets: ["dbgbox"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // Layer 1: the C library, from Debian's libssh2-1-dev.
        .systemLibrary(
            name: "CLibSSH2",
            pkgConfig: "libssh2",
            providers: [.apt(["libssh2-1-dev"])]
        ),
        // Also layer 1: the fast path for libssh2 1.10 on OpenSSL 3 (AES-CTR keystream in batches,
        // HMAC from kept key states, padding bytes from a pool), by interposing the OpenSSL functions
        // libssh2 calls; on only after version checks and a self-test (see fastpath.c).
        .target(
            name: "CLibSSH2FastPath",
            linkerSettings: [.linkedLibrary("crypto")]
        ),
        // Layer 2: owns libssh2 lifetimes and errors; never prints.
        .target(
            name: "SSH",
            dependencies: ["CLibSSH2", "CLibSSH2FastPath"]
        ),
        // Layer 3: keys, Dockerfile rendering, container specs, hosts files, side-effect protocols.
        .target(
            name: "DbgboxKit",
            dependencies: [
                "SSH",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // Layer 4: one file per command.
        .target(
            name: "DbgboxCommands",
            dependencies: [
                "DbgboxKit",
                "SSH",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Layer 5: a main of a few lines (and the options of a sanitizer build, scripts/sanitizers.sh).
        .executableTarget(
            name: "dbgbox",
            dependencies: ["DbgboxCommands", "CSanitizerDefaults"]
        ),
        .target(name: "CSanitizerDefaults"),
        .testTarget(
            name: "DbgboxKitTests",
            dependencies: ["DbgboxKit", "SSH"],
            resources: [.copy("Fixtures")]
        ),
        // The commands, driven through `DbgboxMain.execute` with a `CommandContext` of fakes.
        .testTarget(
            name: "DbgboxCommandsTests",
            dependencies: ["DbgboxCommands", "DbgboxKit"]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["DbgboxKit", "SSH"]
        ),
    ]
)
