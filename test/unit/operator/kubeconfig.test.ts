import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { operatorCommand } from '../../../src/cli/operator-command.js';
import { loadConfig } from '../../../src/config.js';
import { silentLogger } from '../../../src/log.js';
import { operatorKubeConfig } from '../../../src/operator/kubeconfig.js';

const VALID = `apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: 'https://127.0.0.1:6443' } }]
users: [{ name: u, user: { token: t } }]
contexts: [{ name: x, context: { cluster: c, user: u } }]
current-context: x
`;

t.test('a kubeconfig that cannot be used is a one-line ConfigError naming where it was looked for', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-kubeconfig-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const missing = join(dir, 'nope.yaml');
  t.throws(() => operatorKubeConfig(missing), { name: 'ConfigError', message: `--kubeconfig ${missing}: no such file` });
  t.throws(() => operatorKubeConfig(file('broken.yaml', 'clusters: [')), {
    name: 'ConfigError',
    message: /^--kubeconfig .*broken\.yaml: cannot be read as a kubeconfig: /,
  });
  t.throws(() => operatorKubeConfig(file('empty.yaml', '')), {
    name: 'ConfigError',
    message: /empty\.yaml: cannot be read as a kubeconfig/,
  });
  t.throws(() => operatorKubeConfig(file('no-context.yaml', 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n')), {
    name: 'ConfigError',
    message: /no-context\.yaml: no current context/,
  });
  t.throws(() => operatorKubeConfig(''), { name: 'ConfigError', message: '--kubeconfig needs a path' });

  const previous = process.env['KUBECONFIG'];
  t.teardown(() => {
    if (previous === undefined) delete process.env['KUBECONFIG'];
    else process.env['KUBECONFIG'] = previous;
  });
  process.env['KUBECONFIG'] = missing;
  t.throws(() => operatorKubeConfig(undefined), { name: 'ConfigError', message: `$KUBECONFIG (${missing}): no such file` });

  const good = operatorKubeConfig(file('good.yaml', VALID));
  t.equal(good.getCurrentCluster()?.server, 'https://127.0.0.1:6443');
});

t.test('no kubeconfig anywhere is said so, not taken for an API server on localhost:8080', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'sentinel-empty-home-'));
  const saved = { HOME: process.env['HOME'], KUBECONFIG: process.env['KUBECONFIG'], HOST: process.env['KUBERNETES_SERVICE_HOST'] };
  t.teardown(() => {
    rmSync(home, { recursive: true, force: true });
    for (const [name, value] of [
      ['HOME', saved.HOME],
      ['KUBECONFIG', saved.KUBECONFIG],
      ['KUBERNETES_SERVICE_HOST', saved.HOST],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
  process.env['HOME'] = home;
  delete process.env['KUBECONFIG'];
  delete process.env['KUBERNETES_SERVICE_HOST'];
  t.throws(() => operatorKubeConfig(undefined), { name: 'ConfigError', message: /^no kubeconfig found: / });
});

t.test('sentinel operator checks the kubeconfig before it connects to Postgres or migrates', async (t) => {
  const missing = join(tmpdir(), `sentinel-no-kubeconfig-${process.pid}.yaml`);
  // A database nobody listens on: reaching it would fail with a connection error instead.
  const config = loadConfig({ DATABASE_URL: 'postgres://sentinel:sentinel@127.0.0.1:1/none' }, { hostname: 'test', pid: 1 });
  const sink = new PassThrough();
  await t.rejects(operatorCommand.run({ config, log: silentLogger, argv: ['--kubeconfig', missing], stdout: sink, stderr: sink }), {
    name: 'ConfigError',
    message: `--kubeconfig ${missing}: no such file`,
  });
});
