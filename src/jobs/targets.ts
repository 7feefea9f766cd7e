/**
 * Where the jobs may aim. Stress and chaos generate real load and real faults, so by default they
 * talk to loopback only; a cluster Job passes `--allow-remote` on purpose.
 */
import { SentinelError } from '../errors.js';

/** True for localhost, 127.0.0.0/8 and ::1. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Refused target: not loopback and `--allow-remote` not given. */
export class RemoteTargetError extends SentinelError {
  constructor(target: string) {
    super('remote_target_refused', `${target} is not a loopback address; pass --allow-remote to load a remote system on purpose`);
  }
}

/** Parses target URLs (http://host:port) and refuses non-loopback ones unless allowed. */
export function checkTargets(targets: readonly string[], allowRemote: boolean): string[] {
  if (targets.length === 0) throw new SentinelError('stress_target', 'at least one --target is needed');
  return targets.map((target) => {
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      throw new SentinelError('stress_target', `--target ${JSON.stringify(target)} is not a URL (e.g. http://127.0.0.1:8080)`);
    }
    if (url.protocol !== 'http:') throw new SentinelError('stress_target', `--target ${target}: only http:// is supported`);
    if (!allowRemote && !isLoopbackHost(url.hostname)) throw new RemoteTargetError(target);
    return url.origin;
  });
}
