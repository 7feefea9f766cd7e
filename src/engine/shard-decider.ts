import { randomUUID } from 'node:crypto';
import type { ShardChange, ShardCommand } from '../domain/commands.js';
import { validateLayout, type Layout } from '../domain/layout.js';
import { ShardInventory } from '../domain/shard-inventory.js';
import { createShardActor } from '../domain/shard-machine.js';
import { shardMap } from '../domain/shard-map.js';
import { resolveShardSettings } from '../domain/shard-settings.js';
import type { ShardSnapshot } from '../domain/snapshot.js';
import type { ShardRows, StoredEvent } from '../adapters/postgres/inventory-store.js';
import { SentinelError } from '../errors.js';
import { evictOldest } from '../evict.js';
import type { ShardDecider } from './shard-host.js';

/**
 * Validated layouts by (event, layout hash), the most recently used last; at most MAX_LAYOUTS, so a
 * long-running engine does not keep every event it ever served (a layout and its shard map can
 * hold a million seats).
 */
const layouts = new Map<string, Layout>();
const MAX_LAYOUTS = 64;

/** No fault was reported while deciding (a fault may be any value, `undefined` included). */
const NO_FAULT = Symbol('no fault');

/** The validated layout of a stored event, cached per (event, layout hash). */
export function eventLayout(event: Pick<StoredEvent, 'id' | 'layout' | 'layoutHash'>): Layout {
  const key = `${event.id}:${event.layoutHash}`;
  let layout = layouts.get(key);
  if (layout)
    layouts.delete(key); // set again below: most recently used last
  else {
    const validation = validateLayout(event.layout);
    if (!validation.ok)
      throw new SentinelError('layout_invalid', `stored layout of ${event.id} is invalid: ${validation.errors[0]?.message}`);
    layout = validation.layout;
  }
  layouts.set(key, layout);
  evictOldest(layouts, MAX_LAYOUTS);
  return layout;
}

/** Converts a shard's rows into the domain's snapshot. */
export function snapshotOf(rows: ShardRows): ShardSnapshot {
  return rows;
}

/** Ids of holds and reservations: random, prefixed so a log line says what it names. */
export function newId(kind: 'hold' | 'reservation'): string {
  return `${kind === 'hold' ? 'h' : 'r'}_${randomUUID()}`;
}

/** A ShardDecider plus what the engine needs at claim time. */
export interface EngineShardDecider extends ShardDecider {
  /** Expires holds whose TTL passed while nobody owned the shard; returns the changes to persist. */
  expireNow(): ShardChange[];
}

/**
 * Rebuilds a shard's inventory from Postgres rows and wraps it in its XState actor. The actor
 * decides synchronously: `decide` sends COMMAND and the machine's reply runs before `send`
 * returns.
 */
export function createShardDecider(options: {
  event: StoredEvent;
  shard: number;
  rows: ShardRows;
  now: () => number;
  idempotencyTtlMs: number;
  persistExpired: (changes: readonly ShardChange[]) => void;
  /** An expiry on the actor's own schedule threw (a bug; ShardMachineInput.onFault). A decision's fault is thrown by `decide`. */
  onFault: (error: unknown) => void;
}): EngineShardDecider {
  const { event, shard, rows, now } = options;
  const map = shardMap(eventLayout(event), event.shardCount);
  const settings = resolveShardSettings({
    holdTtlMs: event.holdTtlMs,
    customerLimit: event.customerLimit,
    idempotencyTtlMs: options.idempotencyTtlMs,
  });
  const inventory = ShardInventory.restore({ map, shard }, settings, snapshotOf(rows), now(), newId);
  // While `decide` runs, a fault is the decision's and is thrown to its caller.
  let deciding = false;
  let fault: unknown = NO_FAULT;
  const actor = createShardActor({
    clock: now,
    inventory,
    persistExpired: options.persistExpired,
    onFault: (error) => {
      if (deciding) fault = error;
      else options.onFault(error);
    },
    id: `${event.id}/${shard}`,
  });
  return {
    decide(command: ShardCommand) {
      let decision: ReturnType<ShardDecider['decide']> | undefined;
      deciding = true;
      fault = NO_FAULT;
      try {
        actor.send({
          type: 'COMMAND',
          command,
          reply: (result, changes, replayed) => {
            decision = { result, changes, replayed };
          },
        });
      } finally {
        deciding = false;
      }
      if (fault !== NO_FAULT) throw fault;
      if (!decision) throw new SentinelError('shard_no_answer', `shard ${event.id}/${shard} did not answer ${command.type}`);
      return decision;
    },
    abort: (holdId, writtenPoolVersion, laterAdjusted) => inventory.abort(holdId, writtenPoolVersion, laterAdjusted),
    applyRules: (rules) => inventory.applyRules(rules),
    drain: () => actor.send({ type: 'DRAIN' }),
    expireAll: () => inventory.expireAll(now()),
    fence: (reason) => actor.send({ type: 'FENCE', reason }),
    stop: () => actor.stop(),
    expireNow: () => inventory.expireDue(now()),
  };
}
