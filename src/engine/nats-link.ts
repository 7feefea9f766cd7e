/**
 * Whether NATS still answers this engine. An engine hears every request through NATS; one whose
 * link is gone — its socket silently dropping packets, or reconnecting for as long as NATS stays
 * out of its reach — serves no one, however well its Postgres and Redis connections do. The NATS
 * client alone notices a silent link only after its pings go unanswered (minutes by default), and
 * never notices that the engine's Redis leases keep its shards from engines that could serve them.
 *
 * So the engine sends a PING of its own several times per lease TTL, independently of its rounds
 * (a round that claims shards can take seconds), and judges the link by how long a PING has
 * gone unanswered: `ok`; `suspect` after a quarter of a lease TTL (it stops renewing its
 * membership, so no new work is shared out to it); `cut` after a whole lease TTL (it leaves, and
 * hands its shards to an engine that can serve them — see Engine.roundWhileCutOff). Silence is
 * counted from a PING sent, not from the last PONG: a process that was paused (SIGSTOP, a long GC)
 * sent nothing meanwhile, and its link is not judged by the pause.
 */
export type NatsLinkState = 'ok' | 'suspect' | 'cut';

export class NatsLink {
  /** When the oldest PING not answered yet went out; none while the link answers. */
  private unansweredSince: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Silence after which the link is suspect, and cut (ms). */
  readonly suspectAfterMs: number;
  readonly cutAfterMs: number;
  /** How often a PING goes out (ms). */
  readonly probeEveryMs: number;

  constructor(
    /** A round trip to the server (NatsConnection.flush): resolves when its PONG is back. */
    private readonly roundTrip: () => Promise<void>,
    leaseTtlMs: number,
    private readonly now: () => number,
  ) {
    this.cutAfterMs = leaseTtlMs;
    this.suspectAfterMs = Math.round(leaseTtlMs / 4);
    this.probeEveryMs = Math.max(20, Math.round(leaseTtlMs / 12));
  }

  /** Starts probing (a timer that does not keep the process alive). */
  start(): void {
    if (this.timer) return;
    this.probe();
    this.timer = setInterval(() => this.probe(), this.probeEveryMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Sends one PING. Its PONG answers every PING sent before it too (the server answers in order);
   * one sent while the link is down is answered late (after the link heals) or rejected (at the
   * reconnect), and counts as unanswered until then. Unanswered PINGs sent after an answered one's
   * are counted from the next probe: silence may be judged one probe interval short.
   */
  probe(): void {
    const sentAt = this.now();
    this.unansweredSince ??= sentAt;
    this.roundTrip().then(
      () => {
        if (this.unansweredSince !== undefined && this.unansweredSince <= sentAt) this.unansweredSince = undefined;
      },
      () => undefined,
    );
  }

  state(): NatsLinkState {
    const silent = this.unansweredSince === undefined ? 0 : this.now() - this.unansweredSince;
    if (silent >= this.cutAfterMs) return 'cut';
    return silent >= this.suspectAfterMs ? 'suspect' : 'ok';
  }

  /** When the link counts (or will count) as cut: a lease TTL after the oldest unanswered PING (ms). */
  cutAt(): number {
    return (this.unansweredSince ?? this.now()) + this.cutAfterMs;
  }
}
