import Foundation
@testable import DbgboxKit

extension FileSystem {
    /// Tests read back what they wrote with the largest limit dbgbox uses (16 MiB).
    func read(_ path: String) throws -> Data { try read(path, as: .knownHosts) }
}
