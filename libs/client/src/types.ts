// The shapes the controller's REST API returns (docs/openapi.json is the full description;
// these are the fields ibexctl and the dashboard use). Timestamps are ISO 8601 strings.

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface FieldIssue {
  path: string;
  message: string;
}

export type DeviceStatus = 'online' | 'offline' | 'revoked';
export type DeviceSync = 'none' | 'in_sync' | 'pending' | 'drifted' | 'failed' | 'unsupported';

export interface DeviceFacts {
  hostname?: string;
  osRelease?: { id?: string; versionId?: string; prettyName?: string };
  kernel?: string;
  arch?: string;
  interfaces?: Array<{ name: string; mac?: string | null; mtu?: number; up?: boolean; addresses: string[] }>;
  filesystems?: Array<{ device: string; mountpoint: string; fstype: string; sizeBytes?: number; usedBytes?: number; readOnly?: boolean }>;
  agentVersion?: string;
  uptimeSeconds?: number;
  memoryTotalBytes?: number;
  cpuCount?: number;
  collectedAtMs?: number;
  [key: string]: unknown;
}

export interface DeviceCredential {
  id: string;
  createdAt: string;
  revokedAt: string | null;
}

export interface DeviceCertificate {
  id: string;
  /** Hex, as `openssl x509 -serial` prints it. */
  serial: string;
  /** SHA-256 of the DER certificate, lowercase hex. */
  fingerprint: string;
  notBefore: string;
  notAfter: string;
  createdAt: string;
  revokedAt: string | null;
}

/** GET /api/v1/devices/{device}/identity: newest first. */
export interface DeviceIdentity {
  credentials: DeviceCredential[];
  certificates: DeviceCertificate[];
}

export interface Device {
  id: string;
  name: string;
  labels: Record<string, string>;
  status: DeviceStatus;
  sync: DeviceSync;
  lastSeenAt: string | null;
  connectedAt: string | null;
  enrolledAt: string;
  revokedAt: string | null;
  agentVersion: string | null;
  facts: DeviceFacts | null;
  generations: { current: string | null; booted: string | null; lastGood: string | null; trial: string | null; count: number } | null;
  desiredRevision: number;
  receivedRevision: number;
  appliedRevision: number;
}

export interface FleetSummary {
  devices: { total: number; online: number; offline: number; revoked: number };
  sync: Record<DeviceSync, number>;
  jobs: { queued: number; delivered: number; running: number };
  at: string;
}

export interface SectionState {
  section: string;
  state: 'pending' | 'in_sync' | 'applying' | 'failed' | 'drifted' | 'unsupported' | 'reverted';
  revision: number;
  error: string | null;
  detail: unknown;
  observedAt: string;
}

export interface DeviceState {
  deviceId: string;
  deviceName: string;
  desiredRevision: number;
  receivedRevision: number;
  appliedRevision: number;
  inSync: boolean;
  sections: SectionState[];
}

export interface DesiredRevision {
  deviceId: string;
  revision: number;
  message: string;
  createdBy: string | null;
  createdAt: string | null;
  spec: Record<string, unknown> | null;
}

export type JobStatus = 'queued' | 'delivered' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'expired' | 'timed_out' | 'rejected';
export const finishedJobStatuses: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled', 'expired', 'timed_out', 'rejected'];

export interface Job {
  id: string;
  deviceId: string;
  type: string;
  params: Record<string, unknown>;
  status: JobStatus;
  attempt: number;
  maxAttempts: number;
  timeoutSeconds: number;
  progress: { percent: number | null; message: string | null };
  result: unknown;
  error: string | null;
  cancelRequestedAt: string | null;
  createdBy: string | null;
  createdAt: string;
  expiresAt: string;
  notBefore: string | null;
  deliveredAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface JobLogLine {
  attempt: number;
  at: string;
  level: string;
  text: string;
}

export interface JobDetail extends Job {
  logs: JobLogLine[];
  logsTruncated: boolean;
}

export interface JobLogs {
  lines: JobLogLine[];
  nextCursor: string | null;
  more: boolean;
}

export interface PlanStep {
  action: string;
  text: string;
  diff?: string;
  commands?: string[][];
  [key: string]: unknown;
}

export interface PlanResult {
  revision: number;
  proposed: boolean;
  sections: Array<{ section: string; state: 'in_sync' | 'pending' | 'unsupported' | 'failed'; error?: string; steps: PlanStep[] }>;
}

export interface JobType {
  type: string;
  description: string;
  retrySafe: boolean;
  defaultTimeoutSeconds: number;
  defaultMaxAttempts: number;
  params: Record<string, unknown>;
}

export interface Generation {
  id: string;
  createdAt: string | null;
  status: 'trial' | 'good' | 'bad';
  booted: boolean;
  current: boolean;
  slot: number | null;
  readOnly: boolean;
  complete: boolean;
}

export interface DeviceGenerations {
  deviceId: string;
  deviceName: string;
  supported: boolean;
  volume: string | null;
  current: string | null;
  booted: string | null;
  lastGood: string | null;
  trial: { id: string; deadlineAt: string; bootsLeft: number } | null;
  generations: Generation[];
  collectedAt: string | null;
}

export interface EnrollmentToken {
  id: string;
  description: string;
  prefix: string;
  labels: Record<string, string>;
  status: 'active' | 'expired' | 'revoked' | 'exhausted';
  uses: number;
  maxUses: number | null;
  expiresAt: string;
  createdAt: string;
  createdById: string | null;
  revokedAt: string | null;
}

export interface CreatedEnrollmentToken extends EnrollmentToken {
  token: string;
  enrollCommand: string;
}

export type TokenRole = 'admin' | 'operator' | 'viewer';

export interface ApiToken {
  id: string;
  name: string;
  role: TokenRole;
  prefix: string;
  status: 'active' | 'expired' | 'revoked';
  createdAt: string;
  createdById: string | null;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export interface CreatedApiToken extends ApiToken {
  token: string;
}

export interface AuditEvent {
  id: string;
  at: string;
  actor: { type: string; id: string | null; name: string | null };
  action: string;
  target: { type: string; id: string } | null;
  data: Record<string, unknown>;
  requestId: string | null;
}

export type ArtifactKind = 'generation-tarball' | 'generation-send-stream' | 'chroot-tarball' | 'vm-image' | 'file';

export interface Artifact {
  id: string;
  name: string;
  version: string;
  /** name@version */
  ref: string;
  kind: ArtifactKind;
  sha256: string;
  size: number;
  contentType: string;
  labels: Record<string, string>;
  architectures: string[];
  createdBy: string | null;
  createdAt: string;
  downloadPath: string;
}

export interface UploadArtifactMeta {
  name: string;
  version: string;
  kind?: ArtifactKind;
  /** Expected sha256: the controller refuses a body that does not match. */
  sha256?: string;
  labels?: Record<string, string>;
  architectures?: string[];
  contentType?: string;
}

/** A VM image build (docs/images.md). */
export interface ImageBuild {
  id: string;
  name: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  attempt: number;
  maxAttempts: number;
  progress: { percent: number; message: string };
  error: string | null;
  warnings: string[];
  sha256: string | null;
  size: number | null;
  entries: number | null;
  downloadUrl: string | null;
  createdBy: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export type RolloutStatus = 'scheduled' | 'running' | 'paused' | 'waiting_approval' | 'rolling_back' | 'succeeded' | 'failed' | 'aborted';
export const finishedRolloutStatuses: readonly RolloutStatus[] = ['succeeded', 'failed', 'aborted'];
export type RolloutDeviceState = 'pending' | 'in_progress' | 'succeeded' | 'failed' | 'rolled_back' | 'skipped';
export type RolloutCounts = Record<RolloutDeviceState, number>;

export interface RolloutWave {
  index: number;
  name: string;
  requiresApproval: boolean;
  startedAt: string | null;
  finishedAt: string | null;
  total: number;
  counts: RolloutCounts;
}

export interface Rollout {
  id: string;
  name: string;
  status: RolloutStatus;
  reason: string | null;
  target: { kind: 'selector'; selector: string } | { kind: 'devices'; devices: string[] } | { kind: 'all' };
  payload: { kind: string; [key: string]: unknown };
  strategy: Record<string, unknown>;
  start: { kind: string; [key: string]: unknown };
  deadline: string | null;
  autoRollback: boolean;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  total: number;
  counts: RolloutCounts;
  waves: RolloutWave[];
}

export interface RolloutDevice {
  deviceId: string;
  deviceName: string;
  wave: number;
  state: RolloutDeviceState;
  reason: string | null;
  attempts: number;
  jobId: string | null;
  rollbackJobId: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface RolloutDevicePlan {
  deviceId: string;
  deviceName: string;
  online: boolean;
  outcome: 'planned' | 'skipped' | 'refused' | 'no_answer' | 'offline';
  reason: string | null;
  changes: Array<{ section: string; state: string; steps: string[]; error: string | null }>;
  planJobId: string | null;
}

export interface RolloutPreview {
  dryRun: true;
  total: number;
  skipped: number;
  waves: Array<{ index: number; name: string; requiresApproval: boolean; devices: RolloutDevicePlan[] }>;
}

export interface Schedule {
  id: string;
  name: string;
  cron: string;
  timeZone: string;
  paused: boolean;
  rollout: Record<string, unknown>;
  lastRunAt: string | null;
  nextRunAt: string | null;
  createdAt: string;
}
