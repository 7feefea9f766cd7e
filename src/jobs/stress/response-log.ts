/**
 * The response log: one JSON line per HTTP attempt of a stress run — what was asked, what came
 * back, and what it granted (hold, reservation, seats). `sentinel verify` replays it against
 * Postgres and Kafka: every success a client saw must be in the database, and no two clients may
 * have been sold the same seat.
 */
import { createReadStream, createWriteStream, openSync, type WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { UsageError } from '../options.js';

/** The operations of the API a stress run uses. */
export type StressOp = 'reserve' | 'hold' | 'hold-best' | 'hold-pool' | 'confirm' | 'release';

/** One attempt. `status` 0 means no HTTP response (see `error` for the transport code). */
export interface ResponseRecord {
  /** Epoch ms when the answer (or the failure) arrived. */
  readonly at: number;
  readonly run: string;
  readonly event: string;
  readonly buyer: number;
  readonly customer: string;
  readonly op: StressOp;
  /** 1 for the first try of a request, 2… for retries with the same Idempotency-Key. */
  readonly attempt: number;
  readonly status: number;
  /** Latency of this attempt, ms. */
  readonly ms: number;
  /** Problem type slug (`seats-unavailable`) or transport code (`ECONNRESET`). */
  readonly error?: string;
  /** Seat asked for (reserve, hold of one seat). */
  readonly seat?: string;
  /** The hold created (hold 201, reserve 201) or acted on (confirm, release). */
  readonly hold?: string;
  /** The reservation created (confirm 201, reserve 201). */
  readonly reservation?: string;
  /** Seats granted by a 201. */
  readonly seats?: readonly string[];
  readonly pool?: string;
  readonly quantity?: number;
  /** When the engine decided a 201 (epoch ms): the hold's createdAt, the reservation's confirmedAt. */
  readonly decidedAt?: number;
}

/** Appends records to a JSONL file with few, large writes. */
const FLUSH_EVERY_MS = 200;

export class ResponseLogWriter {
  private readonly stream: WriteStream;
  private buffer: string[] = [];
  private bytes = 0;
  private error: Error | undefined;
  lines = 0;

  /** Written out at least this often, so a run killed mid-way (SIGKILL, OOM) loses at most this much of its log. */
  private readonly timer: NodeJS.Timeout;

  /** Opens (creates) the file now: a log that cannot be written is a usage error before any load, not a lost report after it. */
  constructor(readonly path: string) {
    let fd: number;
    try {
      fd = openSync(path, 'a');
    } catch (error) {
      throw new UsageError(`cannot write the response log ${path}: ${error instanceof Error ? error.message : String(error)}`);
    }
    this.stream = createWriteStream(path, { fd });
    this.stream.on('error', (error) => {
      this.error = error;
    });
    this.timer = setInterval(() => this.flush(), FLUSH_EVERY_MS);
    this.timer.unref();
  }

  write(record: ResponseRecord): void {
    const line = JSON.stringify(record);
    this.buffer.push(line);
    this.bytes += line.length + 1;
    this.lines += 1;
    if (this.bytes >= 256 * 1024) this.flush();
  }

  private flush(): void {
    if (this.buffer.length === 0) return;
    this.stream.write(this.buffer.join('\n') + '\n');
    this.buffer = [];
    this.bytes = 0;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.flush();
    await new Promise<void>((resolve) => this.stream.end(resolve));
    if (this.error) throw this.error;
  }
}

/** Reads a response log, line by line. Blank lines are skipped; a malformed line throws with its number. */
export async function* readResponseLog(path: string): AsyncGenerator<ResponseRecord> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n += 1;
    if (line.trim() === '') continue;
    try {
      yield JSON.parse(line) as ResponseRecord;
    } catch {
      throw new Error(`${path}:${n}: not a JSON line`);
    }
  }
}
