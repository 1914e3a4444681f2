import { AgentMessage, AgentServiceService, EnrollRequest, RenewCertificateRequest } from '@ibex/proto';
import { ValidationFailed } from '../common/errors.js';

/**
 * A frame that is not valid protobuf for its message. grpc-js ends a call whose deserializer
 * throws with INTERNAL "Error deserializing request", which reads like a controller bug; the
 * gRPC fuzzer found it with a single random byte. Decoding to this marker instead lets the
 * handlers refuse it with INVALID_ARGUMENT and say what was wrong.
 */
export class UndecodableFrame {
  constructor(
    readonly message: string,
    readonly reason: string,
    readonly bytes: number,
  ) {}

  toError(): ValidationFailed {
    return new ValidationFailed(`invalid ${this.message}: the ${this.bytes}-byte frame is not a valid protobuf ${this.message} (${this.reason}); is the agent built from the same proto/ as this controller?`, [
      { path: '', message: `is not a valid protobuf ${this.message}` },
    ]);
  }
}

function tolerant<T>(name: string, decode: (b: Uint8Array) => T): (b: Buffer) => T {
  return (b) => {
    try {
      return decode(b);
    } catch (err) {
      return new UndecodableFrame(name, err instanceof Error ? err.message : String(err), b.length) as unknown as T;
    }
  };
}

/** The generated AgentService definition, with decoders that never throw (see UndecodableFrame). */
export const agentServiceDefinition = {
  ...AgentServiceService,
  enroll: { ...AgentServiceService.enroll, requestDeserialize: tolerant('EnrollRequest', (b) => EnrollRequest.decode(b)) },
  connect: { ...AgentServiceService.connect, requestDeserialize: tolerant('AgentMessage', (b) => AgentMessage.decode(b)) },
  renewCertificate: { ...AgentServiceService.renewCertificate, requestDeserialize: tolerant('RenewCertificateRequest', (b) => RenewCertificateRequest.decode(b)) },
} as const;
