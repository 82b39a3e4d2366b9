import Foundation
import SSH

/// A channel on the engine's node session, used from any thread (`Tunnel.openNodeChannel`).
///
/// libssh2 sessions are single-threaded: the node session and its channels belong to the node
/// hop's thread (or the login hop's thread in a hand-over pass). So the caller never touches the
/// libssh2 channel: it queues input and reads events here, and the node hop (`NodeForwarder`)
/// opens the channel, starts its command, moves the bytes both ways and reports how it ended, in
/// its passes, under the same rules as its forwarded connections (one open at a time per session,
/// every EAGAIN call repeated to its end, read bounds per call). Remote commands run on it
/// (`RemoteProcessRunner`: a "session" channel with an exec request, beside the direct-tcpip
/// channels of the forwarded connections); so can a nested SSH session carried by a direct-tcpip
/// channel.
public final class NodeChannel: @unchecked Sendable {
    public enum Kind: Sendable, Equatable {
        /// A "session" channel running `command` (an exec request).
        case exec(command: String)
        /// A "direct-tcpip" channel from the node to host:port.
        case directTCPIP(host: String, port: Int)
    }

    /// What the caller reads (`next`).
    public enum Event: Sendable, Equatable {
        case stdout(Data)
        case stderr(Data)
        /// The channel closed; for an exec channel, how its command ended (nil for other kinds).
        case closed(SSHExecStatus?)
        /// The channel could not open or start, or the node hop went down under it.
        case failed(String)
    }

    public let kind: Kind
    /// Wakes the node hop's thread when the caller queued something.
    private let wakeEngine: WakeFD
    private let condition = NSCondition()
    // Caller → engine (under `condition`).
    private var input = Data()
    private var inputClosed = false
    private var abandoned = false
    // Engine → caller (under `condition`).
    private var events: [Event] = []
    private var outputBytes = 0
    private var ended = false

    /// Signalled when an event is queued, for a caller that polls (`take()`) instead of waiting.
    private let eventWake: WakeFD?

    /// A carrier for a nested SSH session (`Tunnel.openCarrier`): the node hop moves the bytes
    /// between the channel and this transport's queues itself, with no copy into `Data` and no
    /// event per read. The session's SEND fills `outbox`, which wakes the node hop when it was
    /// empty; the node hop reads the channel into `inbox`, which wakes the session's thread (its
    /// `fd`) when it was empty, and stops reading while `inbox` is above its high-water mark
    /// (taking below it wakes the node hop again). Only `.closed` and `.failed` are events then.
    public let transport: SessionTransport?

    init(kind: Kind, wakeEngine: WakeFD, eventWake: WakeFD? = nil, carrying: Bool = false) throws {
        self.kind = kind
        self.wakeEngine = wakeEngine
        self.eventWake = eventWake
        transport = carrying ? try SessionTransport(carrierWake: wakeEngine, highWater: FlowPolicy.queueHighWater) : nil
    }

    // MARK: the caller's side (any thread)

    /// Queues bytes for the channel (stdin of an exec channel).
    public func write(_ data: Data) {
        guard !data.isEmpty else { return }
        condition.withLock { input.append(data) }
        wakeEngine.signal()
    }

    /// Sends EOF once what was written went out.
    public func closeInput() {
        condition.withLock { inputClosed = true }
        wakeEngine.signal()
    }

    /// The next event, waiting for it up to `timeout` seconds (nil: for ever). nil on timeout.
    /// After `.closed` or `.failed` there are no more events.
    public func next(timeout: Double? = nil) -> Event? {
        let deadline = timeout.map { Date(timeIntervalSinceNow: $0) }
        condition.lock()
        defer { condition.unlock() }
        while events.isEmpty {
            if let deadline {
                if !condition.wait(until: deadline) && events.isEmpty { return nil }
            } else {
                condition.wait()
            }
        }
        let event = events.removeFirst()
        switch event {
        case .stdout(let data), .stderr(let data):
            released(data.count)
        case .closed, .failed:
            break
        }
        return event
    }

    /// The next event if one is queued, without waiting (a caller that polls `eventWake`).
    public func take() -> Event? {
        condition.lock()
        defer { condition.unlock() }
        guard !events.isEmpty else { return nil }
        let event = events.removeFirst()
        if case .stdout(let data) = event { released(data.count) } else if case .stderr(let data) = event { released(data.count) }
        return event
    }

    /// Bytes written and not yet taken by the engine (a caller bounds what it queues with it).
    public var queuedInput: Int { condition.withLock { input.count } }

    /// Under `condition`: output the caller took; wakes the engine when the buffer has room again.
    private func released(_ count: Int) {
        let wasFull = outputBytes >= FlowPolicy.nodeChannelBuffer
        outputBytes -= count
        if wasFull && outputBytes < FlowPolicy.nodeChannelBuffer { wakeEngine.signal() }
    }

    /// Gives the channel up: the engine closes it (the remote command sees its channel close).
    public func close() {
        condition.withLock { abandoned = true }
        wakeEngine.signal()
    }

    // MARK: the engine's side (the thread that holds the node hop)

    /// Input to send: takes up to `max` bytes (nil when none are queued).
    func takeInput(max: Int) -> Data? {
        condition.withLock {
            guard !input.isEmpty else { return nil }
            let chunk = input.prefix(max)
            input.removeFirst(chunk.count)
            return Data(chunk)
        }
    }

    /// Puts back what a write did not take.
    func returnInput(_ data: Data) {
        condition.withLock { input = data + input }
    }

    /// Whether all input went out and the caller closed it.
    var inputDone: Bool { condition.withLock { inputClosed && input.isEmpty } }
    var hasInput: Bool { condition.withLock { !input.isEmpty } }
    var isAbandoned: Bool { condition.withLock { abandoned } }
    /// Whether the caller has not taken `FlowPolicy.nodeChannelBuffer` of output yet: reading
    /// more then waits (the channel's window closes and the command is held back).
    var outputFull: Bool { condition.withLock { outputBytes >= FlowPolicy.nodeChannelBuffer } }

    func deliver(_ event: Event) {
        if let transport {
            switch event {
            case .closed, .failed: transport.carrierClosed()
            case .stdout, .stderr: break
            }
        }
        condition.withLock {
            guard !ended else { return }
            switch event {
            case .stdout(let data), .stderr(let data): outputBytes += data.count
            case .closed, .failed: ended = true
            }
            events.append(event)
            condition.signal()
        }
        eventWake?.signal()
    }
}
