import { rmSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { credentials, Metadata, status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { AgentServiceClient, type EnrollResponse } from '@ibex/proto';
import { UsageError, errorMessage } from '../common/errors.js';
import { parseControllerUrl } from '../connection/controller-url.js';
import { collectFacts, toProtoFacts } from '../facts/facts-collect.js';
import { writeDeviceCertificate } from '../identity/certificate-store.js';
import { newKeyAndCsr } from '../identity/csr.js';
import { readCredential, writeCredential } from '../journal/credential.js';
import { DataDir } from '../journal/data-dir.js';
import { AGENT_VERSION } from '../version.js';
import { type FlagSpec, parseFlags } from './args.js';
import { type CliEnv, commonFlags, configFrom, connectFlags } from './common-flags.js';

export const enrollFlags: FlagSpec[] = [
  ...connectFlags,
  { name: 'token', kind: 'value', arg: 'TOKEN', help: 'the enrollment token (ibxe_...)', required: true },
  { name: 'name', kind: 'value', arg: 'NAME', help: 'device name (default: derived from the hostname by the controller)' },
  { name: 'force', kind: 'switch', help: 'replace an existing enrollment (and forget the old identity\'s journal)' },
  ...commonFlags,
];

const ENROLL_DEADLINE_MS = 30_000;

function explain(err: ServiceError, controller: string): string {
  switch (err.code) {
    case grpcStatus.UNAUTHENTICATED:
      return `the controller refused the enrollment token (${err.details}); ask for a new token`;
    case grpcStatus.ALREADY_EXISTS:
      return `${err.details}; choose another --name`;
    case grpcStatus.INVALID_ARGUMENT:
      return `the controller refused the request: ${err.details}`;
    case grpcStatus.UNAVAILABLE:
    case grpcStatus.DEADLINE_EXCEEDED:
      return `cannot reach the controller at ${controller} (${err.details}); check the URL (and --ca for grpcs) and that the controller runs`;
    default:
      return `enrollment failed: ${grpcStatus[err.code] ?? err.code}: ${err.details}`;
  }
}

export async function enrollCommand(argv: string[], io: CliEnv): Promise<number> {
  const flags = parseFlags('enroll', argv, enrollFlags);
  const cfg = configFrom(flags, io);
  if (!cfg.controller) throw new UsageError('ibex-agent enroll: --controller grpc://host:port is required (or IBEX_AGENT_CONTROLLER, or "controller" in the config file)');
  const url = parseControllerUrl(cfg.controller);
  const dataDir = new DataDir(cfg.dataDir);
  const existing = readCredential(dataDir.credential);
  if (existing && flags.force !== true) {
    io.err(`ibex-agent enroll: already enrolled as ${existing.deviceName} (${existing.deviceId}) with ${existing.controller}; credential in ${dataDir.credential}. Use --force to enroll again.\n`);
    return 1;
  }
  let caPem: Buffer | undefined;
  if (cfg.caFile) {
    try {
      caPem = readFileSync(cfg.caFile);
    } catch (err) {
      throw new UsageError(`--ca ${cfg.caFile} cannot be read (${errorMessage(err)})`);
    }
  }
  const client = new AgentServiceClient(url.target, url.secure ? credentials.createSsl(caPem ?? null) : credentials.createInsecure());
  const facts = await collectFacts({ root: cfg.root, agentVersion: AGENT_VERSION });
  // The device's own key pair for mutual TLS: the private key never leaves the device.
  const name = typeof flags.name === 'string' ? flags.name : '';
  const key = newKeyAndCsr(name || facts.hostname || 'ibex-device');
  let res: EnrollResponse;
  try {
    res = await new Promise<EnrollResponse>((resolve, reject) =>
      client.enroll(
        { enrollmentToken: flags.token as string, name, facts: toProtoFacts(facts), agentVersion: AGENT_VERSION, csrPem: key.csrPem },
        new Metadata(),
        { deadline: Date.now() + ENROLL_DEADLINE_MS },
        (err, r) => (err ? reject(err) : resolve(r)),
      ),
    );
  } catch (err) {
    io.err(`ibex-agent enroll: ${explain(err as ServiceError, cfg.controller)}\n`);
    return 1;
  } finally {
    client.close();
  }
  // Before the credential: credential.json is what says "enrolled", so it comes last.
  if (res.certificatePem) writeDeviceCertificate(dataDir.certificate, key.keyPem, res.certificatePem);
  else rmSync(dataDir.certificate, { force: true });
  writeCredential(dataDir.credential, {
    deviceId: res.deviceId,
    deviceName: res.deviceName,
    credential: res.credential,
    controller: cfg.controller,
    ...(cfg.caFile ? { caFile: cfg.caFile } : {}),
    labels: res.labels,
    enrolledAtMs: Date.now(),
  });
  if (existing) {
    // The journal belongs to the old identity: its revisions and jobs mean nothing to the new one.
    // intents/ and backup/ stay: they describe the device's files, not the identity.
    for (const p of [dataDir.desired, dataDir.state, dataDir.jobs, dataDir.status]) rmSync(p, { recursive: true, force: true });
  }
  io.out(`enrolled as ${res.deviceName} (${res.deviceId}) with ${cfg.controller}; credential in ${dataDir.credential}\n`);
  return 0;
}
