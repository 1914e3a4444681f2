import { join } from 'node:path';

/** Where the agent keeps its data when --data-dir does not say: `<root>/var/lib/ibex-agent`. */
export const defaultDataDir = (root: string) => join(root, 'var/lib/ibex-agent');

/**
 * What the agent keeps on disk, all under its data dir (default `<root>/var/lib/ibex-agent`):
 *   credential.json   the device identity from `enroll` (0600)
 *   certificate.json  the device's mTLS key and certificate, replaced at each renewal (0600)
 *   desired.json      the last DesiredState received, written before acting on it
 *   state.json        applied revision, last section results, unacknowledged StateReports
 *   jobs/<id>.json    one journal per job: phase, result, unacknowledged JobUpdates
 *   intents/<s>.json  a section's backup record while its steps run (present = interrupted apply)
 *   backup/<s>/       the bytes that record points to
 *   status.json       what `ibex-agent status` shows about the running process (not a journal)
 *   generations/      the generations records: config, state, journal, downloads (generations-store.ts)
 *   agent.lock        held by the process that uses the data dir (data-dir-lock.ts)
 */
export class DataDir {
  constructor(readonly path: string) {}
  get credential(): string {
    return join(this.path, 'credential.json');
  }
  get certificate(): string {
    return join(this.path, 'certificate.json');
  }
  get desired(): string {
    return join(this.path, 'desired.json');
  }
  get state(): string {
    return join(this.path, 'state.json');
  }
  get status(): string {
    return join(this.path, 'status.json');
  }
  get jobs(): string {
    return join(this.path, 'jobs');
  }
  get intents(): string {
    return join(this.path, 'intents');
  }
  backupOf(section: string): string {
    return join(this.path, 'backup', section);
  }
}
