/**
 * Whether NATS still answers this engine. An engine hears every request through NATS; one whose
 * link is gone — its socket silently dropping packets, or reconnecting for as long as NATS stays
 * out of its reach — serves no one, however well its Postgres and Redis connections do. Its NATS
 * client notices a silent link only after two unanswered pings (10–15 s, `connectNats`), and never
 * notices that the engine's Redis leases keep its shards from engines that could serve them.
 *
 * So the engine sends a PING of its own every TTL/12, independently of its rounds (a round that
 * claims shards can take seconds), and judges the link by how long a PING has gone unanswered:
 * `ok`; `suspect` after a quarter of a lease TTL (it stops renewing its membership and claiming);
 * `cut` after a whole lease TTL (it leaves, and hands its shards to an engine that can serve them
 * — see Engine.roundWhileCutOff). After a silence of TTL/4 or more, an answer makes the link `ok`
 * only once it has stayed answered for another TTL/4: a link that flaps does not move shards out
 * and back with every answer. The link is in trouble from the start of such a silence until it has
 * been `ok` again for TTL/4. A link that keeps flapping — silences of TTL/4 and more, and between
 * them answers, or `ok` for less than TTL/4 — counts as cut once its trouble has lasted a whole TTL
 * and held a second such silence, though no silence lasted a TTL: it would otherwise keep its
 * shards, served by fits and starts, for as long as it flaps (the engine renews its membership only
 * now and then, and hands nothing off while the link is suspect). A single silence shorter than a
 * TTL never makes the link cut — the engine hands nothing off — though its trouble (the silence,
 * the wait before the answer is trusted, the TTL/4 of `ok` that ends it) can last longer than a
 * TTL. A link cut stays cut until its trouble ends, however it answers meanwhile.
 *
 * Silence is counted on a monotonic clock from a PING sent, not from the last PONG. A probe timer
 * that fired far too late (the process was paused, or its event loop blocked) starts the count
 * again — no PING went out meanwhile, so the pause says nothing of the link — but the link stays
 * suspect until a PING sent after the pause is answered, and the pause (TTL/4 or more) counts as a
 * break (the engine rejoins when it renews). A link already cut before the pause stays cut. The
 * PONG of a PING sent before a pause is read only after the timers that fire at the resume; the
 * engine yields to I/O once before it acts on a link that is not ok.
 *
 * Not done: a link so backed up that the PONG waits more than a TTL behind the messages queued
 * before it counts as cut, though messages still arrive — an engine that far behind answers
 * nobody in time either, and inbound traffic alone cannot tell a link whose replies are lost.
 */
export type NatsLinkState = 'ok' | 'suspect' | 'cut';

export class NatsLink {
  /** When the oldest PING not answered yet went out; none while the link answers. */
  private unansweredSince: number | undefined;
  /** Before this time an answered link still counts as suspect (after a silence of TTL/4 or more; after a pause, until answered). */
  private trustedFrom = -Infinity;
  /** When the link's trouble began: it stopped being ok, and has not been ok for TTL/4 since. None without trouble. */
  private untrustedSince: number | undefined;
  /** When the last silence of TTL/4 or more of this trouble began. */
  private troubleSilenceFrom: number | undefined;
  /** When this trouble came to hold a second such silence (that one reached TTL/4): it flaps. */
  private flappingSince: number | undefined;
  /** When this trouble made the link cut (a silence of a TTL, or flapping for a TTL): it stays cut until the trouble ends. */
  private cutSince: number | undefined;
  /** Since when the link has been ok, as far as seen (at a probe, an answer, a look); none while it is not. */
  private okSince: number | undefined;
  /** After a late probe: only the answer to a PING sent at or after this time makes the link trusted again. */
  private trustAnswerFrom: number | undefined;
  private lastProbeAt: number | undefined;
  /** The state judged at the last probe. */
  private lastProbed: NatsLinkState | undefined;
  /** Silences of TTL/4 or more that ended in an answer, and pauses: an engine that had one was not reachable all along. */
  breaks = 0;
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
    /** A monotonic clock (ms). */
    private readonly now: () => number = () => performance.now(),
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
    // Three intervals (TTL/4) without a probe: the process did not run (paused, its event loop
    // blocked), and nothing it knew of the link is worth anything now. Only an answer to a PING sent
    // now (or later) makes the link trusted again. Unless the link was cut already at the last
    // probe, its silence and trouble count from this PING (what a look during the gap saw is not
    // the link's doing) and the gap is a break. A link cut at the last probe stays cut: its silence
    // and trouble go on.
    const gap = this.lastProbeAt === undefined ? 0 : sentAt - this.lastProbeAt;
    if (gap > 3 * this.probeEveryMs) {
      if (this.lastProbed !== 'cut') {
        this.unansweredSince = sentAt;
        this.beginTrouble(sentAt);
        this.breaks++;
      }
      this.okSince = undefined;
      this.trustAnswerFrom = sentAt;
      this.trustedFrom = Infinity;
    }
    this.lastProbeAt = sentAt;
    this.unansweredSince ??= sentAt;
    this.lastProbed = this.judge(sentAt);
    this.roundTrip().then(
      () => {
        const answeredAt = this.now();
        if (this.trustAnswerFrom !== undefined && sentAt >= this.trustAnswerFrom) {
          this.trustAnswerFrom = undefined;
          this.trustedFrom = answeredAt;
        }
        if (this.unansweredSince !== undefined && this.unansweredSince <= sentAt) this.answered(this.unansweredSince, answeredAt);
        this.judge(answeredAt);
      },
      () => undefined,
    );
  }

  /** An answer to the oldest PING not answered yet (sent at `silentSince`), or to a later one, came back. */
  private answered(silentSince: number, answeredAt: number): void {
    if (answeredAt - silentSince >= this.suspectAfterMs) {
      if (this.untrustedSince === undefined) this.beginTrouble(silentSince);
      this.noteSilence(silentSince);
      if (answeredAt - silentSince >= this.cutAfterMs) this.cutSince ??= silentSince + this.cutAfterMs;
      // Still waiting for an answer to a PING sent after a gap: that one sets the time.
      if (this.trustAnswerFrom === undefined) this.trustedFrom = answeredAt + this.suspectAfterMs;
      this.breaks++;
    }
    this.unansweredSince = undefined;
  }

  /** How long the oldest unanswered PING has gone unanswered (ms; 0 while the link answers). */
  silentForMs(): number {
    return this.unansweredSince === undefined ? 0 : this.now() - this.unansweredSince;
  }

  /**
   * How long the link has been in trouble (ms; 0 without): since it stopped being ok, until it has
   * been ok again for TTL/4 — at least its silence, longer when it flaps or has just answered. A cut
   * link's trouble began then.
   */
  untrustedForMs(): number {
    const now = this.now();
    this.judge(now);
    return this.untrustedSince === undefined ? 0 : now - this.untrustedSince;
  }

  /** How long the link has counted as cut (ms; 0 while it does not). */
  cutForMs(): number {
    const now = this.now();
    this.judge(now);
    return this.cutSince === undefined ? 0 : now - this.cutSince;
  }

  state(): NatsLinkState {
    return this.judge(this.now());
  }

  /**
   * The link's state at `now`, noting when its trouble began, or that it ended. A link is cut by a
   * silence of a whole TTL, or by trouble a whole TTL long that holds two silences of TTL/4 or more
   * (it flaps); once cut it stays cut until its trouble ends, whatever the link does meanwhile: one
   * that answers for a moment between its silences must not rejoin, take shards back and drop them
   * again. A single silence shorter than a TTL never cuts the link, though with the wait for an
   * answer to be trusted and the TTL/4 of ok that ends it, its trouble may last longer than a TTL.
   */
  private judge(now: number): NatsLinkState {
    const silent = this.unansweredSince === undefined ? 0 : now - this.unansweredSince;
    const ok = silent < this.suspectAfterMs && now >= this.trustedFrom;
    if (ok) {
      this.okSince ??= now;
      if (now - this.okSince >= this.suspectAfterMs) this.endTrouble();
    } else {
      this.okSince = undefined;
      if (this.untrustedSince === undefined) this.beginTrouble(Math.min(now, this.unansweredSince ?? now));
      if (silent >= this.suspectAfterMs) this.noteSilence(this.unansweredSince!);
    }
    if (this.untrustedSince !== undefined && this.cutSince === undefined) {
      const cutAt: number[] = [];
      if (silent >= this.cutAfterMs) cutAt.push(this.unansweredSince! + this.cutAfterMs);
      if (this.flappingSince !== undefined && now - this.untrustedSince >= this.cutAfterMs)
        cutAt.push(Math.max(this.untrustedSince + this.cutAfterMs, this.flappingSince));
      if (cutAt.length > 0) this.cutSince = Math.min(...cutAt);
    }
    return this.cutSince !== undefined ? 'cut' : ok ? 'ok' : 'suspect';
  }

  private beginTrouble(at: number): void {
    this.untrustedSince = at;
    this.troubleSilenceFrom = undefined;
    this.flappingSince = undefined;
    this.cutSince = undefined;
  }

  private endTrouble(): void {
    this.untrustedSince = undefined;
    this.troubleSilenceFrom = undefined;
    this.flappingSince = undefined;
    this.cutSince = undefined;
  }

  /** A silence of this trouble (begun at `from`) has lasted TTL/4: if an earlier one did too, the link flaps. */
  private noteSilence(from: number): void {
    if (this.troubleSilenceFrom === from) return;
    if (this.troubleSilenceFrom !== undefined) this.flappingSince ??= from + this.suspectAfterMs;
    this.troubleSilenceFrom = from;
  }
}
