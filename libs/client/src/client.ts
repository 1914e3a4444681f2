import type {
  ApiToken,
  Artifact,
  UploadArtifactMeta,
  AuditEvent,
  CreatedApiToken,
  CreatedEnrollmentToken,
  DesiredRevision,
  Device,
  DeviceCertificate,
  DeviceCredential,
  DeviceGenerations,
  DeviceIdentity,
  DeviceState,
  EnrollmentToken,
  FieldIssue,
  ImageBuild,
  FleetSummary,
  Job,
  JobDetail,
  JobLogs,
  JobType,
  Page,
  PlanResult,
  Rollout,
  RolloutDevice,
  RolloutPreview,
  Schedule,
  TokenRole,
} from './types.js';

/** The controller answered with an error: `{ error: { code, message, issues? }, requestId }`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly issues: FieldIssue[] = [],
    readonly requestId: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** No HTTP answer at all: the controller is down, the URL is wrong, or the request timed out. */
export class ControllerUnreachable extends Error {
  constructor(
    readonly url: string,
    readonly reason: string,
  ) {
    super(`cannot reach the controller at ${url} (${reason}); check the URL (ibexctl login --server, or IBEX_SERVER) and that the controller runs`);
    this.name = 'ControllerUnreachable';
  }
}

export interface ClientOptions {
  /** e.g. http://127.0.0.1:8080 (no /api/v1). */
  baseUrl: string;
  token?: string | undefined;
  /** Per request, default 60 s (a plan that waits asks for longer itself). */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export type Query = Record<string, string | number | boolean | undefined | null>;

interface RequestOptions {
  query?: Query;
  body?: unknown;
  headers?: Record<string, string>;
  timeoutMs?: number;
  signal?: AbortSignal;
}

const enc = encodeURIComponent;

/**
 * The REST API of one controller, as ibexctl and the dashboard call it. Every method is one
 * request; `all()` follows `nextCursor` through a list.
 */
export class IbexClient {
  readonly baseUrl: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  private readonly doFetch: typeof fetch;

  constructor(opts: ClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.token = opts.token;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.doFetch = opts.fetch ?? ((input, init) => fetch(input, init));
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const url = `${this.baseUrl}${path}${queryString(opts.query)}`;
    const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
    if (this.token) headers['authorization'] = `Bearer ${this.token}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const timeout = AbortSignal.timeout(opts.timeoutMs ?? this.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    let res: Response;
    try {
      res = await this.doFetch(url, { method, headers, signal, ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}) });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const reason = timeout.aborted ? `no answer within ${(opts.timeoutMs ?? this.timeoutMs) / 1000} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
      throw new ControllerUnreachable(this.baseUrl, reason);
    }
    const text = await res.text();
    if (!res.ok) throw errorFrom(res, text);
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(res.status, 'invalid_response', `the controller at ${this.baseUrl} answered ${method} ${path} with something that is not JSON; is the URL that of an Ibex controller?`);
    }
  }

  /** Every item of a paginated list, following nextCursor (at most `max`). */
  async all<T>(list: (cursor: string | undefined) => Promise<Page<T>>, max = Infinity): Promise<T[]> {
    const out: T[] = [];
    let cursor: string | undefined;
    do {
      const page = await list(cursor);
      out.push(...page.items);
      cursor = page.nextCursor ?? undefined;
    } while (cursor && out.length < max);
    return out.slice(0, max);
  }

  // Artifacts
  listArtifacts(q: { name?: string; kind?: string; sha256?: string; limit?: number; cursor?: string } = {}) {
    return this.request<Page<Artifact>>('GET', '/api/v1/artifacts', { query: q });
  }
  getArtifact(ref: string) {
    return this.request<Artifact>('GET', `/api/v1/artifacts/${enc(ref)}`);
  }
  deleteArtifact(ref: string) {
    return this.request<void>('DELETE', `/api/v1/artifacts/${enc(ref)}`);
  }
  /**
   * Streams `body` (exactly `size` bytes) as a new artifact; never buffers it. No request
   * timeout (a large file takes as long as it takes); pass a signal to stop it.
   */
  async uploadArtifact(meta: UploadArtifactMeta, body: ReadableStream<Uint8Array>, size: number, signal?: AbortSignal): Promise<Artifact> {
    const query: Query = {
      name: meta.name,
      version: meta.version,
      kind: meta.kind,
      sha256: meta.sha256,
      labels: meta.labels && Object.keys(meta.labels).length ? Object.entries(meta.labels).map(([k, v]) => `${k}=${v}`).join(',') : undefined,
      architectures: meta.architectures?.length ? meta.architectures.join(',') : undefined,
    };
    // Asked first, so a taken name@version is refused before any byte is sent: the controller
    // refuses it too, but answers as soon as it knows and closes, and a client still writing the
    // body may then see only the closed connection (EPIPE) instead of the answer.
    const existing = await this.raw('GET', `/api/v1/artifacts/${enc(`${meta.name}@${meta.version}`)}`, undefined, {}, undefined, signal);
    const known = await existing.text();
    if (existing.ok) {
      const a = JSON.parse(known) as Artifact;
      throw new ApiError(409, 'conflict', `artifact ${a.ref} already exists (id ${a.id}, sha256 ${a.sha256}); upload it under a new version`);
    }
    const res = await this.raw('POST', '/api/v1/artifacts', query, { 'content-type': meta.contentType ?? 'application/octet-stream', 'content-length': String(size) }, body, signal);
    const text = await res.text();
    if (!res.ok) throw errorFrom(res, text);
    return JSON.parse(text) as Artifact;
  }
  /** The download response (status 200, or 206 with `range`); read its body as a stream. */
  async downloadArtifact(ref: string, opts: { range?: string; signal?: AbortSignal } = {}): Promise<Response> {
    const res = await this.raw('GET', `/api/v1/artifacts/${enc(ref)}/download`, undefined, opts.range ? { range: opts.range } : {}, undefined, opts.signal);
    if (!res.ok) throw errorFrom(res, await res.text());
    return res;
  }

  /** A request whose body or answer is a stream (no JSON, no timeout). */
  private async raw(method: string, path: string, query: Query | undefined, headers: Record<string, string>, body: ReadableStream<Uint8Array> | undefined, signal: AbortSignal | undefined): Promise<Response> {
    const h: Record<string, string> = { ...headers };
    if (this.token) h['authorization'] = `Bearer ${this.token}`;
    try {
      return await this.doFetch(`${this.baseUrl}${path}${queryString(query)}`, { method, headers: h, ...(body ? { body, duplex: 'half' } : {}), ...(signal ? { signal } : {}) } as RequestInit);
    } catch (err) {
      if (signal?.aborted) throw err;
      const e = err as Error & { cause?: { code?: string; message?: string } };
      throw new ControllerUnreachable(this.baseUrl, e.cause?.code ?? e.cause?.message ?? e.message);
    }
  }

  // Devices
  listDevices(q: { selector?: string; status?: string; sync?: string; limit?: number; cursor?: string } = {}) {
    return this.request<Page<Device>>('GET', '/api/v1/devices', { query: q });
  }
  getDevice(ref: string) {
    return this.request<Device>('GET', `/api/v1/devices/${enc(ref)}`);
  }
  /** Merges labels: a string sets one, null removes it. */
  labelDevice(ref: string, labels: Record<string, string | null>) {
    return this.request<Device>('PATCH', `/api/v1/devices/${enc(ref)}`, { body: { labels } });
  }
  revokeDevice(ref: string) {
    return this.request<Device>('POST', `/api/v1/devices/${enc(ref)}/revoke`);
  }
  deviceIdentity(ref: string) {
    return this.request<DeviceIdentity>('GET', `/api/v1/devices/${enc(ref)}/identity`);
  }
  revokeDeviceCredential(ref: string, credentialId: string) {
    return this.request<DeviceCredential>('POST', `/api/v1/devices/${enc(ref)}/credentials/${enc(credentialId)}/revoke`);
  }
  /** `certificate`: its id or serial number. */
  revokeDeviceCertificate(ref: string, certificate: string) {
    return this.request<DeviceCertificate>('POST', `/api/v1/devices/${enc(ref)}/certificates/${enc(certificate)}/revoke`);
  }
  fleetSummary() {
    return this.request<FleetSummary>('GET', '/api/v1/fleet/summary');
  }

  // Desired and reported state
  getState(ref: string) {
    return this.request<DeviceState>('GET', `/api/v1/devices/${enc(ref)}/state`);
  }
  getDesiredState(ref: string) {
    return this.request<DesiredRevision>('GET', `/api/v1/devices/${enc(ref)}/desired-state`);
  }
  putDesiredState(ref: string, body: { spec: unknown; message?: string; ifMatchRevision?: number }) {
    return this.request<DesiredRevision>('PUT', `/api/v1/devices/${enc(ref)}/desired-state`, { body });
  }
  /** A dry run (state.plan job); with `waitSeconds` the answer is the finished job when the device answers in time. */
  plan(ref: string, body: { spec?: unknown; sections?: string[] } = {}, waitSeconds = 0) {
    return this.request<JobDetail & { result: PlanResult | null }>('POST', `/api/v1/devices/${enc(ref)}/plan`, {
      body,
      query: { wait: waitSeconds },
      timeoutMs: (waitSeconds + 30) * 1000,
    });
  }

  // Jobs
  jobTypes() {
    return this.request<{ items: JobType[] }>('GET', '/api/v1/job-types');
  }
  createJob(ref: string, body: { type: string; params?: Record<string, unknown>; timeoutSeconds?: number; expiresInSeconds?: number; maxAttempts?: number }) {
    return this.request<Job>('POST', `/api/v1/devices/${enc(ref)}/jobs`, { body });
  }
  listJobs(q: { device?: string; status?: string; type?: string; limit?: number; cursor?: string } = {}) {
    return this.request<Page<Job>>('GET', '/api/v1/jobs', { query: q });
  }
  getJob(id: string) {
    return this.request<JobDetail>('GET', `/api/v1/jobs/${enc(id)}`);
  }
  jobLogs(id: string, q: { cursor?: string; limit?: number } = {}) {
    return this.request<JobLogs>('GET', `/api/v1/jobs/${enc(id)}/logs`, { query: q });
  }
  cancelJob(id: string) {
    return this.request<Job>('POST', `/api/v1/jobs/${enc(id)}/cancel`);
  }

  // Generations
  getGenerations(ref: string) {
    return this.request<DeviceGenerations>('GET', `/api/v1/devices/${enc(ref)}/generations`);
  }
  rollback(ref: string, body: { to?: string; reason?: string } = {}) {
    return this.request<Job>('POST', `/api/v1/devices/${enc(ref)}/generations/rollback`, { body });
  }

  // VM image builds
  createImageBuild(body: { spec: unknown; maxAttempts?: number }) {
    return this.request<ImageBuild>('POST', '/api/v1/image-builds', { body });
  }
  getImageBuild(id: string) {
    return this.request<ImageBuild>('GET', `/api/v1/image-builds/${enc(id)}`);
  }
  /** The built image as a stream (the response body); `sha256` from its ETag. */
  async downloadImageBuild(id: string, opts: { signal?: AbortSignal } = {}): Promise<{ body: ReadableStream<Uint8Array>; sha256: string | undefined; size: number | undefined }> {
    const headers: Record<string, string> = {};
    if (this.token) headers['authorization'] = `Bearer ${this.token}`;
    const path = `/api/v1/image-builds/${enc(id)}/image`;
    let res: Response;
    try {
      res = await this.doFetch(`${this.baseUrl}${path}`, { headers, ...(opts.signal ? { signal: opts.signal } : {}) });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      throw new ControllerUnreachable(this.baseUrl, e.cause?.code ?? e.message);
    }
    if (!res.ok || !res.body) throw errorFrom(res, await res.text());
    const len = res.headers.get('content-length');
    return { body: res.body, sha256: res.headers.get('etag')?.replace(/"/g, '') ?? undefined, size: len ? Number(len) : undefined };
  }

  // Enrollment tokens
  createEnrollmentToken(body: { description?: string; expiresInHours?: number; maxUses?: number | null; labels?: Record<string, string> }) {
    return this.request<CreatedEnrollmentToken>('POST', '/api/v1/enrollment-tokens', { body });
  }
  listEnrollmentTokens(q: { limit?: number; cursor?: string } = {}) {
    return this.request<Page<EnrollmentToken>>('GET', '/api/v1/enrollment-tokens', { query: q });
  }
  revokeEnrollmentToken(id: string) {
    return this.request<void>('DELETE', `/api/v1/enrollment-tokens/${enc(id)}`);
  }

  // API tokens (admin)
  createApiToken(body: { name: string; role: TokenRole; expiresInDays?: number }) {
    return this.request<CreatedApiToken>('POST', '/api/v1/api-tokens', { body });
  }
  listApiTokens(q: { limit?: number; cursor?: string } = {}) {
    return this.request<Page<ApiToken>>('GET', '/api/v1/api-tokens', { query: q });
  }
  revokeApiToken(id: string) {
    return this.request<void>('DELETE', `/api/v1/api-tokens/${enc(id)}`);
  }

  // Rollouts and schedules
  createRollout(body: Record<string, unknown>, q: { dryRun?: boolean; wait?: number } = {}) {
    return this.request<Rollout | RolloutPreview>('POST', '/api/v1/rollouts', { body, query: { dryRun: q.dryRun ? 'true' : undefined, wait: q.wait } });
  }
  listRollouts(q: { limit?: number; cursor?: string } = {}) {
    return this.request<Page<Rollout>>('GET', '/api/v1/rollouts', { query: q });
  }
  getRollout(ref: string) {
    return this.request<Rollout>('GET', `/api/v1/rollouts/${enc(ref)}`);
  }
  rolloutDevices(ref: string, q: { state?: string; wave?: number; limit?: number; cursor?: string } = {}) {
    return this.request<Page<RolloutDevice>>('GET', `/api/v1/rollouts/${enc(ref)}/devices`, { query: q });
  }
  previewRollout(ref: string, q: { wait?: number } = {}) {
    return this.request<RolloutPreview>('POST', `/api/v1/rollouts/${enc(ref)}/preview`, { query: q });
  }
  /** pause | resume | approve | abort | retry */
  rolloutAction(ref: string, action: 'pause' | 'resume' | 'approve' | 'abort' | 'retry', body: Record<string, unknown> = {}) {
    return this.request<Rollout>('POST', `/api/v1/rollouts/${enc(ref)}/${action}`, { body });
  }
  createSchedule(body: Record<string, unknown>) {
    return this.request<Schedule>('POST', '/api/v1/schedules', { body });
  }
  listSchedules() {
    return this.request<{ items: Schedule[] }>('GET', '/api/v1/schedules');
  }
  getSchedule(ref: string) {
    return this.request<Schedule>('GET', `/api/v1/schedules/${enc(ref)}`);
  }
  scheduleAction(ref: string, action: 'pause' | 'resume') {
    return this.request<Schedule>('POST', `/api/v1/schedules/${enc(ref)}/${action}`);
  }
  deleteSchedule(ref: string) {
    return this.request<void>('DELETE', `/api/v1/schedules/${enc(ref)}`);
  }

  // Audit log
  listAudit(q: { action?: string; targetType?: string; targetId?: string; actorId?: string; since?: string; until?: string; limit?: number; cursor?: string } = {}) {
    return this.request<Page<AuditEvent>>('GET', '/api/v1/audit', { query: q });
  }
}

function queryString(q: Query | undefined): string {
  if (!q) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}

function errorFrom(res: Response, text: string): ApiError {
  let body: { error?: { code?: unknown; message?: unknown; issues?: unknown }; requestId?: unknown } | undefined;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const e = body?.error;
  if (!e || typeof e.message !== 'string') {
    return new ApiError(res.status, 'http_error', `HTTP ${res.status} ${res.statusText}${text ? `: ${text.slice(0, 200)}` : ''}`);
  }
  const issues = Array.isArray(e.issues) ? (e.issues as FieldIssue[]).filter((i) => i && typeof i.path === 'string' && typeof i.message === 'string') : [];
  return new ApiError(res.status, typeof e.code === 'string' ? e.code : 'error', e.message, issues, typeof body?.requestId === 'string' ? body.requestId : null);
}
