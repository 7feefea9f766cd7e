/**
 * A server of a long-running role (the ingress, the engine's and the operator's health/metrics
 * server) that cannot listen stops the process with one line naming the address and the setting
 * that chose it, instead of an errno stack: a port another process holds, a privileged port, an
 * address this machine does not have.
 */
import { ConfigError } from '../errors.js';

/** The listen failures a setting can cause (and a different one can fix), each with its reason in words. */
const LISTEN_FAILURES: Readonly<Record<string, string>> = {
  EADDRINUSE: 'the address is already in use',
  EACCES: 'permission denied (a port below 1024 needs privileges)',
  EADDRNOTAVAIL: 'this machine has no such address',
};

/**
 * The ConfigError `error` stands for, when it is a listen failure of `what` (e.g. "the ingress"),
 * whose address is set by `setBy` (e.g. "--port", "SENTINEL_HTTP_PORT"); undefined for any other
 * error. A cluster worker's listen, which its supervisor makes, fails with the syscall `bind`.
 */
export function listenFailure(error: unknown, what: string, setBy: string): ConfigError | undefined {
  if (!(error instanceof Error)) return undefined;
  // A worker's error has no address (null): its supervisor listened.
  const { code, syscall, address, port } = error as NodeJS.ErrnoException & { address?: string | null; port?: number | null };
  const reason = code === undefined ? undefined : LISTEN_FAILURES[code];
  if (reason === undefined || (syscall !== 'listen' && syscall !== 'bind')) return undefined;
  const host = typeof address !== 'string' || address === '' ? undefined : address.includes(':') ? `[${address}]` : address;
  const where = typeof port !== 'number' ? (host ?? 'its address') : host === undefined ? `port ${port}` : `${host}:${port}`;
  return new ConfigError(`${what} cannot listen on ${where} (set by ${setBy}): ${reason} (${code})`);
}

/** Waits for `server` to listen; a listen failure becomes the ConfigError of `listenFailure`. */
export async function listening<T>(server: Promise<T>, what: string, setBy: string): Promise<T> {
  try {
    return await server;
  } catch (error) {
    throw listenFailure(error, what, setBy) ?? error;
  }
}
