/**
 * Bearer-token authentication: a JWT verified against an HS256 secret or a JWKS URL, with the
 * configured issuer and audience; its subject is the customer. Verified tokens are remembered until
 * they expire, so a client that sends the same token a thousand times is verified once.
 *
 * HS256 tokens are verified by fast-jwt (node:crypto's HMAC, synchronous: about 8 µs of CPU per new
 * token here), key sets by jose (remote JWKS, asymmetric algorithms). jose verifies HS256 through
 * WebCrypto at about 43 µs per token — in a flash sale every buyer brings a new token, and that was
 * an eighth of all the CPU the flash sale of `npm run bench` used (ADR 0008).
 */
import { CUSTOMER_ID_RULE, isCustomerId } from '../domain/customer.js';
import { createVerifier, TokenError } from 'fast-jwt';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { parseDuration } from '../duration.js';
import { DependencyError } from '../errors.js';
import { evictOldest } from '../evict.js';
import { HttpProblem } from './problems.js';

/** Who is calling. */
export interface Principal {
  /** The JWT subject. */
  readonly customer: string;
}

/** Verifies a bearer token; throws an `unauthorized` HttpProblem for anything but a valid one. */
export interface TokenVerifier {
  verify(token: string): Promise<Principal>;
}

/** Where keys come from: exactly one of an HS256 secret or a JWKS URL. */
export interface TokenVerifierOptions {
  readonly secret?: string;
  readonly jwksUrl?: string;
  readonly issuer: string;
  readonly audience: string;
  /** Clock for the cache (ms). */
  readonly now?: () => number;
  /** Most tokens remembered at once. */
  readonly cacheSize?: number;
}

const CLOCK_TOLERANCE_S = 5;

/** The `WWW-Authenticate` challenge (RFC 6750). */
export function bearerChallenge(error?: 'invalid_token', description?: string): string {
  const parts = ['Bearer realm="sentinel"'];
  if (error) parts.push(`error="${error}"`);
  if (description) parts.push(`error_description="${description.replace(/["\\]/g, '')}"`);
  return parts.join(', ');
}

export function unauthorized(detail: string, invalidToken: boolean): HttpProblem {
  return new HttpProblem('unauthorized', detail, {
    headers: { 'WWW-Authenticate': invalidToken ? bearerChallenge('invalid_token', detail) : bearerChallenge() },
  });
}

/** The token of an `Authorization: Bearer <token>` header. */
export function bearerToken(header: string | undefined): string {
  if (header === undefined || header === '') throw unauthorized('Authorization: Bearer <token> is required', false);
  const match = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(header);
  if (!match?.[1]) throw unauthorized('Authorization header must be "Bearer <token>"', true);
  return match[1];
}

/** fast-jwt's messages name the claim ("The aud claim value is not allowed."): ours keep the same words as jose's. */
function describeFastJwtError(error: TokenError): string {
  const claim = /\bThe (\w+) claim\b/.exec(error.message)?.[1];
  switch (error.code) {
    case TokenError.codes.expired:
      return 'token expired';
    case TokenError.codes.inactive:
      return 'token is not valid yet (nbf)';
    case TokenError.codes.invalidSignature:
      return 'token signature is invalid';
    case TokenError.codes.invalidAlgorithm:
      return 'token algorithm is not accepted';
    case TokenError.codes.missingRequiredClaim:
      return `token claim ${claim ?? '?'} is missing`;
    case TokenError.codes.invalidClaimValue:
    case TokenError.codes.invalidClaimType:
      return `token claim ${claim ?? '?'} is not acceptable`;
    default:
      return 'token is invalid';
  }
}

function describeJoseError(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'token expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `token claim ${error.claim} is not acceptable (${error.reason})`;
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'token signature is invalid';
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'token algorithm is not accepted';
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'no key matches the token';
  if (error instanceof joseErrors.JOSEError) return 'token is invalid';
  return 'token is invalid';
}

/**
 * Whether jose failed to get the keys rather than judged the token (jose 6, `jwks/remote.js`):
 * JWKSTimeout (no answer in time); the plain JOSEError (code ERR_JOSE_GENERIC), which jose throws
 * only when fetching the set — a non-200 answer, a body that is not JSON; JWKSInvalid, a set that
 * is not a key set or holds a private key; and anything that is not a JOSEError (fetch's network
 * errors). Every other JOSEError is about the token: its form, algorithm, signature, claims, or
 * a `kid` no key in the set matches (JWKSNoMatchingKey, after a refetch).
 */
function keySetUnavailable(error: unknown): boolean {
  if (!(error instanceof joseErrors.JOSEError)) return true;
  return error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid || error.code === joseErrors.JOSEError.code;
}

/** Creates the verifier from configuration: the JWKS URL wins when set. */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const now = options.now ?? Date.now;
  const cacheSize = options.cacheSize ?? 50_000;
  const cache = new Map<string, { principal: Principal; expiresAt: number }>();
  /** Checks a token's signature and claims against the key (or key set); throws 401s and 503s. */
  let check: (token: string) => Promise<JWTPayload> | JWTPayload;
  if (options.jwksUrl) {
    const jwks = createRemoteJWKSet(new URL(options.jwksUrl));
    const claims = {
      issuer: options.issuer,
      audience: options.audience,
      algorithms: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'],
      requiredClaims: ['sub', 'exp'],
      clockTolerance: CLOCK_TOLERANCE_S,
    };
    check = async (token) => {
      try {
        return (await jwtVerify(token, jwks, claims)).payload;
      } catch (error) {
        // The key set could not be had: our problem, not the caller's token.
        if (keySetUnavailable(error)) {
          throw new DependencyError('jwks', `cannot fetch the JWKS: ${error instanceof Error ? error.message : String(error)}`, error);
        }
        throw unauthorized(describeJoseError(error), true);
      }
    };
  } else if (options.secret) {
    const verifyHs256 = createVerifier({
      key: options.secret,
      algorithms: ['HS256'],
      allowedIss: options.issuer,
      allowedAud: options.audience,
      // fast-jwt checks iss and aud only when the token has them (jose requires them): required here.
      requiredClaims: ['sub', 'exp', 'iss', 'aud'],
      clockTolerance: CLOCK_TOLERANCE_S * 1000,
      cache: false, // the cache below serves both backends
    });
    check = (token) => {
      try {
        return verifyHs256(token) as JWTPayload;
      } catch (error) {
        if (error instanceof TokenError) throw unauthorized(describeFastJwtError(error), true);
        throw error;
      }
    };
  } else {
    throw new Error('createTokenVerifier needs a secret or a JWKS URL');
  }
  return {
    async verify(token) {
      const cached = cache.get(token);
      if (cached !== undefined) {
        if (cached.expiresAt > now()) return cached.principal;
        cache.delete(token);
      }
      const payload = await check(token);
      const subject = payload.sub;
      if (!isCustomerId(subject)) {
        throw unauthorized(`token subject must be ${CUSTOMER_ID_RULE}`, true);
      }
      const principal: Principal = { customer: subject };
      // exp is required above; remember the token until then (not past the clock tolerance).
      cache.set(token, { principal, expiresAt: (payload.exp as number) * 1000 });
      evictOldest(cache, cacheSize);
      return principal;
    },
  };
}

/** A token lifetime: `90s`, `15m`, `1.5h`, `7d` or plain seconds, in whole seconds (undefined if not, or 0). */
export function parseTokenTtl(text: string): number | undefined {
  const parsed = parseDuration(text, { bare: 's', units: ['s', 'm', 'h', 'd'] });
  if ('error' in parsed || !parsed.exact || parsed.ms <= 0 || parsed.ms % 1000 !== 0) return undefined;
  return parsed.ms / 1000;
}

/** Mints an HS256 token for development and tests. */
export async function mintToken(options: {
  secret: string;
  issuer: string;
  audience: string;
  subject: string;
  ttlS: number;
  now?: number;
}): Promise<string> {
  const iat = Math.floor((options.now ?? Date.now()) / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.subject)
    .setIssuer(options.issuer)
    .setAudience(options.audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + options.ttlS)
    .sign(new TextEncoder().encode(options.secret));
}
