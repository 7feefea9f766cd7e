/**
 * The shard actor (XState v5): the lifecycle of one shard and the single place its commands are
 * decided. I/O stays at the edge: the caller's `reply` travels in the COMMAND event, and the
 * persistence of expired holds is the `persistExpired` action, which the engine supplies with
 * `provide()` (or through `createShardActor`).
 *
 *   loading ──LOAD──▶ serving ──DRAIN──▶ draining ──DRAINED──▶ stopped
 *      ▲                 │                   │
 *      └─────RELOAD──────┘                   │
 *   loading / serving / draining ──FENCE──▶ fenced
 *
 * Only `serving` decides; every other state answers `not-serving` (retryable) at once, so no
 * caller ever waits on a shard that cannot answer. `fenced` and `stopped` are terminal for the
 * actor but deliberately not XState final states: a final actor would drop later COMMANDs
 * unanswered, where these keep refusing them.
 *
 * Speed: the inventory is a mutable object kept by reference in the context and mutated by one
 * action per command (no assign(), no copy), so a command costs XState's own event processing
 * plus the decision, nothing more (see `npm run bench:core`).
 */
import { assign, createActor, setup, type Actor, type ActorOptions, type SnapshotFrom } from 'xstate';
import type { ShardChange, ShardCommand, ShardResult } from './commands.js';
import type { ShardInventory } from './shard-inventory.js';

/**
 * Answers the caller of one command; `changes` must be persisted before a winner is told;
 * `replayed` is true when the result is the key's remembered one, given again (Decision.replayed).
 * Must not throw.
 */
export type ShardReply = (result: ShardResult, changes: readonly ShardChange[], replayed?: boolean) => void;

/** Input of a shard actor. */
export interface ShardMachineInput {
  /** Epoch-ms clock (the only source of time). */
  readonly clock: () => number;
  /** Longest wait between two expiry checks while idle, ms (default 1000; never more than the hold TTL). */
  readonly maxExpiryDelayMs?: number;
  /**
   * A decision or an expiry threw — a bug, and the inventory may be half changed. Without it the
   * error escapes the action: XState stops the actor and rethrows the error in a timer of its own,
   * which ends the process. The engine stops the shard instead (ShardHost.fault). Must not throw.
   */
  readonly onFault?: (error: unknown) => void;
}

/** Context of a shard actor. The inventory object is mutated in place by the decide and expire actions. */
export interface ShardMachineContext {
  readonly inventory: ShardInventory | null;
  readonly clock: () => number;
  readonly maxExpiryDelayMs: number;
  readonly fenceReason: string | null;
  readonly onFault: ((error: unknown) => void) | undefined;
}

/** Events a shard actor takes. */
export type ShardMachineEvent =
  /** The restored inventory is ready: start serving it. */
  | { readonly type: 'LOAD'; readonly inventory: ShardInventory }
  /** Decide a command and answer through `reply`. */
  | { readonly type: 'COMMAND'; readonly command: ShardCommand; readonly reply: ShardReply }
  /** Expire due holds now (the actor also schedules this itself). */
  | { readonly type: 'EXPIRE' }
  /** Memory can no longer be trusted (e.g. a commit failed): refuse commands until LOAD brings a restored inventory. */
  | { readonly type: 'RELOAD' }
  /** Stop taking commands (hand-off); the engine flushes its batch, then sends DRAINED. */
  | { readonly type: 'DRAIN' }
  | { readonly type: 'DRAINED' }
  /** Another owner took the shard (its epoch moved on): never decide again. */
  | { readonly type: 'FENCE'; readonly reason: string };

/** The lifecycle states, as reported in `not-serving` answers. */
export type ShardLifecycle = 'loading' | 'serving' | 'draining' | 'stopped' | 'fenced';

const DEFAULT_MAX_EXPIRY_DELAY_MS = 1000;

function notServing(state: ShardLifecycle, reason: string | null): ShardResult {
  const why =
    state === 'fenced'
      ? `shard is fenced${reason === null ? '' : `: ${reason}`}`
      : state === 'loading'
        ? 'shard is loading'
        : state === 'draining'
          ? 'shard is handing off'
          : 'shard is stopped';
  return { ok: false, type: 'not-serving', state, retryable: true, message: `${why}; retry` };
}

/**
 * Runs an action's inventory work; a throw goes to `onFault` (then undefined is returned), or — with
 * no `onFault` — on to XState as before.
 */
function guarded<T>(context: ShardMachineContext, work: () => T): T | undefined {
  try {
    return work();
  } catch (error) {
    if (context.onFault === undefined) throw error;
    context.onFault(error);
    return undefined;
  }
}

const shardSetup = setup({
  types: {
    context: {} as ShardMachineContext,
    events: {} as ShardMachineEvent,
    input: {} as ShardMachineInput,
  },
  actions: {
    decide: ({ context, event }) => {
      if (event.type !== 'COMMAND') return;
      const decision = guarded(context, () => context.inventory!.decide(event.command, context.clock()));
      // A fault gets no reply: the caller learns it from the fault.
      if (decision !== undefined) event.reply(decision.result, decision.changes, decision.replayed);
    },
    refuse: ({ context, event }, params: { state: ShardLifecycle }) => {
      if (event.type !== 'COMMAND') return;
      event.reply(notServing(params.state, context.fenceReason), []);
    },
    /** Hands expiry changes to the engine's group commit. Supplied by the engine. */
    persistExpired: (_, _params: { changes: readonly ShardChange[] }) => {},
    // Lifecycle changes are rare: plain assign() keeps them pure for transition() tests.
    load: assign({ inventory: ({ context, event }) => (event.type === 'LOAD' ? event.inventory : context.inventory) }),
    unload: assign({ inventory: null }),
    recordFence: assign({ fenceReason: ({ context, event }) => (event.type === 'FENCE' ? event.reason : context.fenceReason) }),
  },
  guards: {
    expiryDue: ({ context }) => context.inventory!.nextExpiryAt() <= context.clock(),
  },
  delays: {
    // Never longer than one TTL: a hold created while the timer waits expires after the timer fires,
    // which then re-arms for it exactly. So no hold outlives its TTL by more than the timer's latency.
    expiryDelay: ({ context }) => {
      const inventory = context.inventory;
      if (inventory === null) return context.maxExpiryDelayMs;
      const wait = inventory.nextExpiryAt() - context.clock();
      return Math.max(0, Math.min(context.maxExpiryDelayMs, inventory.settings.holdTtlMs, wait));
    },
  },
});

/** The shard machine. `persistExpired` is a no-op until provided. */
export const shardMachine = shardSetup
  .extend({
    actions: {
      /** Expires due holds and hands their changes to `persistExpired`. */
      expire: shardSetup.enqueueActions(({ context, enqueue }) => {
        const inventory = context.inventory;
        if (inventory === null) return;
        const changes = guarded(context, () => inventory.expireDue(context.clock()));
        if (changes !== undefined && changes.length > 0) enqueue({ type: 'persistExpired', params: { changes } });
      }),
    },
  })
  .createMachine({
    id: 'shard',
    context: ({ input }) => ({
      inventory: null,
      clock: input.clock,
      maxExpiryDelayMs: input.maxExpiryDelayMs ?? DEFAULT_MAX_EXPIRY_DELAY_MS,
      fenceReason: null,
      onFault: input.onFault,
    }),
    initial: 'loading',
    // Flat on purpose: a nested timer state, or any eventless (`always`) transition, costs every command.
    states: {
      loading: {
        on: {
          LOAD: { target: 'serving', actions: 'load' },
          COMMAND: { actions: { type: 'refuse', params: { state: 'loading' } } },
          FENCE: { target: 'fenced', actions: 'recordFence' },
        },
      },
      serving: {
        // Re-entered after every timed expiry, which re-computes the delay from the next expiry.
        after: { expiryDelay: { target: 'serving', reenter: true, actions: 'expire' } },
        on: {
          // A timer can run late on a busy loop: a command never sees a hold past its TTL.
          COMMAND: [{ guard: 'expiryDue', actions: ['expire', 'decide'] }, { actions: 'decide' }],
          EXPIRE: { actions: 'expire' },
          RELOAD: { target: 'loading', actions: 'unload' },
          DRAIN: { target: 'draining' },
          FENCE: { target: 'fenced', actions: 'recordFence' },
        },
      },
      draining: {
        // No expiry while handing off: the next owner expires on restore (the same pure rule).
        on: {
          COMMAND: { actions: { type: 'refuse', params: { state: 'draining' } } },
          DRAINED: { target: 'stopped' },
          FENCE: { target: 'fenced', actions: 'recordFence' },
        },
      },
      stopped: {
        on: { COMMAND: { actions: { type: 'refuse', params: { state: 'stopped' } } } },
      },
      fenced: {
        on: { COMMAND: { actions: { type: 'refuse', params: { state: 'fenced' } } } },
      },
    },
  });

/** A running shard actor. */
export type ShardActor = Actor<typeof shardMachine>;
export type ShardActorSnapshot = SnapshotFrom<typeof shardMachine>;

/** Options of `createShardActor`. */
export interface CreateShardActorOptions extends ShardMachineInput {
  /** Inventory to serve at once (sent as LOAD right after start); without it the actor waits in `loading`. */
  readonly inventory?: ShardInventory;
  /** Persists the changes of expired holds (joins the engine's group commit). Must not throw. */
  readonly persistExpired: (changes: readonly ShardChange[]) => void;
  /** Actor id (e.g. `<event>/<shard>`), for inspection. */
  readonly id?: string;
  /** Timer source of the expiry schedule (default: the host's setTimeout; tests pass XState's SimulatedClock). */
  readonly timers?: NonNullable<ActorOptions<typeof shardMachine>['clock']>;
}

/** The lifecycle state of a shard actor's snapshot. */
export function lifecycleOf(snapshot: ShardActorSnapshot): ShardLifecycle {
  return snapshot.value;
}

/** Creates and starts a shard actor with the engine's I/O provided. */
export function createShardActor(options: CreateShardActorOptions): ShardActor {
  const { persistExpired, id, inventory, timers, ...input } = options;
  const machine = shardMachine.provide({
    actions: { persistExpired: (_, params) => persistExpired(params.changes) },
  });
  const actor = createActor(machine, { input, ...(id === undefined ? {} : { id }), ...(timers === undefined ? {} : { clock: timers }) });
  actor.start();
  if (inventory !== undefined) actor.send({ type: 'LOAD', inventory });
  return actor;
}
