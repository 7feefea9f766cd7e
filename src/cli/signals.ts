/** Why a long-running command stops: a signal, or its owner (SENTINEL_EXIT_WITH_PARENT) being gone. */
export type StopCue = NodeJS.Signals | 'parent-exited';

/** How often a process with an owner looks whether the owner is still its parent. */
export const PARENT_POLL_MS = 500;

/**
 * Resolves on the first SIGTERM or SIGINT: the cue for a graceful shutdown.
 *
 * A process with an owner (`exitWithParent`: the pid of the job that started it, from
 * SENTINEL_EXIT_WITH_PARENT; LocalStack sets it) leaves SIGINT to that job (main.ts ignores it)
 * and stops on SIGTERM, on SIGHUP, or once its parent is no longer that job — checked now, in
 * case the job died while this process was starting, and every PARENT_POLL_MS: the kernel hands
 * an orphan to another parent. SIGHUP is what the kernel sends a process group that lost its job
 * while one of its members was stopped (SIGSTOP, chaos's engine-pause), followed by SIGCONT:
 * every member then stops gracefully too, the paused one once it runs again.
 */
export function untilSignal(options: { readonly exitWithParent?: number } = {}): Promise<StopCue> {
  const owner = options.exitWithParent ?? 0;
  const signals: NodeJS.Signals[] = owner > 0 ? ['SIGTERM', 'SIGHUP'] : ['SIGTERM', 'SIGINT'];
  return new Promise((resolve) => {
    let parentWatch: NodeJS.Timeout | undefined;
    const done = (cue: StopCue) => {
      for (const signal of signals) process.off(signal, done);
      clearInterval(parentWatch);
      resolve(cue);
    };
    for (const signal of signals) process.on(signal, done);
    if (owner > 0) {
      const orphaned = () => process.ppid !== owner && done('parent-exited');
      parentWatch = setInterval(orphaned, PARENT_POLL_MS);
      parentWatch.unref();
      orphaned();
    }
  });
}
