/** The benchmarks' own database, recreated for each run (see `hack/fresh-database.ts`). */
import { useFreshDatabase } from '../hack/fresh-database.js';

export const BENCH_DATABASE = 'sentinel_bench';

/** Recreates the bench database and points DATABASE_URL (this process and its children) at it. */
export function useFreshBenchDatabase(): Promise<string> {
  return useFreshDatabase(BENCH_DATABASE);
}
