/**
 * Best-available placement: `quantity` adjacent available seats in one row, best row first,
 * leftmost in the row, never leaving a single orphan seat when a placement without one exists.
 *
 * A maximal run of L available seats (bounded by unavailable seats or row ends) can take N seats
 * without creating an orphan iff L = N or L ≥ N + 2 (place them at the run's left edge: the left
 * gap is 0 and the right gap is 0 or ≥ 2). With L = N + 1 every placement leaves exactly one
 * orphan. So one pass over the section's runs finds the first orphan-free placement and, on the
 * way, the first fallback.
 *
 * What a full pass over a row learned is cached per row until the row changes: its longest run M,
 * where the first such run starts, and whether it also has a run of M − 1. That decides the row
 * for every quantity N without reading a seat: no placement when M < N; an orphan-free one when
 * M = N or M ≥ N + 2 (a run of M itself) or, when M = N + 1, iff a run of M − 1 = N exists;
 * otherwise the fallback is the first run of M. So a row is read again only when it has an
 * orphan-free placement (read up to it) or changed since its last full pass — a request does not
 * pay for every fragmented row of the section.
 */

/** The seat and row arrays of a shard, as the placement search reads (and caches into) them. */
export interface SeatGrid {
  /** Per seat: 0 available, else unavailable. */
  readonly state: Uint8Array;
  readonly rowStart: Int32Array;
  readonly rowLength: Int32Array;
  /** Available seats per row. */
  readonly rowFree: Int32Array;
  /**
   * Longest run of available seats per row, or -1 when unknown: set to -1 on every change to the
   * row, which also invalidates `rowMaxRunStart` and `rowRunBelowMax` (read only while this is ≥ 0).
   */
  readonly rowMaxRun: Int32Array;
  /** First seat of the row's first longest run (meaningful while `rowMaxRun` ≥ 0). */
  readonly rowMaxRunStart: Int32Array;
  /** 1 when the row also has a run of `rowMaxRun` − 1 seats, else 0 (meaningful while `rowMaxRun` ≥ 0). */
  readonly rowRunBelowMax: Uint8Array;
  /** No seat of the row before this index is available (a hint; lowered on every release). */
  readonly rowFirstFree: Int32Array;
}

/** Whether placing seats [start, start+quantity) in the row leaves a single orphan seat beside it. */
export function leavesOrphan(state: Uint8Array, rowStart: number, rowEnd: number, start: number, quantity: number): boolean {
  const before = start - 1;
  const after = start + quantity;
  const orphanBefore = before >= rowStart && state[before] === 0 && (before - 1 < rowStart || state[before - 1] !== 0);
  const orphanAfter = after < rowEnd && state[after] === 0 && (after + 1 >= rowEnd || state[after + 1] !== 0);
  return orphanBefore || orphanAfter;
}

/** First seat of the first fallback (a run of exactly quantity + 1) a full pass over a row met; see `scanRow`. */
let scannedFallback = -1;

/**
 * Reads row `r` from its first available seat: returns the start of its first orphan-free
 * placement of `quantity` seats, or -1 having read the whole row — then its runs are cached in the
 * grid and `scannedFallback` is the start of its first run of quantity + 1 (or -1).
 */
function scanRow(grid: SeatGrid, r: number, quantity: number): number {
  const { state, rowStart, rowLength, rowFirstFree } = grid;
  const end = rowStart[r]! + rowLength[r]!;
  let i = rowFirstFree[r]!;
  while (i < end && state[i] !== 0) i++;
  rowFirstFree[r] = i;
  let maxRun = 0;
  let maxRunStart = i;
  let belowMax = false;
  let fallback = -1;
  while (i < end) {
    const runStart = i;
    while (i < end && state[i] === 0) i++;
    const run = i - runStart;
    if (run === quantity || run >= quantity + 2) return runStart;
    if (run === quantity + 1 && fallback < 0) fallback = runStart;
    if (run > maxRun) {
      belowMax = maxRun > 0 && run - 1 === maxRun;
      maxRun = run;
      maxRunStart = runStart;
    } else if (run === maxRun - 1) {
      belowMax = true;
    }
    while (i < end && state[i] !== 0) i++;
  }
  grid.rowMaxRun[r] = maxRun;
  grid.rowMaxRunStart[r] = maxRunStart;
  grid.rowRunBelowMax[r] = belowMax ? 1 : 0;
  scannedFallback = fallback;
  return -1;
}

/**
 * First seat index of the best placement of `quantity` seats in rows [firstRow, endRow), or -1
 * when none (with `strict`, when no orphan-free one).
 */
export function findBestPlacement(grid: SeatGrid, firstRow: number, endRow: number, quantity: number, strict: boolean): number {
  const { rowFree, rowMaxRun, rowMaxRunStart, rowRunBelowMax } = grid;
  let fallback = -1;
  for (let r = firstRow; r < endRow; r++) {
    if (rowFree[r]! < quantity) continue;
    const knownMax = rowMaxRun[r]!;
    if (knownMax >= 0) {
      // Decided from what the last full pass learned (see the module comment).
      if (knownMax < quantity) continue;
      if (knownMax === quantity + 1 && rowRunBelowMax[r] === 0) {
        if (fallback < 0) fallback = rowMaxRunStart[r]!;
        continue;
      }
    }
    const start = scanRow(grid, r, quantity);
    if (start >= 0) return start;
    if (fallback < 0) fallback = scannedFallback;
  }
  return strict ? -1 : fallback;
}
