import type { Redlock } from '@sesamecare-oss/redlock';
import type { Redis } from 'ioredis';
import type { NatsConnection } from 'nats';
import type pg from 'pg';
import type { Config } from '../config.js';
import { withDeadline } from '../deadline.js';
import type { Logger } from '../log.js';
import { InventoryStore, saleState, type StoredEvent } from '../adapters/postgres/inventory-store.js';
import { QUERY_TIMEOUT_MS } from '../adapters/postgres/pool.js';
import { followRedisReady } from '../adapters/redis/client.js';
import { assignShards, shardKey, type ShardRef } from './assignment.js';
import { Membership } from './membership.js';
import type { EngineMetrics } from './metrics.js';
import { ShardCommits } from './shard-commits.js';
import { NatsLink, type NatsLinkState } from './nats-link.js';
import { OutboxRelay, type RelayProducer } from './outbox-relay.js';
import { DEFAULT_RETENTION, Retention } from './retention.js';
import { createShardDecider } from './shard-decider.js';
import { ShardHost, type StopReason } from './shard-host.js';
import { ShardLease, shardLeaseKey } from './shard-lease.js';

/** What an engine is wired to; all created by the caller (the CLI or a test). */
export interface EngineDeps {
  readonly config: Config;
  readonly log: Logger;
  readonly pool: pg.Pool;
  readonly redis: Redis;
  readonly redlock: Redlock;
  readonly nc: NatsConnection;
  readonly metrics: EngineMetrics;
  /** Opens the outbox relay's producer sessions (OutboxRelayDeps.connect); omit to run an engine without a relay. */
  readonly connectProducer?: () => Promise<RelayProducer>;
  readonly now?: () => number;
}

/** Engine.settleOver: how often it looks, how many shards it settles at most each time, how long before it tries one again. */
const SETTLE_INTERVAL_MS = 5_000;
const SETTLE_PER_ROUND = 2;
const SETTLE_RETRY_MS = 30_000;
/**
 * How long an engine cut off from NATS waits for an engine that stayed reachable all along before it
 * takes any engine reachable for a lease TTL (roundWhileCutOff): longer than its NATS client needs
 * to notice a dead link and reconnect (two pings, 10–15 s).
 */
const CUT_OFF_RELAX_MS = 30_000;
/** How long a stop waits to learn which of its sales are over (it hands off for a next owner otherwise). */
const STOP_LOOKUP_MS = 1_000;

interface OwnedShard {
  readonly ref: ShardRef;
  readonly host: ShardHost;
  readonly lease: ShardLease;
}

/**
 * `sentinel engine`: hosts shard actors. Every `rebalanceIntervalMs` it refreshes its membership,
 * computes which shards it should own (the same pure assignment on every engine), hands off the
 * ones it should not own and claims the ones it should: Redis lease → epoch bump in Postgres →
 * rebuild from Postgres → subscribe.
 */
export class Engine {
  private readonly owned = new Map<string, OwnedShard>();
  private readonly claiming = new Set<string>();
  private readonly store: InventoryStore;
  /** The shards' group commits, written together (ShardCommits). */
  private readonly commits: ShardCommits;
  private readonly membership: Membership;
  private readonly relay: OutboxRelay | undefined;
  private readonly retention: Retention;
  private readonly now: () => number;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  /** The heartbeat between rounds: its timer, and the beat under way (beatBetweenRounds). */
  private heartbeat: NodeJS.Timeout | undefined;
  private beating: Promise<void> | undefined;
  /** The membership renewal under way (a round's or a beat's): a leave waits for it. */
  private renewal: Promise<unknown> | undefined;
  private stopping = false;
  private lastTickOk = 0;
  private nextSettleAt = 0;
  private readonly settleTriedAt = new Map<string, number>();
  /** Closed sales' hand-offs under way (closeInBackground). */
  private readonly closing = new Set<Promise<void>>();
  /** The settling of sales that are over, while under way (settleOver). */
  private settling: Promise<void> | undefined;
  /** Shards settleOver is claiming or handing off (the round leaves them to it). */
  private readonly settlingShards = new Set<string>();
  /** Whether NATS answers (NatsLink), and what the last round found. */
  private readonly natsLink: NatsLink;
  private natsLinkSeen: NatsLinkState = 'ok';
  /**
   * NatsLink.breaks at the last renewal of the membership, and when that was (monotonic ms): after
   * a break, or a TTL without a renewal (none yet, a pause, failed rounds, a cut), it joins afresh.
   */
  private natsBreaksRenewed = 0;
  private lastRenewedAt: number | undefined;
  /** Whether it left the membership because NATS cut it off (logged once). */
  private leftCutOff = false;
  /** Stops following its Redis client's connection (started by `start`). */
  private unfollowRedis: (() => void) | undefined;

  constructor(private readonly deps: EngineDeps) {
    this.now = deps.now ?? Date.now;
    this.log = deps.log.child({ engine: deps.config.engineId });
    this.store = new InventoryStore(deps.pool);
    this.commits = new ShardCommits(this.store, (way) => deps.metrics.commitTransactions.inc({ way }));
    this.membership = new Membership(deps.config.eventFilter || 'all', deps.redis, deps.config.engineId, deps.config.leaseTtlMs, this.now);
    this.natsLink = new NatsLink(() => deps.nc.flush(), deps.config.leaseTtlMs);
    this.relay = deps.connectProducer
      ? new OutboxRelay({
          pool: deps.pool,
          connect: deps.connectProducer,
          topic: deps.config.reservationsTopic,
          log: this.log.child({ component: 'relay' }),
          onPublished: (n) => deps.metrics.outboxPublished.inc(n),
          onIncompleteAck: () => deps.metrics.outboxIncompleteAcks.inc(),
        })
      : undefined;
    const relay = this.relay;
    if (relay) deps.metrics.outboxBacklog = () => relay.backlog();
    this.retention = new Retention({
      pool: deps.pool,
      options: {
        ...DEFAULT_RETENTION,
        eventFilter: deps.config.eventFilter,
        idempotencyTtlMs: deps.config.idempotencyTtlS * 1000,
        outboxRetentionMs: deps.config.outboxRetentionS * 1000,
      },
      intervalMs: deps.config.retentionIntervalS * 1000,
      log: this.log.child({ component: 'retention' }),
      onDeleted: (table, rows) => deps.metrics.retentionDeleted.inc({ table }, rows),
      now: this.now,
    });
  }

  /** Shards served right now, as `event/shard` keys. */
  ownedShards(): string[] {
    return [...this.owned.keys()].sort();
  }

  /** Ready when the last membership/assignment round succeeded recently. */
  isReady(): boolean {
    return !this.stopping && this.now() - this.lastTickOk < this.deps.config.leaseTtlMs;
  }

  start(): void {
    this.relay?.start();
    this.retention.start();
    this.natsLink.start();
    this.deps.metrics.natsLink.set(1);
    // Redis holds its leases and membership: whether its client is connected, and how often it came
    // back (a reconnection is counted at each ready after the first).
    let everReady = false;
    this.unfollowRedis = followRedisReady(this.deps.redis, (ready) => {
      this.deps.metrics.redisConnected.set(ready ? 1 : 0);
      if (ready && everReady) this.deps.metrics.redisReconnects.inc();
      everReady ||= ready;
    });
    this.heartbeat = setInterval(() => this.beatBetweenRounds(), this.deps.config.leaseTtlMs / 6);
    const loop = async () => {
      if (this.stopping) return;
      this.ticking = this.tick();
      await this.ticking;
      this.ticking = undefined;
      if (!this.stopping) this.timer = setTimeout(() => void loop(), this.deps.config.rebalanceIntervalMs);
    };
    void loop();
  }

  /** One membership + assignment round. Never throws: a failed round is logged and retried. */
  async tick(): Promise<void> {
    try {
      let link = this.natsLink.state();
      // A PONG already received is read only after the timers that fire now (after a pause, say).
      if (link !== 'ok') {
        await new Promise((resolve) => setImmediate(resolve));
        link = this.natsLink.state();
      }
      if (link !== this.natsLinkSeen) {
        if (link === 'ok') this.log.info('NATS answers again');
        else if (this.natsLinkSeen === 'ok') this.log.warn('NATS does not answer: not renewing the membership, not claiming');
        this.natsLinkSeen = link;
        this.deps.metrics.natsLink.set({ ok: 1, suspect: 0.5, cut: 0 }[link]);
      }
      if (link !== 'ok') {
        await this.roundWhileCutOff(link);
        return;
      }
      this.leftCutOff = false;
      const ours = (eventId: string) => !this.deps.config.eventFilter || eventId === this.deps.config.eventFilter;
      const events = (await this.store.eventsOnSale(new Date(this.now()))).filter((e) => ours(e.id));
      // The heartbeats (the row, the membership) only while the link is ok right now: the reads
      // can take long, and an engine cut off from NATS must stop renewing within TTL/4 of its
      // silence (roundWhileCutOff).
      if (this.natsLink.state() !== 'ok') return;
      await this.engineSeen();
      // Only an engine that can read and write Postgres stays a member: one that cannot (wrong
      // credentials or grants, no connection to be had) would be given shards it never claims, and
      // they would stay unserved for as long as it lives. Without its heartbeat it drops out
      // within a lease TTL.
      if (this.natsLink.state() !== 'ok') return;
      const members = await this.renewMembership();
      const byId = new Map(events.map((e) => [e.id, e]));
      const all: ShardRef[] = events.flatMap((e) => Array.from({ length: e.shardCount }, (_, shard) => ({ eventId: e.id, shard })));
      const desired = assignShards(all, members, this.deps.config.engineId);
      const desiredKeys = new Set(desired.map(shardKey));
      const over = await this.salesOver([...this.owned.values()].filter(({ ref }) => !byId.has(ref.eventId)));
      for (const [key, owned] of this.owned) {
        if (this.settlingShards.has(key)) continue; // settleOver hands it off itself
        const event = byId.get(owned.ref.eventId);
        if (over.has(owned.ref.eventId)) this.closeInBackground(owned);
        else if (!desiredKeys.has(key)) await this.handOff(owned, 'handoff');
        else if (event) this.followRules(owned, event);
      }
      for (const ref of desired) {
        const key = shardKey(ref);
        const event = byId.get(ref.eventId);
        if (this.natsLink.state() !== 'ok') break; // the next round sees to it
        if (!this.owned.has(key) && !this.claiming.has(key) && event && !this.stopping) await this.claim(ref, event);
      }
      this.deps.metrics.ownedShards.set(this.owned.size);
      this.lastTickOk = this.now();
      // In the background, one at a time: settling a big shard takes many commits, and the
      // round's heartbeat must not wait for them (the engine would drop out of membership).
      if (this.settling === undefined && !this.stopping)
        this.settling = this.settleOver(members, ours).finally(() => (this.settling = undefined));
    } catch (error) {
      this.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'Rebalance round failed');
    }
  }

  /**
   * Renews this engine's membership and returns the members. It joins afresh after a break of its
   * NATS link, and after a TTL without a renewal (its entry expired: a pause, rounds that failed)
   * — it was not reachable all along.
   */
  private async renewMembership(): Promise<string[]> {
    const breaks = this.natsLink.breaks;
    const renewingAt = performance.now();
    const rejoined =
      this.natsBreaksRenewed !== breaks ||
      this.lastRenewedAt === undefined ||
      renewingAt - this.lastRenewedAt >= this.deps.config.leaseTtlMs;
    const heartbeat = this.membership.heartbeat(rejoined);
    this.renewal = heartbeat;
    try {
      const members = await heartbeat;
      this.natsBreaksRenewed = breaks;
      // A round's renewal and a beat's can overlap: the later start counts.
      this.lastRenewedAt = Math.max(this.lastRenewedAt ?? -Infinity, renewingAt);
      return members;
    } finally {
      if (this.renewal === heartbeat) this.renewal = undefined;
    }
  }

  /**
   * The engine's heartbeat row, for the operator (which reads Postgres only): the shards this
   * engine owns count as owned while its row lasts — a few rounds or lease TTLs, whichever is
   * longer, so that a slow round does not make a serving engine look dead.
   */
  private engineSeen(): Promise<void> {
    const { engineId, leaseTtlMs, rebalanceIntervalMs } = this.deps.config;
    return this.store.engineSeen(engineId, 3 * Math.max(leaseTtlMs, rebalanceIntervalMs));
  }

  /**
   * The heartbeat between renewals by rounds, looked at every TTL/6: one when nothing has renewed the
   * membership for TTL/3 (so renewals are at most TTL/2 apart, plus a write's time). A
   * round that claims many shards, each rebuilt from Postgres (a big one can take longer than the
   * TTL by itself), would otherwise outlast the membership, and a live engine would drop out of it —
   * its shards assigned to the others, who would find them leased — and its heartbeat row would
   * age. As a round does: only while the link is ok, and only after writing the row (an engine that
   * cannot use Postgres is no member); never after the engine left for a cut link (only a round
   * that finds the link ok again rejoins). One at a time; one that fails is logged.
   */
  private beatBetweenRounds(): void {
    const { leaseTtlMs } = this.deps.config;
    if (this.beating || this.stopping || this.leftCutOff || this.natsLink.state() !== 'ok') return;
    if (this.lastRenewedAt !== undefined && performance.now() - this.lastRenewedAt < leaseTtlMs / 3) return;
    this.beating = (async () => {
      await this.engineSeen();
      if (this.natsLink.state() === 'ok' && !this.stopping && !this.leftCutOff) await this.renewMembership();
    })()
      .catch((error: unknown) =>
        this.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'Heartbeat between rounds failed'),
      )
      .finally(() => (this.beating = undefined));
  }

  /**
   * A round while NATS does not answer (NatsLink): this engine hears no request, so it renews
   * neither its membership nor its heartbeat row, and claims nothing. Once the link counts as cut
   * it leaves, and hands its shards off (their pending commits land, their leases go; a sale that
   * is over ends its holds) — but only to an engine NATS reached all along: one that was a member
   * before this engine's link stopped being ok (it fell silent, or began to flap) and has renewed
   * since this engine counted as cut. Every silence of TTL/4 makes an engine join afresh when it
   * renews again (NatsLink.breaks), so when NATS is down for every engine none of them qualifies,
   * however they come back: each keeps its shards and serves them the moment NATS is back, instead
   * of all of them being handed round and rebuilt. An engine that stays a member that way had its PINGs answered within TTL/4 throughout
   * a silence of a whole TTL of this one's — NATS was up, the link of this one was not.
   *
   * Silent for CUT_OFF_RELAX_MS (or three TTLs, if longer), it also takes an engine that has been
   * reachable without a break for a lease TTL, though it joined during the silence: NATS came back
   * for the others long ago (every engine had a break, say), or they were restarted meanwhile —
   * without this its shards would wait for its own link however long that takes.
   */
  private async roundWhileCutOff(link: 'suspect' | 'cut'): Promise<void> {
    if (link === 'suspect') return;
    await this.renewal?.catch(() => undefined); // a renewal begun while the link was ok goes first, not after the leave
    await this.membership.leave();
    if (!this.leftCutOff) this.log.warn('Cut off from NATS for a lease TTL: left the membership');
    this.leftCutOff = true;
    const shards = [...this.owned.entries()].filter(([key]) => !this.settlingShards.has(key)).map(([, owned]) => owned);
    if (shards.length === 0) return;
    const now = this.now();
    // Since the link stopped being ok: its silence, or the flapping that went on for a TTL.
    const troubleMs = this.natsLink.untrustedForMs();
    const troubleSince = now - troubleMs;
    const relaxAfterMs = Math.max(CUT_OFF_RELAX_MS, 3 * this.natsLink.cutAfterMs);
    const joinedBefore = troubleMs >= relaxAfterMs ? now - this.natsLink.cutAfterMs : troubleSince;
    // Renewed since this engine counted as cut (a TTL after its trouble began, or later when its
    // flapping cut it), and lately: not one that has stopped renewing since.
    const renewedAfter = Math.max(now - this.natsLink.cutForMs(), now - this.natsLink.cutAfterMs / 2);
    const serving = await this.membership.servingSince(joinedBefore, renewedAfter);
    if (serving.length === 0) return;
    this.log.warn({ shards: shards.length, engines: serving }, 'Cut off from NATS: handing shards to engines that can serve them');
    const over = await this.salesOver(shards);
    for (const owned of shards) if (over.has(owned.ref.eventId)) this.closeInBackground(owned);
    await Promise.all(shards.filter((owned) => !over.has(owned.ref.eventId)).map((owned) => this.handOff(owned, 'handoff')));
  }

  /**
   * Ends the live holds of sales that are over but whose shards no owner handed off as closed —
   * it crashed, was stopped before it could tell the sale was over (a stop hands off for a next
   * owner then, and a closed sale has none), or its last commit failed. Such a shard is claimed
   * like any other, fencing whoever last owned it, and handed off as closed at once
   * (ShardHost.handOff). So is a shard of a sale whose opening moved later, once one of its holds
   * is due: the claim expires what is due, and it is handed off for when the sale opens. Looked
   * for every SETTLE_INTERVAL_MS, shared out like shards on sale, a few each time, and a shard
   * tried waits a while before it is tried again, so neither a backlog nor one bad shard starves
   * the others or holds up the round for long. Runs in the background of the round, one at a
   * time; a failure here does not fail the round.
   */
  private async settleOver(members: readonly string[], ours: (eventId: string) => boolean): Promise<void> {
    const now = this.now();
    if (now < this.nextSettleAt || this.stopping) return;
    this.nextSettleAt = now + SETTLE_INTERVAL_MS;
    try {
      for (const [key, triedAt] of this.settleTriedAt) if (now - triedAt >= SETTLE_RETRY_MS) this.settleTriedAt.delete(key);
      const toSettle = (await this.store.shardsToSettle(new Date(now))).filter((ref) => ours(ref.eventId));
      const saleOver = new Map(toSettle.map((ref) => [shardKey(ref), ref.over]));
      const mine = assignShards(toSettle, members, this.deps.config.engineId).filter(
        (ref) => !this.owned.has(shardKey(ref)) && !this.claiming.has(shardKey(ref)) && !this.settleTriedAt.has(shardKey(ref)),
      );
      let settled = 0;
      for (const ref of mine) {
        if (this.stopping || settled >= SETTLE_PER_ROUND || this.natsLink.state() !== 'ok') return;
        const event = await this.store.getEvent(ref.eventId);
        // On sale again (its opening arrived, or moved back) since the look: the rounds serve it.
        if (!event || saleState(event, this.now()) === 'open') continue;
        // Its lease still held: a live owner settles it itself, or the lease runs out by the next
        // look. Otherwise not again for a while, whether or not the claim and the last commit work.
        const key = shardKey(ref);
        this.settlingShards.add(key);
        try {
          if ((await this.claim(ref, event)) === 'busy') continue;
          this.settleTriedAt.set(key, now);
          settled++;
          const owned = this.owned.get(key);
          // Claiming expired what was due (`expireNow`); a sale that is only postponed keeps the rest.
          if (owned) await this.handOff(owned, saleOver.get(key) === false ? 'handoff' : 'closed');
        } finally {
          this.settlingShards.delete(key);
        }
      }
    } catch (error) {
      this.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'Settling closed sales failed');
    }
  }

  /** Applies the event's current hold TTL and customer limit to a shard served here (an operator changed them). */
  private followRules(owned: OwnedShard, event: StoredEvent): void {
    const rules = { holdTtlMs: event.holdTtlMs, customerLimit: event.customerLimit };
    try {
      if (owned.host.applyRules(rules))
        this.log.info({ event: event.id, shard: owned.ref.shard, ...rules }, "Applied the event's new rules");
    } catch (error) {
      // Rules the shard cannot use (out of bounds): it keeps deciding by the ones it has.
      this.log.error(
        { event: event.id, shard: owned.ref.shard, ...rules, err: error instanceof Error ? error.message : String(error) },
        "Cannot apply the event's new rules",
      );
    }
  }

  /** Claims and starts serving a shard: 'busy' when its lease could not be had (another engine holds it, or Redis did not answer). */
  private async claim(ref: ShardRef, event: StoredEvent): Promise<'claimed' | 'busy' | 'failed'> {
    const key = shardKey(ref);
    this.claiming.add(key);
    let lease: ShardLease | undefined;
    /** Owned from the moment it serves: the lease is then released on hand-off, not here. */
    let owned = false;
    try {
      lease = await ShardLease.tryAcquire(
        this.deps.redlock,
        shardLeaseKey(ref.eventId, ref.shard),
        this.deps.config.leaseTtlMs,
        this.log,
        (reason) => this.onLeaseLost(key, lease, reason),
      );
      if (!lease) return 'busy'; // still held by its previous owner: it hands off, or its lease runs out
      // A pause here (GC, SIGSTOP) can outlast the lease before its timer fires: whoever took it
      // since must not be fenced by an epoch bump of ours, nor find us serving.
      if (!lease.holdOrLose()) return 'failed';
      const epoch = await this.store.claimShard(ref.eventId, ref.shard, this.deps.config.engineId, lease);
      const log = this.log.child({ event: ref.eventId, shard: ref.shard, epoch });
      const now = this.now();
      const rows = await this.store.loadShard(ref.eventId, ref.shard, new Date(now - this.deps.config.idempotencyTtlS * 1000));
      // The actor can expire holds before the host exists; the ref closes that loop.
      const hostRef: { current?: ShardHost } = {};
      const decider = createShardDecider({
        event,
        shard: ref.shard,
        rows,
        now: this.now,
        idempotencyTtlMs: this.deps.config.idempotencyTtlS * 1000,
        persistExpired: (changes) => hostRef.current?.persist(changes),
        onFault: (error) => hostRef.current?.fault(error),
      });
      const held = lease;
      const host: ShardHost = new ShardHost({
        eventId: ref.eventId,
        shard: ref.shard,
        epoch,
        rules: { holdTtlMs: event.holdTtlMs, customerLimit: event.customerLimit },
        leaseHeld: () => held.holdOrLose(),
        topic: this.deps.config.reservationsTopic,
        batchWindowMs: this.deps.config.batchWindowMs,
        batchMax: this.deps.config.batchMax,
        decider,
        store: this.commits,
        nc: this.deps.nc,
        log,
        metrics: this.deps.metrics,
        now: this.now,
        onStopped: (reason) => void this.onHostStopped(key, host, reason),
        onOutbox: () => this.relay?.notify(),
      });
      hostRef.current = host;
      if (!lease.holdOrLose()) {
        decider.stop();
        return 'failed';
      }
      let due: ReturnType<typeof decider.expireNow>;
      try {
        due = decider.expireNow(); // before serving: if it throws (a bug), nothing is left subscribed
      } catch (error) {
        decider.stop();
        throw error;
      }
      host.start();
      host.persist(due);
      this.owned.set(key, { ref, host, lease });
      this.deps.metrics.leaseEvents.inc({ event: 'claimed' });
      this.deps.metrics.ownedShards.set(this.owned.size);
      log.info({ seats: rows.seats.length, liveHolds: rows.liveHolds.length }, 'Claimed shard');
      owned = true;
      return 'claimed';
    } catch (error) {
      this.log.warn({ event: ref.eventId, shard: ref.shard, err: error instanceof Error ? error.message : String(error) }, 'Claim failed');
      return 'failed';
    } finally {
      this.claiming.delete(key);
      if (lease && !owned) await lease.release();
    }
  }

  private onLeaseLost(key: string, lease: ShardLease | undefined, reason: string): void {
    const owned = this.owned.get(key);
    // Not this lease's host: an old lease's loss can fire after the shard was claimed again here.
    if (!owned || owned.lease !== lease) return;
    this.owned.delete(key);
    owned.host.leaseLost();
    this.deps.metrics.leaseEvents.inc({ event: 'lost' });
    this.deps.metrics.ownedShards.set(this.owned.size);
    this.log.warn({ shard: key, reason }, 'Stopped serving shard: lease lost');
  }

  private async onHostStopped(key: string, host: ShardHost, reason: StopReason): Promise<void> {
    const owned = this.owned.get(key);
    // Not this host's entry: a commit of a host that lost its lease can fail after the shard was
    // claimed again, and the new host's lease is not this one's to give back.
    if (owned?.host !== host) return;
    this.owned.delete(key);
    this.deps.metrics.ownedShards.set(this.owned.size);
    // Fenced: someone else owns it. Commit failed: give it up so it is rebuilt from Postgres
    // (by us on a later round, or by another engine).
    await owned.lease.release();
    this.log.warn({ shard: key, reason }, 'Released shard after it stopped');
  }

  /**
   * Hands a shard off and gives up its lease. Its ownership in Postgres is cleared only if the
   * hand-off finished as asked: a shard whose last commit failed keeps its owner's name until
   * the next claim, as after a crash — and the operator waits for the engines of a deleted event
   * until no shard names one.
   */
  private async handOff(owned: OwnedShard, reason: 'handoff' | 'closed'): Promise<void> {
    const key = shardKey(owned.ref);
    if (this.owned.get(key) !== owned) return; // handed off already (the round and settling both can)
    this.owned.delete(key);
    const stopped = await owned.host.handOff(reason);
    if (stopped === reason) await this.store.releaseShard(owned.ref.eventId, owned.ref.shard, owned.host.epoch).catch(() => undefined);
    await owned.lease.release();
    this.deps.metrics.leaseEvents.inc({ event: 'released' });
    this.deps.metrics.ownedShards.set(this.owned.size);
    if (stopped === reason) this.log.info({ shard: key, reason }, 'Handed off shard');
    else this.log.warn({ shard: key, reason, stopped }, 'Shard stopped during its hand-off');
  }

  /**
   * A closed sale's hand-off, not awaited by the round: ending a big shard's holds takes one
   * commit per `batchMax` of them, and the round's heartbeat must not wait for that. `stop`
   * waits for it.
   */
  private closeInBackground(owned: OwnedShard): void {
    const closing: Promise<void> = this.handOff(owned, 'closed').finally(() => this.closing.delete(closing));
    this.closing.add(closing);
  }

  /** Graceful shutdown: stop taking work, flush, release every lease, leave membership. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    clearInterval(this.heartbeat);
    this.natsLink.stop();
    const retention = this.retention.stop();
    await this.ticking;
    await this.settling;
    // A beat's row write must not land after the stop's `engineGone`; but a write that hangs must not hold the stop.
    await withDeadline(this.beating ?? Promise.resolve(), STOP_LOOKUP_MS).catch(() => undefined);
    await this.membership.leave().catch(() => undefined);
    // A sale that is over ends its holds here: after a stop nobody else would serve its shards.
    const owned = [...this.owned.values()];
    const over = await this.salesOver(owned, STOP_LOOKUP_MS);
    await Promise.all([...this.closing, ...owned.map((o) => this.handOff(o, over.has(o.ref.eventId) ? 'closed' : 'handoff'))]);
    await withDeadline(this.store.engineGone(this.deps.config.engineId), STOP_LOOKUP_MS).catch(() => undefined);
    await this.relay?.stop();
    await retention;
    this.unfollowRedis?.();
  }

  /**
   * Which of these shards' sales are over (InventoryStore.closedEvents). If that cannot be
   * learnt (in time), none: their hand-off leaves the holds live, for `settleOver`.
   */
  private async salesOver(shards: readonly OwnedShard[], timeoutMs = QUERY_TIMEOUT_MS): Promise<Set<string>> {
    if (shards.length === 0) return new Set();
    try {
      return await withDeadline(
        this.store.closedEvents([...new Set(shards.map(({ ref }) => ref.eventId))], new Date(this.now())),
        timeoutMs,
      );
    } catch (error) {
      this.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'Cannot tell which sales are over');
      return new Set();
    }
  }
}
