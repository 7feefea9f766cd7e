/**
 * `sentinel token --sub alice [--ttl 1h]`: mints a bearer token with the configured HS256 secret,
 * issuer and audience — for development and tests, never for production customers.
 */
import { assertTokenConfig } from '../config.js';
import { CUSTOMER_ID_RULE, isCustomerId } from '../domain/customer.js';
import { mintToken, parseTokenTtl } from '../ingress/auth.js';
import type { Command } from './commands.js';
import { parseFlags } from './flags.js';

const HELP = `Usage: sentinel token --sub CUSTOMER [--ttl 1h] [--json]

Mints an HS256 JWT with SENTINEL_JWT_SECRET, SENTINEL_JWT_ISSUER and SENTINEL_JWT_AUDIENCE.
  --sub   the customer (JWT subject), required
  --ttl   lifetime in whole seconds: 90s, 15m, 1.5h, 7d or plain seconds (default 1h)
  --json  print {"token", "sub", "expiresAt"} instead of the bare token
`;

export const tokenCommand: Command = {
  summary: 'mint a development bearer token (--sub alice [--ttl 1h])',
  async run({ config, argv, stdout, stderr }) {
    const parsed = parseFlags(
      { argv, stdout, stderr },
      {
        sub: { type: 'string' },
        ttl: { type: 'string', default: '1h' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
      HELP,
    );
    if ('exit' in parsed) return parsed.exit;
    const { values } = parsed;
    const ttlS = parseTokenTtl(values.ttl);
    if (!values.sub || !isCustomerId(values.sub) || ttlS === undefined) {
      const problem = !values.sub
        ? '--sub is required'
        : !isCustomerId(values.sub)
          ? `--sub must be ${CUSTOMER_ID_RULE} (the ingress refuses any other)`
          : `--ttl ${JSON.stringify(values.ttl)} is not a lifetime in whole seconds (like 90s, 15m, 1.5h, 7d)`;
      stderr.write(`${problem}\n\n${HELP}`);
      return 2;
    }
    // The secret signs the token: under NODE_ENV=production never the public development one
    // (a ConfigError naming the variable, as the ingress refuses to verify with it).
    assertTokenConfig(config, 'mint');
    if (config.jwksUrl) stderr.write('warning: SENTINEL_JWKS_URL is set, so the ingress will not accept HS256 tokens minted here\n');
    const now = Date.now();
    const token = await mintToken({
      secret: config.jwtSecret,
      issuer: config.jwtIssuer,
      audience: config.jwtAudience,
      subject: values.sub,
      ttlS,
      now,
    });
    if (values.json) stdout.write(`${JSON.stringify({ token, sub: values.sub, expiresAt: new Date(now + ttlS * 1000).toISOString() })}\n`);
    else stdout.write(`${token}\n`);
    return 0;
  },
};
