import type { ResolvedArtifact } from '@ibex/spec';
import { FatalError } from '../common/errors.js';

/**
 * Where this agent downloads controller artifacts, and with what credential. The controller
 * says where in its Welcome (`artifacts_url`, docs/protocol.md); `{host}` in it stands for the
 * host of the controller address this agent connects to, so one setting serves devices that
 * reach the controller under different names. The device credential is sent only to this URL.
 */
export class ArtifactEndpoint {
  private base: string | undefined;

  constructor(
    private readonly credential: string,
    /** Host of the controller address (`grpc://HOST:port`), IPv6 in brackets. */
    private readonly controllerHost: string,
  ) {}

  /** From each Welcome; an empty URL means the controller has no artifact store. */
  welcome(artifactsUrl: string): void {
    this.base = artifactsUrl ? artifactsUrl.replaceAll('{host}', this.controllerHost).replace(/\/+$/, '') : undefined;
  }

  /** The GET request for an artifact; a FatalError when no controller said where (never connected, or a console job). */
  request(a: ResolvedArtifact): { url: string; headers: Record<string, string> } {
    if (!this.base) {
      throw new FatalError(`artifact ${a.name}@${a.version} can only be downloaded from the controller, and this agent has not been told where (run it connected with \`ibex-agent run\`, or use a path or url source)`);
    }
    return { url: `${this.base}/${a.id}/download`, headers: { authorization: `Bearer ${this.credential}` } };
  }
}
