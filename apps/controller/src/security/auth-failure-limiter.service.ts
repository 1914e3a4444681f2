import { createHash } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { RateLimited } from '../common/errors.js';
import { CONFIG, type Config } from '../config/config.js';
import { RedisService } from '../redis/redis.service.js';

/** What failed: the counters per token are kept apart per kind (a credential is not an API token). */
export type AuthKind = 'enroll' | 'connect' | 'api';

/**
 * Counts failed enrollments and authentications per source address and per presented token
 * (its hash), in Redis so the limit holds across replicas; once a count reaches its limit
 * within the window, further attempts from that source or with that token are refused
 * (RateLimited: gRPC RESOURCE_EXHAUSTED, HTTP 429 with Retry-After) until the window ends.
 * Only failures count: a fleet reconnecting after an outage is not slowed down. When Redis is
 * unreachable, each replica counts in memory instead (a weaker limit, never an open door and
 * never a refusal caused by the outage itself).
 */
@Injectable()
export class AuthFailureLimiter {
  private readonly log = new Logger('AuthLimit');
  private readonly perSource: RateLimiterAbstract;
  private readonly perToken: RateLimiterAbstract;

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    redis: RedisService,
  ) {
    const { perSource, perToken, windowSec } = config.authFailures;
    const make = (points: number, name: string) =>
      new RateLimiterRedis({
        storeClient: redis.client,
        keyPrefix: redis.key('authfail', name),
        points,
        duration: windowSec,
        insuranceLimiter: new RateLimiterMemory({ points, duration: windowSec }),
      });
    this.perSource = make(perSource, 'src');
    this.perToken = make(perToken, 'tok');
  }

  /** Throws RateLimited when the source or the token already failed too often in the window. */
  async check(kind: AuthKind, source: string, token?: string): Promise<void> {
    const [src, tok] = await Promise.all([this.get(this.perSource, source), token ? this.get(this.perToken, tokenKey(kind, token)) : undefined]);
    const { perSource, perToken, windowSec } = this.config.authFailures;
    if (src && src.consumedPoints >= perSource) throw limited(`${src.consumedPoints} failed attempts from ${source} in the last ${windowSec} s`, src);
    if (tok && tok.consumedPoints >= perToken) throw limited(`${tok.consumedPoints} failed attempts with this ${what(kind)} in the last ${windowSec} s`, tok);
  }

  /** Counts one failure against the source and the token. */
  async failed(kind: AuthKind, source: string, token?: string): Promise<void> {
    await Promise.all([this.count(this.perSource, source), token ? this.count(this.perToken, tokenKey(kind, token)) : undefined]);
  }

  private async get(limiter: RateLimiterAbstract, key: string): Promise<RateLimiterRes | null> {
    try {
      return await limiter.get(key);
    } catch (err) {
      this.log.warn(`could not read the failure count of ${key}: ${(err as Error).message}`);
      return null;
    }
  }

  private async count(limiter: RateLimiterAbstract, key: string): Promise<void> {
    try {
      await limiter.consume(key);
    } catch (err) {
      // Over the limit is the expected rejection here: the count is what matters.
      if (!(err instanceof RateLimiterRes)) this.log.warn(`could not count a failure of ${key}: ${(err as Error).message}`);
    }
  }
}

function tokenKey(kind: AuthKind, token: string): string {
  return `${kind}:${createHash('sha256').update(token).digest('hex').slice(0, 32)}`;
}

function what(kind: AuthKind): string {
  return kind === 'enroll' ? 'enrollment token' : kind === 'connect' ? 'device credential or certificate' : 'API token';
}

function limited(why: string, res: RateLimiterRes): RateLimited {
  const retryAfterSec = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
  return new RateLimited(`too many failed attempts (${why}); wait ${retryAfterSec} s, then retry with a valid token`, retryAfterSec);
}

/** The address part of a gRPC peer (`ipv4:10.0.0.2:5000`, `[::1]:5000`, `10.0.0.2:5000`). */
export function peerAddress(peer: string): string {
  const p = peer.replace(/^ipv[46]:/, '');
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(p);
  if (v6) return v6[1]!;
  const v4 = /^([^:]+):\d+$/.exec(p);
  return v4 ? v4[1]! : p;
}
