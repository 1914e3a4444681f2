import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { AuditService, systemActor } from '../../audit/audit.service.js';
import { Clock } from '../../common/clock.js';
import { displayPrefix, hashSecret, newSecret } from '../../common/secrets.js';
import { CONFIG, type Config } from '../../config/config.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { activeAdminTokens, ADMIN_TOKENS_LOCK } from './api-tokens.service.js';

export type BootstrapOutcome = 'existing' | 'created_from_env' | 'env_token_revoked' | 'generated';

/** Where a generated admin token is shown: straight to stdout, whatever the log level. */
export type Announce = (line: string) => void;
const toStdout: Announce = (line) => process.stdout.write(`\n${line}\n\n`);

/**
 * Makes sure someone can use the API after startup. With IBEX_ADMIN_TOKEN set, a token with
 * that hash exists (created once; never printed). Otherwise, when no usable admin token exists
 * (first start, or every admin token revoked or expired), one is generated and printed once.
 * An advisory lock keeps replicas starting together from each minting one.
 */
@Injectable()
export class AdminTokenBootstrap implements OnApplicationBootstrap {
  private readonly log = new Logger('ApiTokens');

  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    @Inject(CONFIG) private readonly config: Config,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.ensureAdminToken();
  }

  async ensureAdminToken(announce: Announce = toStdout): Promise<BootstrapOutcome> {
    const envToken = this.config.adminToken;
    const secret = envToken ?? newSecret('apiToken');
    const outcome = await this.prisma.$transaction(async (tx): Promise<BootstrapOutcome> => {
      await tx.$executeRawUnsafe(ADMIN_TOKENS_LOCK);
      if (envToken) {
        const existing = await tx.apiToken.findUnique({ where: { hash: hashSecret(envToken) } });
        if (existing) return existing.revokedAt ? 'env_token_revoked' : 'existing';
      } else if ((await tx.apiToken.count({ where: activeAdminTokens(this.clock.now()) })) > 0) {
        return 'existing';
      }
      const name = envToken ? 'admin (IBEX_ADMIN_TOKEN)' : 'admin (generated at first start)';
      const t = await tx.apiToken.create({ data: { name, role: 'admin', prefix: displayPrefix(secret), hash: hashSecret(secret) } });
      await this.audit.record({ actor: systemActor('bootstrap'), action: 'api_token.create', target: { type: 'api_token', id: t.id }, data: { name, role: 'admin' } }, tx);
      return envToken ? 'created_from_env' : 'generated';
    });
    if (outcome === 'generated') announce(`Admin API token (shown once, store it now): ${secret}`);
    if (outcome === 'created_from_env') this.log.log('created the admin API token given in IBEX_ADMIN_TOKEN');
    if (outcome === 'env_token_revoked') {
      this.log.warn('IBEX_ADMIN_TOKEN names an API token that was revoked; it stays revoked. Set a new token there, or remove the variable');
    }
    return outcome;
  }
}
