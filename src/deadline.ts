/**
 * A promise bounded in time: the waiting stops at the deadline (the work itself is not cancelled —
 * its late outcome is ignored). One helper for every "do not wait on a hung dependency" in the code.
 */

/**
 * Rejects with `late()` — by default an Error `no answer within <ms> ms` — unless `work` settles
 * first; otherwise settles as `work` does.
 */
export function withDeadline<T>(
  work: Promise<T>,
  ms: number,
  late: () => Error = () => new Error(`no answer within ${ms} ms`),
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(late()), Math.max(0, ms));
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
