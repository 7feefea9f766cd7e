import { createKafka } from '../../src/adapters/kafka/client.js';
import { silentLogger } from '../../src/log.js';
import { testConfig, uniqueName } from './env.js';

/** The event a message is about; undefined for a message that is not a reservation (anyone may write to a topic). */
function eventOf(value: Buffer | null): string | undefined {
  try {
    return (JSON.parse(String(value)) as { eventId?: string }).eventId;
  } catch {
    return undefined;
  }
}

/** What `readKeys` reads, and when it may stop. */
interface KeyRead {
  readonly topic: string;
  /** Read from the messages of the last `lookBackMs` (by timestamp); undefined: from the beginning of each partition. */
  readonly lookBackMs?: number;
  /** Whether a message's key is kept (its value decides). */
  readonly keep: (value: Buffer | null) => boolean;
  /**
   * Whether the keys kept so far are all the read waits for. Once they are, the read goes on to the
   * high-water marks the topic has at that moment — so a second copy of a key that is on the topic
   * by then is read too, wherever it is — and only then ends.
   */
  readonly enough: (keys: readonly string[]) => boolean;
  readonly timeoutMs: number;
  /** Says, for the error thrown at the timeout, what was waited for and what was found. */
  readonly describe: (keys: readonly string[], waitingFor: 'keys' | 'end') => string;
}

/**
 * The one reader of the helpers below: every kept key, duplicates included, in the order read
 * (per partition). Throws when the keys waited for, or the end after them, are not read within
 * `timeoutMs`: a read that returned what it had at the timeout let a test compare a partial read
 * with what it expected, and pass whenever a missing key was the one that mattered. The last
 * offset below each high-water mark must be a message (true for the relay's idempotent,
 * non-transactional producer: no transaction markers, no compaction).
 */
async function readKeys(read: KeyRead): Promise<string[]> {
  const { topic } = read;
  const kafka = createKafka({ brokers: testConfig().kafkaBrokers, clientId: 'test-reader', log: silentLogger });
  // Connected for the whole read: the high-water marks are fetched when the keys waited for are in.
  const admin = kafka.admin();
  await admin.connect();
  try {
    const starts =
      read.lookBackMs === undefined
        ? (await admin.fetchTopicOffsets(topic)).map(({ partition, low }) => ({ partition, offset: low }))
        : await admin.fetchTopicOffsetsByTimestamp(topic, Date.now() - read.lookBackMs);
    // The next offset to read of each partition, from its start. A partition whose seek (below) did
    // not happen is read from its beginning instead, and its messages before the start move this
    // back; a partition with nothing from its start to its high-water mark is done at once — what
    // lies before its start is older than the look-back, and not what the read is for.
    const next = new Map(starts.map(({ partition, offset }) => [partition, Number(offset)]));
    const keys: string[] = [];
    const consumer = kafka.consumer({ groupId: uniqueName('reader') });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      let finish!: (error?: Error) => void;
      const done = new Promise<void>((resolve, reject) => (finish = (error) => (error === undefined ? resolve() : reject(error))));
      const marks = async () => new Map((await admin.fetchTopicOffsets(topic)).map(({ partition, high }) => [partition, Number(high)]));
      /**
       * The partitions not yet read to the marks taken once `enough` held: at once when it holds of
       * no keys (the end the topic has when the read begins), else when the last key waited for is read.
       */
      let left = read.enough(keys) ? await marks() : undefined;
      let marking = false;
      const progress = async () => {
        if (left === undefined) {
          if (marking || !read.enough(keys)) return;
          marking = true;
          try {
            left = await marks();
          } catch (error) {
            finish(error instanceof Error ? error : new Error(String(error)));
            return;
          }
        }
        for (const [partition, high] of left) if ((next.get(partition) ?? 0) >= high) left.delete(partition);
        if (left.size === 0) finish();
      };
      const timer = setTimeout(
        () => finish(new Error(`topic ${topic}: ${read.describe(keys, left === undefined ? 'keys' : 'end')} within ${read.timeoutMs} ms`)),
        read.timeoutMs,
      );
      timer.unref();
      await consumer.run({
        eachMessage: async ({ partition, message }) => {
          next.set(partition, Number(message.offset) + 1);
          if (read.keep(message.value)) keys.push(String(message.key));
          await progress();
        },
      });
      try {
        for (const { partition, offset } of starts) consumer.seek({ topic, partition, offset });
      } catch {
        // The consumer is between group generations (it restarts after a broker that was just
        // restarted refused it): the seek only skips old messages, and reading from the beginning
        // finds the same keys, more slowly.
      }
      // Nothing may come to wait for: an empty topic, or nothing kept is waited for.
      await progress();
      try {
        await done;
      } finally {
        clearTimeout(timer);
      }
      return keys;
    } finally {
      await consumer.disconnect();
    }
  } finally {
    await admin.disconnect();
  }
}

/**
 * The keys of one event's messages on the reservations topic (or `topic`), duplicates included:
 * read from the messages of the last `lookBackMs` (10 minutes: longer than any test file takes to
 * produce and read them) until `expected` distinct keys are in, and then on to the end the topic
 * has at that moment — so a second copy of a reservation already on the topic is among them,
 * though it was published after the first copies of the others. Throws if that is not done within
 * `timeoutMs`. Not from the beginning: on a machine that ran benchmarks the topic holds millions
 * of messages, and a read from offset 0 did not reach this event's within the timeout.
 *
 * A copy published after the read ends cannot be among them: a test that means "once" waits first
 * until the outbox has nothing of the event left to publish.
 */
export async function reservationKeysOnTopic(
  eventId: string,
  expected: number,
  timeoutMs = 60_000,
  lookBackMs = 10 * 60_000,
  topic = testConfig().reservationsTopic,
): Promise<string[]> {
  return readKeys({
    topic,
    lookBackMs,
    keep: (value) => eventOf(value) === eventId,
    enough: (keys) => new Set(keys).size >= expected,
    timeoutMs,
    describe: (keys, waitingFor) =>
      waitingFor === 'keys'
        ? `only ${new Set(keys).size} of the ${expected} keys of event ${eventId} expected were read`
        : `the ${expected} keys of event ${eventId} were read, but not the rest of the topic after them`,
  });
}

/**
 * Every key on a topic of a test's own, read from the beginning to the end it had when the read
 * began (its high-water marks), duplicates included. Throws if that is not done within `timeoutMs`.
 */
export async function keysToEndOfTopic(topic: string, timeoutMs = 60_000): Promise<string[]> {
  return readKeys({
    topic,
    keep: () => true,
    enough: () => true,
    timeoutMs,
    describe: (keys) => `not read to its end (${keys.length} keys read)`,
  });
}
