/** Why a long-running command stops: a signal, or (when asked for) its parent being gone. */
export type StopCue = NodeJS.Signals | 'parent-exited';

/**
 * The variable (`Config.exitWithParent`) a job sets to `1` for the processes it starts when they
 * must not outlive it. LocalStack sets it: it starts engines and ingresses in process groups of
 * their own — a terminal's Ctrl-C is then for the job that owns them (chaos winds its run down and
 * stops them in order), not for them — and a job that is SIGKILLed cannot stop them itself.
 */
export const EXIT_WITH_PARENT_ENV = 'SENTINEL_EXIT_WITH_PARENT';

/** How often a process that exits with its parent looks whether the parent is still there. */
export const PARENT_POLL_MS = 500;

/**
 * Resolves on the first SIGTERM or SIGINT: the cue for a graceful shutdown. With `exitWithParent`,
 * also when the process that started this one has gone (the kernel hands an orphan to another
 * parent, so `process.ppid` changes).
 */
export function untilSignal(options: { readonly exitWithParent?: boolean } = {}): Promise<StopCue> {
  return new Promise((resolve) => {
    let parentWatch: NodeJS.Timeout | undefined;
    const done = (cue: StopCue) => {
      process.off('SIGTERM', done);
      process.off('SIGINT', done);
      clearInterval(parentWatch);
      resolve(cue);
    };
    process.on('SIGTERM', done);
    process.on('SIGINT', done);
    if (options.exitWithParent === true) {
      const parent = process.ppid;
      parentWatch = setInterval(() => process.ppid !== parent && done('parent-exited'), PARENT_POLL_MS);
      parentWatch.unref();
    }
  });
}
