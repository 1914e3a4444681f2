import { Injectable, Logger } from '@nestjs/common';
import { JobOutcome } from '@ibex/proto';
import { AuditService } from '../../audit/audit.service.js';
import type { LocalChangeInput } from '../agent-messages.schema.js';
import type { AuthenticatedDevice } from '../connect/device-auth.service.js';

/** What a device reported: a new entry, or one this controller already has. Both are acknowledged. */
export type LocalChangeOutcome = 'recorded' | 'duplicate';

const outcomeNames: Record<number, string> = {
  [JobOutcome.JOB_OUTCOME_SUCCEEDED]: 'succeeded',
  [JobOutcome.JOB_OUTCOME_FAILED]: 'failed',
  [JobOutcome.JOB_OUTCOME_CANCELLED]: 'cancelled',
  [JobOutcome.JOB_OUTCOME_REJECTED]: 'rejected',
};

/** JSON text as the audit entry keeps it: parsed, or the text itself when it is not JSON. */
function parsed(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return { unparsed: text };
  }
}

/**
 * Jobs an operator ran at a device's console (protocol.md "Local changes"): each is one audit
 * entry `device.local_job` whose actor is the device, recorded once per change id.
 */
@Injectable()
export class LocalChanges {
  private readonly log = new Logger('LocalChanges');

  constructor(private readonly audit: AuditService) {}

  async record(device: AuthenticatedDevice, c: LocalChangeInput): Promise<LocalChangeOutcome> {
    const r = c.result!;
    const added = await this.audit.recordOnce(
      {
        actor: { type: 'device', id: device.id, name: device.name },
        action: 'device.local_job',
        target: { type: 'device', id: device.id },
        data: {
          changeId: c.changeId,
          type: c.type,
          params: parsed(c.paramsJson),
          outcome: outcomeNames[r.outcome],
          error: r.error || null,
          output: parsed(r.outputJson),
          startedAt: new Date(c.startedAtMs).toISOString(),
          finishedAt: new Date(r.finishedAtMs).toISOString(),
          user: c.user || null,
          log: c.log.map((l) => ({ at: new Date(l.tsMs).toISOString(), level: l.level, text: l.text })),
        },
      },
      `local_change:${device.id}:${c.changeId}`,
    );
    if (added) this.log.log(`device ${device.name} (${device.id}) reports a local ${c.type} job (${outcomeNames[r.outcome]}), change ${c.changeId}`);
    return added ? 'recorded' : 'duplicate';
  }
}
