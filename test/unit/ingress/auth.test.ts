import t, { type Test } from 'tap';
import fc from 'fast-check';
import { jwtVerify, SignJWT, type CryptoKey } from 'jose';
import { createHmac } from 'node:crypto';
import { isCustomerId } from '../../../src/domain/customer.js';
import { bearerToken, createTokenVerifier, mintToken, parseTokenTtl } from '../../../src/ingress/auth.js';
import { HttpProblem } from '../../../src/ingress/problems.js';

const secret = 'unit-test-secret-unit-test-secret';
const base = { issuer: 'sentinel', audience: 'sentinel-api' };
const verifier = createTokenVerifier({ secret, ...base });
const mint = (subject: string, ttlS = 60, overrides: Partial<{ secret: string; issuer: string; audience: string; now: number }> = {}) =>
  mintToken({ secret, ...base, subject, ttlS, ...overrides });
const key = new TextEncoder().encode(secret);
const nowS = () => Math.floor(Date.now() / 1000);
/** A token signed with the test secret: subject 'a', our issuer and audience, valid an hour — less `omit`, plus `extra`. */
function signed(options: { omit?: readonly ('sub' | 'iss' | 'aud' | 'exp')[]; alg?: string; extra?: Record<string, unknown> } = {}) {
  const claims: Record<string, unknown> = { sub: 'a', iss: 'sentinel', aud: 'sentinel-api', exp: nowS() + 3600, ...options.extra };
  for (const claim of options.omit ?? []) delete claims[claim];
  return new SignJWT(claims).setProtectedHeader({ alg: options.alg ?? 'HS256' }).sign(key);
}

/** An ES256 token for 'erin' with our issuer and audience, valid 5 minutes, naming key `kid`. */
function es256Token(privateKey: CryptoKey, kid: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid })
    .setSubject('erin')
    .setIssuer('sentinel')
    .setAudience('sentinel-api')
    .setExpirationTime('5m')
    .sign(privateKey);
}

async function refusal(t: Test, promise: Promise<unknown>, detail: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(error instanceof HttpProblem, 'an HttpProblem');
  t.equal((error as HttpProblem).problem, 'unauthorized');
  t.match((error as HttpProblem).message, detail);
  t.match((error as HttpProblem).headers['WWW-Authenticate'], /^Bearer realm="sentinel"/);
}

t.test('a minted token verifies and names the customer', async (t) => {
  t.same(await verifier.verify(await mint('alice')), { customer: 'alice' });
});

t.test('a subject is any text but control characters: such a customer would fail the commits of the shard it reached', async (t) => {
  for (const customer of ['zoë', '客户-1', 'a b', '🎟️ fan', 'x'.repeat(256)])
    t.same(await verifier.verify(await mint(customer)), { customer });
  for (const customer of ['a\u0000b', 'tab\there', 'new\nline', 'del\u007f', 'c1\u0085', 'x'.repeat(257)])
    await refusal(t, verifier.verify(await mint(customer)), /subject must be 1-256 characters, none a control character/);
  t.ok(isCustomerId('a\ud83c\udf9f'), 'a surrogate pair is a character');
  t.notOk(isCustomerId('a\ud83c'), 'half of one is not (a JWT cannot carry it: UTF-8 has no encoding for it)');
  t.notOk(isCustomerId('\udf9fa'));
});

t.test('bad tokens are refused with a reason', async (t) => {
  await refusal(t, verifier.verify(await mint('alice', 60, { secret: 'another-secret-another-secret-xx' })), /signature/);
  await refusal(t, verifier.verify(await mint('alice', 60, { audience: 'someone-else' })), /aud/);
  await refusal(t, verifier.verify(await mint('alice', 60, { issuer: 'evil' })), /iss/);
  await refusal(t, verifier.verify(await mint('alice', 1, { now: Date.now() - 3_600_000 })), /expired/);
  await refusal(t, verifier.verify('not.a.jwt'), /invalid/);
  await refusal(t, verifier.verify(await signed({ omit: ['sub'] })), /sub/);
  await refusal(t, verifier.verify(await signed({ omit: ['exp'] })), /exp/);
  await refusal(t, verifier.verify(await signed({ omit: ['aud'] })), /aud/);
  await refusal(t, verifier.verify(await signed({ omit: ['iss'] })), /iss/);
  await refusal(t, verifier.verify(await signed({ alg: 'HS512' })), /algorithm/);
});

t.test('HS256 edge cases: unsigned, tampered, not yet valid, within the clock tolerance', async (t) => {
  const token = await mint('alice');
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  await refusal(t, verifier.verify(`${b64({ alg: 'none' })}.${payload}.`), /algorithm|invalid/);
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
  await refusal(t, verifier.verify(`${header}.${b64({ ...claims, sub: 'mallory' })}.${signature}`), /signature/);
  const early = await signed({ extra: { nbf: nowS() + 3600, exp: nowS() + 7200 } });
  await refusal(t, verifier.verify(early), /not valid yet/);
  const justExpired = await mint('bob', 1, { now: Date.now() - 3_000 }); // expired 2 s ago: inside the 5 s tolerance
  t.same(await verifier.verify(justExpired), { customer: 'bob' });
  // jose refuses to sign with an unknown critical header, so this one is signed by hand.
  const criticalInput = `${b64({ alg: 'HS256', crit: ['x-unknown'], 'x-unknown': 1 })}.${payload}`;
  const critical = `${criticalInput}.${createHmac('sha256', key).update(criticalInput).digest('base64url')}`;
  await refusal(t, verifier.verify(critical), /invalid/);
});

t.test('property: the HS256 verifier accepts exactly the tokens jose accepts (random claims, random corruptions)', async (t) => {
  const now = nowS();
  const claimsArb = fc.record({
    sub: fc.option(fc.constantFrom('alice', 'bob', ''), { nil: undefined }),
    iss: fc.option(fc.constantFrom('sentinel', 'evil'), { nil: undefined }),
    aud: fc.option(fc.constantFrom('sentinel-api', 'other', ['other', 'sentinel-api'], ['other']), { nil: undefined }),
    exp: fc.option(fc.integer({ min: now - 3600, max: now + 3600 }), { nil: undefined }),
    nbf: fc.option(fc.integer({ min: now - 3600, max: now + 3600 }), { nil: undefined }),
  });
  const corruption = fc.option(fc.record({ at: fc.nat(), char: fc.constantFrom('A', 'b', '_', '-', '.', '0') }), { nil: undefined });
  const accepts = async (verify: () => Promise<unknown>) =>
    verify().then(
      () => true,
      () => false,
    );
  await fc.assert(
    fc.asyncProperty(claimsArb, fc.constantFrom('HS256', 'HS384'), corruption, async (claims, alg, corrupt) => {
      const defined = Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== undefined));
      let token = await new SignJWT(defined).setProtectedHeader({ alg }).sign(key);
      if (corrupt) {
        const at = corrupt.at % token.length;
        token = token.slice(0, at) + corrupt.char + token.slice(at + 1);
      }
      const ours = await accepts(() => createTokenVerifier({ secret, ...base }).verify(token));
      const jose = await accepts(async () => {
        const { payload } = await jwtVerify(token, key, {
          ...base,
          algorithms: ['HS256'],
          requiredClaims: ['sub', 'exp'],
          clockTolerance: 5,
        });
        if (typeof payload.sub !== 'string' || payload.sub === '') throw new Error('no subject');
      });
      if (ours !== jose) t.fail(`${token} (${JSON.stringify(defined)}, ${alg}, ${JSON.stringify(corrupt)}): ours ${ours}, jose ${jose}`);
      return ours === jose;
    }),
    { numRuns: 300 },
  );
  t.pass('300 tokens judged alike');
});

t.test('a verified token is remembered until it expires, not after', async (t) => {
  let now = Date.now();
  const v = createTokenVerifier({ secret, ...base, now: () => now });
  const token = await mint('carol', 60);
  t.same(await v.verify(token), { customer: 'carol' });
  t.same(await v.verify(token), { customer: 'carol' }, 'from the cache');
  now += 120_000;
  // The signature check reads exp against the real clock (the token is still valid there), so the
  // cache must have dropped the entry and re-verified: the result is the same principal.
  t.same(await v.verify(token), { customer: 'carol' });
});

t.test('Authorization header parsing', async (t) => {
  t.equal(bearerToken('Bearer abc.def.ghi'), 'abc.def.ghi');
  t.equal(bearerToken('bearer abc.def.ghi'), 'abc.def.ghi');
  const thrown = (header: string | undefined) => {
    try {
      bearerToken(header);
    } catch (error) {
      return error as HttpProblem;
    }
    throw new Error('no error');
  };
  t.equal(thrown(undefined).headers['WWW-Authenticate'], 'Bearer realm="sentinel"', 'missing: a bare challenge');
  t.match(thrown('Basic dXNlcjpwdw==').message, /Bearer/);
  t.match(thrown('Basic dXNlcjpwdw==').headers['WWW-Authenticate'], /invalid_token/);
  t.equal(thrown('Bearer ').problem, 'unauthorized');
});

t.test('durations', async (t) => {
  t.equal(parseTokenTtl('1h'), 3600);
  t.equal(parseTokenTtl('15m'), 900);
  t.equal(parseTokenTtl('90s'), 90);
  t.equal(parseTokenTtl('2d'), 172_800);
  t.equal(parseTokenTtl('30'), 30);
  t.equal(parseTokenTtl('0'), undefined);
  t.equal(parseTokenTtl('1y'), undefined);
  t.equal(parseTokenTtl('soon'), undefined);
  t.equal(parseTokenTtl('1.5h'), 5400);
  t.equal(parseTokenTtl('1.5s'), undefined, 'whole seconds only');
  t.equal(parseTokenTtl('1.0004s'), undefined, 'not rounded to a whole second first');
  t.equal(parseTokenTtl('0.5m'), 30);
  t.equal(parseTokenTtl('500ms'), undefined, 'no milliseconds for a token');
});

t.test('JWKS: asymmetric tokens verify against the key set; an unreachable key set is a 503, not a 401', async (t) => {
  const { createServer } = await import('node:http');
  const { exportJWK, generateKeyPair } = await import('jose');
  const { DependencyError } = await import('../../../src/errors.js');
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const server = createServer((_req, res) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const { port } = server.address() as { port: number };
  const jwks = createTokenVerifier({ jwksUrl: `http://127.0.0.1:${port}/jwks.json`, ...base });
  const signed = await es256Token(privateKey, 'k1');
  t.same(await jwks.verify(signed), { customer: 'erin' });
  await refusal(t, jwks.verify(await mint('erin')), /algorithm/); // an HS256 token is never accepted with a JWKS
  const unreachable = createTokenVerifier({ jwksUrl: 'http://127.0.0.1:1/jwks.json', ...base });
  await t.rejects(unreachable.verify(signed), DependencyError);
});

t.test('JWKS trouble is a 503, never a 401 for a valid token: a non-200 answer, a body that is not JSON or not a key set', async (t) => {
  const { createServer } = await import('node:http');
  const { exportJWK, generateKeyPair } = await import('jose');
  const { DependencyError } = await import('../../../src/errors.js');
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  // What the key set server answers, per path.
  const answers: Record<string, [number, string]> = {
    '/down': [503, '{"error":"maintenance"}'],
    '/html': [200, '<html>login</html>'],
    '/not-a-set': [200, '{"keys":"none"}'],
    '/private': [200, JSON.stringify({ keys: [{ ...(await exportJWK(privateKey)), kid: 'k1', alg: 'ES256' }] })],
    '/ok': [200, JSON.stringify({ keys: [jwk] })],
  };
  const server = createServer((req, res) => {
    const [status, body] = answers[req.url ?? ''] ?? [404, ''];
    res.writeHead(status, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const { port } = server.address() as { port: number };
  const token = await es256Token(privateKey, 'k1');
  const at = (path: string) => createTokenVerifier({ jwksUrl: `http://127.0.0.1:${port}${path}`, ...base });
  for (const path of ['/down', '/html', '/not-a-set', '/private']) {
    const error = await at(path)
      .verify(token)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    t.ok(error instanceof DependencyError, `${path}: a DependencyError (503), not ${String(error)}`);
    t.equal((error as InstanceType<typeof DependencyError>).code, 'jwks_unavailable');
  }
  // The token itself is fine: the same token against a working key set verifies, and bad tokens are still 401s.
  const ok = at('/ok');
  t.same(await ok.verify(token), { customer: 'erin' });
  await refusal(t, ok.verify(`${token.slice(0, -6)}AAAAAA`), /signature/);
  await refusal(t, ok.verify(await es256Token(privateKey, 'k2')), /no key matches/);
});
