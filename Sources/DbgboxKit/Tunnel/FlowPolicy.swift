import SSH

/// Every tuning constant of the tunnel engine, in one place, each with what it bounds and why it
/// has its value (the figures are measurements on the testbed with scripts/bench.sh). The engine's
/// parts read them from here; the SSH wrapper gets the ones it needs as arguments.
///
/// Changing one: run `scripts/bench.sh` before and after (1 GiB down/up, RTT, connect, 64 streams,
/// RSS) on a quiet machine.
enum FlowPolicy {
    // MARK: windows and packets (what a peer may send ahead)

    /// Our receive window on the carrier channel (login host → us). 2 MiB: what the login host
    /// may send ahead (libssh2 holds it decrypted until read). Kept below the first channels'
    /// window on purpose: see `channelWindow`.
    static let carrierWindow: UInt32 = 2 << 20
    /// The carrier channel's packet size.
    static let carrierPacket: UInt32 = 32 << 10

    /// Our receive window for each direct-tcpip channel, chosen at open. libssh2 keeps up to a
    /// window of decrypted data per channel that the client has not taken yet, so the windows are
    /// the tunnel's memory bound.
    ///
    /// The first connections get 4 MiB: *more* than the carrier's window (`carrierWindow`),
    /// so that the login host's reading, not the node sshd's writing, paces a download. The node
    /// sshd then always has data queued on its TCP connection to the login host and TCP's own flow
    /// control smooths it. The other way round (a window smaller than the carrier's) the node sshd
    /// writes in bursts as each window adjust arrives, its connection idles in between, and with
    /// BBR (this machine's congestion control) that connection's pacing rate collapsed: measured
    /// on the testbed, 1 MiB / 4 MiB gave 70-85 MiB/s, 4 MiB / 2 MiB 204-216 MiB/s
    /// (scripts/bench.sh; with cubic both were fast). Once `manyChannels` are open each new one
    /// gets `manyChannelsWindow`.
    static let channelWindow: UInt32 = 4 << 20
    /// The window of each channel opened while `manyChannels` are open: 256 KiB. 64 streams share
    /// the path, each needs little, and together they stay within a few MiB (RSS with 64 streams:
    /// scripts/bench.sh).
    static let manyChannelsWindow: UInt32 = 256 << 10
    /// From this many open channels on, new ones get `manyChannelsWindow`.
    static let manyChannels = 2
    /// The window of each `NodeChannel` (remote commands): 2 MiB, libssh2's default, as an exec
    /// channel of a blocking session had. Their traffic is control messages and a Dockerfile.
    static let nodeChannelWindow: UInt32 = 2 << 20
    /// The packet size of each channel the node session opens (direct-tcpip and session).
    static let channelPacket: UInt32 = 32 << 10

    // MARK: the node's side of the connection

    /// Run once on the node session after each connect (an exec channel beside the forwarding),
    /// so that the node's sshd sets TCP_NODELAY on its side of the connection. OpenSSH's sshd
    /// sets it when the first session channel runs a command (`ssh_packet_set_interactive`), and
    /// never on a connection that carries only direct-tcpip channels, as the tunnel's does.
    ///
    /// Without it Nagle held the small last packet of an answer at the node until the login
    /// host had acknowledged what came before, and Linux delays that acknowledgement up to
    /// 40 ms on a request/answer connection: a 64 KiB answer through a forwarded port reaches the
    /// node's sshd as two 32 KiB reads and a ~100-byte rest. The login host's sshd does the same
    /// towards us; that hop is ours to acknowledge (`SocketIO.acknowledgeAtOnce`). Packet
    /// captures on the testbed's links showed the container's sshd and docker-proxy passing each
    /// answer on whole, and the waits at those two sshds only. 2,000 round trips (1 KiB, 64 KiB),
    /// `BENCH_USER_ONLY=forward scripts/bench.sh --part user`: before, 29% stalled ~42 ms, 32.3 s
    /// against 23.4 s for `ssh -L` through `-J` (which stalls the same way); with this alone the
    /// waits moved to the login hop (20.8 s); with both, 4.1 s against 21.4 s (p90 1.3 ms).
    static let nodeNoDelayCommand = "true"

    // MARK: queues between the hop threads and towards the sockets

    /// What may wait between the two hop threads each way (the node transport's inbox and outbox)
    /// before the producing thread holds back. 256 KiB: with 512 KiB the login thread read the
    /// socket in longer bursts and left it longer unread, and downloads on the testbed ran slower
    /// and less evenly (1 GiB, ten alternating runs each: median 126 vs 165 MiB/s).
    static let queueHighWater = 256 << 10
    /// What libssh2 may queue for the login TCP socket before the login hop stops moving the node
    /// session's output into the carrier (the socket's own buffer holds more): 512 KiB.
    static let tcpOutboxHighWater = 512 << 10
    /// The login socket is read ahead of libssh2, which asks for 16 KiB at a time: one recv takes
    /// what the socket holds, up to this, and libssh2's calls are served from it (far fewer
    /// system calls, the receive queue emptied in one go).
    static let tcpReadAhead = 256 << 10

    /// Output of a `NodeChannel` the caller has not taken yet, above which the node hop stops
    /// reading that channel (its window then closes and the command waits): 1 MiB.
    static let nodeChannelBuffer = 1 << 20

    // MARK: reads and writes per call

    /// One carrier read (login hop), and one take from the node outbox into the carrier.
    static let carrierReadSize = 256 << 10
    /// What one carrier read may take from the socket (`SessionTransport.withReadAllowance`): the
    /// node thread starts on each slice while the login thread decrypts the next.
    static let carrierReadSlice = 64 << 10
    /// What one node-session call may take from the inbox (`withReadAllowance`): each channel read
    /// hands its bytes to the client while the login thread decrypts on; each open attempt reads
    /// on while data for other channels streams in, at most a slice at a time.
    static let channelReadSlice = 64 << 10
    /// Client → channel reads: a multiple of what one channel_write sends (no small tail packets).
    static let upChunk = 2 * SSHChannel.maxWrite
    /// Channel → client reads.
    static let downChunk = 64 << 10
    /// Read/write rounds per connection and direction in one pass of the node hop: a busy
    /// connection does not starve the others (a pass that stops with data flowing goes round again
    /// at once).
    static let roundsPerConnection = 4

    // MARK: hand-over (see `HandOverCoordinator`)

    /// Below this many queued bytes the wake of the other hop's thread may be held back while this
    /// thread means to do that hop's pass itself; at this many it is given at once, so bulk
    /// transfers keep both threads (both cores) busy. 16 KiB.
    static let handOverLimit = 16 << 10
    /// Passes of the other hop one thread may do in a row after its own pass (each may bring
    /// work back, e.g. a window adjust or the next request).
    static let handOverRounds = 3

    // MARK: ending

    /// Seconds the login hop spends, on a requested stop, sending what the node session still
    /// queued before it closes the carrier.
    static let stopGrace = 1.0
    /// How much of the exec route's stderr (ssh -W's complaint) is kept to explain its end: the
    /// tail is cut back to `stderrKeep` bytes whenever it grows past `stderrLimit`.
    static let stderrLimit = 2048
    static let stderrKeep = 1024
}
