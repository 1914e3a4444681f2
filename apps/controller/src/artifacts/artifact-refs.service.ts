import { Injectable } from '@nestjs/common';
import type { FieldIssue, ResolvedArtifact } from '@ibex/spec';
import { NotFound, ValidationFailed } from '../common/errors.js';
import { ArtifactsService } from './artifacts.service.js';

/**
 * Replaces every `artifact: "<id or name@version>"` in a spec or job params with the resolved
 * artifact (id, name, version, sha256, size) before it is stored, so the agent downloads and
 * verifies exactly those bytes even if a new version is uploaded later. Works on any section
 * or job type: it looks for the key, not for a place.
 */
@Injectable()
export class ArtifactRefs {
  constructor(private readonly artifacts: ArtifactsService) {}

  /** `value` with its references resolved; an unknown one is a 400 naming the field (`base.path.artifact`). */
  async resolve<T>(value: T, base: string): Promise<T> {
    const issues: FieldIssue[] = [];
    const out = await this.walk(value, base, issues);
    if (issues.length > 0) throw new ValidationFailed(`invalid ${base}: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`, issues);
    return out as T;
  }

  private async walk(v: unknown, path: string, issues: FieldIssue[]): Promise<unknown> {
    if (Array.isArray(v)) return Promise.all(v.map((x, i) => this.walk(x, `${path}[${i}]`, issues)));
    if (v === null || typeof v !== 'object') return v;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const at = `${path}.${k}`;
      if (k !== 'artifact') {
        out[k] = await this.walk(x, at, issues);
      } else if (typeof x === 'string') {
        out[k] = await this.one(x, at, issues);
      } else {
        issues.push({ path: at, message: "must be the artifact's id or name@version; the controller fills in its sha256 and size" });
      }
    }
    return out;
  }

  private async one(ref: string, path: string, issues: FieldIssue[]): Promise<ResolvedArtifact | string> {
    try {
      const a = await this.artifacts.find(ref);
      return { id: a.id, name: a.name, version: a.version, sha256: a.sha256, size: Number(a.size) };
    } catch (err) {
      if (!(err instanceof NotFound)) throw err;
      issues.push({ path, message: `names artifact ${ref}, which does not exist; upload it first or list them with GET /api/v1/artifacts` });
      return ref;
    }
  }
}
