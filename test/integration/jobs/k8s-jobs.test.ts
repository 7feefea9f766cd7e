/**
 * The stress and chaos Jobs in k8s/jobs/ are valid Kubernetes objects: the real API server accepts
 * them (server-side dry run), and their arguments are ones the CLI knows.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { kubeconfigPath } from '../../support/env.js';

const run = promisify(execFile);
const KUBECTL = process.env['SENTINEL_KUBECTL'] ?? 'kubectl';
const env = { ...process.env, KUBECONFIG: kubeconfigPath() };

t.test('the API server accepts the Jobs (server-side dry run)', async (t) => {
  await run(KUBECTL, ['create', 'namespace', 'sentinel'], { env }).catch(() => undefined); // may exist already
  for (const file of ['k8s/jobs/stress-job.yaml', 'k8s/jobs/chaos-job.yaml']) {
    const { stdout } = await run(KUBECTL, ['create', '--dry-run=server', '-o', 'name', '-f', file], { env });
    t.match(stdout, /^job\.batch\//, `${file}: ${stdout.trim()}`);
  }
});

t.test("the Jobs' arguments parse", async (t) => {
  type Job = { spec: { template: { spec: { initContainers?: { args: string[] }[]; containers: { args: string[] }[] } } } };
  const jobs: Job[] = [];
  for (const file of ['k8s/jobs/stress-job.yaml', 'k8s/jobs/chaos-job.yaml']) {
    const { stdout } = await run(KUBECTL, ['create', '--dry-run=client', '-o', 'json', '-f', file], { env });
    jobs.push(JSON.parse(stdout) as Job);
  }
  const commands = jobs.flatMap((j) =>
    [...(j.spec.template.spec.initContainers ?? []), ...j.spec.template.spec.containers].map((c) => c.args),
  );
  t.same(
    commands.map((a) => a[0]),
    ['stress', 'verify', 'chaos'],
  );
  for (const args of commands) {
    // `--help` after the real flags: the parser rejects unknown flags before it prints help.
    const resolved = args.map((a) => a.replace('$(EVENT)', 'sentinel--club-night'));
    const { stdout: help } = await run(process.execPath, ['bin/sentinel.js', ...resolved, '--help'], { env: process.env });
    t.match(help, /^Usage: sentinel /, `${args[0]} accepts ${resolved.slice(1).join(' ')}`);
  }
});
