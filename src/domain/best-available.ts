/**
 * Best-available placement: `quantity` adjacent available seats in one row, best row first,
 * leftmost in the row, never leaving a single orphan seat when a placement without one exists.
 *
 * A maximal run of L available seats (bounded by unavailable seats or row ends) can take N seats
 * without creating an orphan iff L = N or L ≥ N + 2 (place them at the run's left edge: the left
 * gap is 0 and the right gap is 0 or ≥ 2). With L = N + 1 every placement leaves exactly one
 * orphan. So one pass over the section's runs finds the first orphan-free placement and, on the
 * way, the first fallback.
 */

/** The seat and row arrays of a shard, as the placement search reads (and caches into) them. */
export interface SeatGrid {
  /** Per seat: 0 available, else unavailable. */
  readonly state: Uint8Array;
  readonly rowStart: Int32Array;
  readonly rowLength: Int32Array;
  /** Available seats per row. */
  readonly rowFree: Int32Array;
  /** Longest run of available seats per row, or -1 when unknown (invalidated on every change to the row). */
  readonly rowMaxRun: Int32Array;
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

/**
 * First seat index of the best placement of `quantity` seats in rows [firstRow, endRow), or -1
 * when none (with `strict`, when no orphan-free one).
 */
export function findBestPlacement(grid: SeatGrid, firstRow: number, endRow: number, quantity: number, strict: boolean): number {
  const { state, rowStart, rowLength, rowFree, rowMaxRun, rowFirstFree } = grid;
  let fallback = -1;
  for (let r = firstRow; r < endRow; r++) {
    if (rowFree[r]! < quantity) continue;
    const knownMax = rowMaxRun[r]!;
    if (knownMax >= 0 && knownMax < quantity) continue;
    const start = rowStart[r]!;
    const end = start + rowLength[r]!;
    let i = rowFirstFree[r]!;
    while (i < end && state[i] !== 0) i++;
    rowFirstFree[r] = i;
    let maxRun = 0;
    while (i < end) {
      const runStart = i;
      while (i < end && state[i] === 0) i++;
      const run = i - runStart;
      if (run === quantity || run >= quantity + 2) return runStart;
      if (run === quantity + 1 && fallback < 0) fallback = runStart;
      if (run > maxRun) maxRun = run;
      while (i < end && state[i] !== 0) i++;
    }
    rowMaxRun[r] = maxRun;
  }
  return strict ? -1 : fallback;
}
