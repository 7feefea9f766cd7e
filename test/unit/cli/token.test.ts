/**
 * `sentinel token` signs with SENTINEL_JWT_SECRET: under NODE_ENV=production it refuses the
 * development secret, which is public — as the ingress refuses to verify with it — whether or not a
 * JWKS is set (the JWKS is for verifying; the token is signed with the secret all the same).
 */
import { PassThrough } from 'node:stream';
import t from 'tap';
import { tokenCommand } from '../../../src/cli/token-command.js';
import { stressOptionsFrom } from '../../../src/jobs/stress/cli.js';
import { loadConfig } from '../../../src/config.js';
import { ConfigError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';

async function token(env: Readonly<Record<string, string | undefined>>): Promise<{ code: number; stdout: string }> {
  const stdout = new PassThrough();
  let out = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const code = await tokenCommand.run({
    config: loadConfig(env),
    log: silentLogger,
    argv: ['--sub', 'alice'],
    stdout,
    stderr: new PassThrough(),
  });
  return { code, stdout: out };
}

t.test('production: no token signed with the development secret', async (t) => {
  for (const env of [{ NODE_ENV: 'production' }, { NODE_ENV: 'production', SENTINEL_JWKS_URL: 'https://issuer.example/jwks' }]) {
    await t.rejects(
      token(env),
      new ConfigError(
        'SENTINEL_JWT_SECRET must be set when NODE_ENV=production: tokens are signed with it, and the development secret is public',
      ),
      JSON.stringify(env),
    );
  }
});

t.test('production with a secret, and development, mint a token', async (t) => {
  for (const env of [{ NODE_ENV: 'production', SENTINEL_JWT_SECRET: 'x'.repeat(32) }, {}]) {
    const result = await token(env);
    t.equal(result.code, 0, JSON.stringify(env));
    t.match(result.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/, `${JSON.stringify(env)}: a JWT`);
  }
});

t.test('production: sentinel stress signs no buyer token with the development secret either', async (t) => {
  const options = (env: Readonly<Record<string, string>>) => stressOptionsFrom({ event: 'e' }, loadConfig(env));
  t.throws(() => options({ NODE_ENV: 'production' }), ConfigError);
  t.equal(options({ NODE_ENV: 'production', SENTINEL_JWT_SECRET: 'x'.repeat(32) }).tokens.secret, 'x'.repeat(32));
});
