import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A locked FIFO of bytes between two threads (the tunnel's login-hop and node-hop threads).
///
/// `append` always accepts everything: the always-accepting outbox is what keeps libssh2 from
/// ever seeing a half-sent packet (libssh2.md). The bound is the producers' job: they check
/// `isAboveHighWater` before producing more (backpressure), so the queue holds at most the
/// high-water mark plus one producer step.
///
/// The storage is one contiguous buffer (head/tail indices, compacted or grown on demand), so a
/// consumer can take any amount in one copy.
public final class ByteQueue: @unchecked Sendable {
    /// Producers stop producing while `count >= highWater`.
    public let highWater: Int
    private var lock = pthread_mutex_t()
    private var storage: UnsafeMutableRawPointer
    private var capacity: Int
    private var head = 0
    private var tail = 0
    private var closed = false

    public init(highWater: Int, initialCapacity: Int = 64 * 1024) {
        precondition(highWater > 0 && initialCapacity > 0)
        self.highWater = highWater
        capacity = initialCapacity
        storage = UnsafeMutableRawPointer.allocate(byteCount: initialCapacity, alignment: 16)
        pthread_mutex_init(&lock, nil)
    }

    deinit {
        storage.deallocate()
        pthread_mutex_destroy(&lock)
    }

    @inline(__always) private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return body()
    }

    /// Bytes queued.
    public var count: Int { locked { tail - head } }
    public var isEmpty: Bool { count == 0 }
    /// True while producers should hold back.
    public var isAboveHighWater: Bool { locked { tail - head >= highWater } }
    /// The number of bytes the buffer can hold without growing (for memory accounting in tests).
    public var allocatedCapacity: Int { locked { capacity } }

    /// Appends `length` bytes. Returns true when the queue was empty before, i.e. when a
    /// consumer that drains to empty may be asleep and must be woken.
    @discardableResult
    public func append(_ bytes: UnsafeRawPointer, count length: Int) -> Bool {
        appendCounting(bytes, count: length).wasEmpty
    }

    /// `append`, also returning how many bytes are queued after it.
    public func appendCounting(_ bytes: UnsafeRawPointer, count length: Int) -> (wasEmpty: Bool, queued: Int) {
        guard length > 0 else { return (false, count) }
        return locked {
            let wasEmpty = tail == head
            let used = tail - head
            if tail + length > capacity {
                if used + length <= capacity && head >= used {
                    // Compact: the live bytes move to the front (non-overlapping when head >= used).
                    storage.copyMemory(from: storage + head, byteCount: used)
                } else if used + length <= capacity {
                    memmove(storage, storage + head, used)
                } else {
                    var newCapacity = capacity * 2
                    while newCapacity < used + length { newCapacity *= 2 }
                    let grown = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
                    grown.copyMemory(from: storage + head, byteCount: used)
                    storage.deallocate()
                    storage = grown
                    capacity = newCapacity
                }
                head = 0
                tail = used
            }
            (storage + tail).copyMemory(from: bytes, byteCount: length)
            tail += length
            return (wasEmpty, tail - head)
        }
    }

    public func append(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { append($0.baseAddress!, count: $0.count) }
    }

    /// Moves up to `max` bytes into `buffer`. Returns how many, and whether this take brought the
    /// queue from at-or-above the high-water mark to below it (the producer may be waiting).
    public func take(into buffer: UnsafeMutableRawPointer, max: Int) -> (count: Int, resumed: Bool) {
        locked {
            let used = tail - head
            let n = Swift.min(used, max)
            guard n > 0 else { return (0, false) }
            buffer.copyMemory(from: storage + head, byteCount: n)
            head += n
            if head == tail { head = 0; tail = 0 }
            return (n, used >= highWater && used - n < highWater)
        }
    }

    /// Calls `body` with the contiguous queued bytes (under the lock); `body` returns a result and
    /// how many bytes to drop from the front.
    public func withFront<T>(_ body: (UnsafeRawPointer, Int) -> (T, Int)) -> T {
        locked {
            let (result, consumed) = body(UnsafeRawPointer(storage + head), tail - head)
            head += Swift.min(consumed, tail - head)
            if head == tail { head = 0; tail = 0 }
            return result
        }
    }

    /// Marks the producer side finished (the carrier closed). Readers drain what is left, then
    /// see `isClosedAndEmpty`.
    public func close() { locked { closed = true } }
    public var isClosed: Bool { locked { closed } }
    public var isClosedAndEmpty: Bool { locked { closed && head == tail } }
}
