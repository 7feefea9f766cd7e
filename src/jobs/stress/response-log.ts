/**
 * The response log: one JSON line per HTTP attempt of a stress run — what was asked, what came
 * back, and what it granted (hold, reservation, seats). `sentinel verify` replays it against
 * Postgres and Kafka: every success a client saw must be in the database, and no two clients may
 * have been sold the same seat.
 */
import { createWriteStream, openSync, type WriteStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
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
  /** The request's Idempotency-Key (every POST sends one; the same for each of its attempts). */
  readonly key?: string;
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

/** How a field of a response record is recognised. */
interface FieldRule {
  readonly valid: (value: unknown) => boolean;
  /** What a valid value is, for the message when it is not. */
  readonly is: string;
  readonly required: boolean;
}

const STRESS_OPS: readonly StressOp[] = ['reserve', 'hold', 'hold-best', 'hold-pool', 'confirm', 'release'];
const isString = (value: unknown) => typeof value === 'string';
const isNumber = (value: unknown) => typeof value === 'number' && Number.isFinite(value);
const field = (valid: FieldRule['valid'], is: string, required = false): FieldRule => ({ valid, is, required });
const text = field(isString, 'a string');
const requiredText = field(isString, 'a string', true);
const integer = (required = false) => field(Number.isInteger, 'an integer', required);
const epochMs = (required = false) => field(isNumber, 'a number (epoch ms)', required);

/** Every field of a `ResponseRecord` (the compiler keeps this list complete). */
const RECORD_FIELDS: Record<keyof ResponseRecord, FieldRule> = {
  at: epochMs(true),
  run: requiredText,
  event: requiredText,
  buyer: integer(true),
  customer: requiredText,
  op: field((value) => STRESS_OPS.includes(value as StressOp), `one of ${STRESS_OPS.join(', ')}`, true),
  attempt: integer(true),
  key: text,
  status: integer(true),
  ms: field(isNumber, 'a number (ms)', true),
  error: text,
  seat: text,
  hold: text,
  reservation: text,
  seats: field((value) => Array.isArray(value) && value.every(isString), 'a list of strings'),
  pool: text,
  quantity: integer(),
  decidedAt: epochMs(),
};

/** Why `value` is not a response record, or undefined when it is one. Fields not in `ResponseRecord` are allowed. */
export function responseRecordProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `not a JSON object (${JSON.stringify(value)})`;
  const record = value as Record<string, unknown>;
  for (const [name, rule] of Object.entries(RECORD_FIELDS)) {
    const v = record[name];
    if (v === undefined) {
      if (rule.required) return `no "${name}"`;
    } else if (!rule.valid(v)) return `"${name}" is not ${rule.is} (${JSON.stringify(v)})`;
  }
  return undefined;
}

/** One non-blank line of a response log: the record it holds, or why it holds none. */
export type ResponseLogLine = { readonly line: number } & ({ readonly record: ResponseRecord } | { readonly problem: string });

function parseLine(line: string): { record: ResponseRecord } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { problem: 'not a JSON line (cut off?)' };
  }
  const problem = responseRecordProblem(value);
  return problem === undefined ? { record: value as ResponseRecord } : { problem };
}

/** Opens a response log to read: one that cannot be read is a usage error (a mistyped `--log`), not a failed check. */
async function openResponseLog(path: string): Promise<FileHandle> {
  let file: FileHandle | undefined;
  try {
    file = await open(path, 'r');
    if (!(await file.stat()).isFile()) throw new Error('not a file');
    return file;
  } catch (error) {
    await file?.close();
    throw new UsageError(`cannot read the response log ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * Reads a response log, line by line (numbered from 1). Blank lines are skipped; a line that is not
 * a response record comes back with its problem, for the reader to decide what it costs.
 */
export async function* readResponseLog(path: string): AsyncGenerator<ResponseLogLine> {
  const file = await openResponseLog(path);
  const lines = createInterface({ input: file.createReadStream(), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n += 1;
    if (line.trim() !== '') yield { line: n, ...parseLine(line) };
  }
}
