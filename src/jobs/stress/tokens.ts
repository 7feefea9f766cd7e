/**
 * Bearer tokens for simulated customers: one HS256 JWT per customer, signed with the secret,
 * issuer and audience the ingress verifies (`SENTINEL_JWT_*`). A run may have 100,000 customers;
 * `jose` signs about 10,000 tokens/s here (WebCrypto, async), node:crypto's HMAC about 20 times
 * that, so the load client signs them itself — the same compact JWS `sentinel token` produces.
 */
import { createHmac } from 'node:crypto';

/** Where tokens come from: the ingress's HS256 settings. */
export interface TokenSettings {
  readonly secret: string;
  readonly issuer: string;
  readonly audience: string;
  /** Lifetime in seconds; long enough for the whole run. */
  readonly ttlS: number;
}

const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');

/** Signs an HS256 JWT for `subject`. */
export function signCustomerToken(settings: TokenSettings, subject: string, nowS = Math.floor(Date.now() / 1000)): string {
  const payload = Buffer.from(
    JSON.stringify({ sub: subject, iss: settings.issuer, aud: settings.audience, iat: nowS, exp: nowS + settings.ttlS }),
  ).toString('base64url');
  const signature = createHmac('sha256', settings.secret).update(`${HEADER}.${payload}`).digest('base64url');
  return `${HEADER}.${payload}.${signature}`;
}

/** Tokens by customer, signed on first use and remembered for the run. */
export class CustomerTokens {
  private readonly tokens = new Map<string, string>();
  private readonly nowS = Math.floor(Date.now() / 1000);

  constructor(private readonly settings: TokenSettings) {}

  get(customer: string): string {
    let token = this.tokens.get(customer);
    if (token === undefined) {
      token = signCustomerToken(this.settings, customer, this.nowS);
      this.tokens.set(customer, token);
    }
    return token;
  }

  get size(): number {
    return this.tokens.size;
  }
}
