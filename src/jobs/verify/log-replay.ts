/**
 * Replays stress response logs into an `AckLedger`, and says what keeps the acknowledgement checks
 * from being complete. Each log must be read whole and hold at least one record of the event: an
 * empty log, or one of another event, beside a good one would otherwise pass by looking at nothing,
 * and a line that is not a response record (cut off, hand-edited, another format) is an answer
 * verify cannot see. The records that were read are still checked — what they say cannot become
 * right by reading more — but the verdict is "not checked", never a pass.
 */
import { readResponseLog } from '../stress/response-log.js';
import type { AckLedger } from './ack-ledger.js';

/** What one log held. */
interface LogTally {
  records: number;
  ofEvent: number;
  unreadable: number;
  /** The first line that is not a response record: `path:line: problem`. */
  firstUnreadable: string | undefined;
}

/**
 * Reads every log (in order) into `ledger`; returns why the acknowledgement checks cannot be
 * trusted — at most one reason per log — or nothing when every log was read whole and has records
 * of the event. A log that cannot be opened throws a `UsageError`.
 */
export async function replayResponseLogs(
  paths: readonly string[],
  ledger: AckLedger,
  onStatus?: (message: string) => void,
): Promise<string[]> {
  const reasons: string[] = [];
  for (const path of paths) {
    onStatus?.(`reading ${path}`);
    const why = whyIncomplete(path, ledger.eventId, await replayLog(path, ledger));
    if (why !== undefined) reasons.push(why);
  }
  return reasons;
}

async function replayLog(path: string, ledger: AckLedger): Promise<LogTally> {
  const tally: LogTally = { records: 0, ofEvent: 0, unreadable: 0, firstUnreadable: undefined };
  for await (const line of readResponseLog(path)) {
    if ('problem' in line) {
      tally.unreadable += 1;
      tally.firstUnreadable ??= `${path}:${line.line}: ${line.problem}`;
      continue;
    }
    tally.records += 1;
    if (ledger.add(line.record)) tally.ofEvent += 1;
  }
  return tally;
}

function whyIncomplete(path: string, eventId: string, tally: LogTally): string | undefined {
  if (tally.firstUnreadable !== undefined) {
    const more = tally.unreadable > 1 ? ` (and ${tally.unreadable - 1} more such lines)` : '';
    return `${tally.firstUnreadable}${more}: not a response record, so the log cannot be replayed whole`;
  }
  if (tally.records === 0) return `the response log ${path} is empty`;
  if (tally.ofEvent === 0)
    return `the response log ${path} holds no record of event ${eventId} (${tally.records} lines, all of other events)`;
  return undefined;
}
