import { randomUUID } from 'node:crypto';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { AgentMessage, ControllerMessage, JobAssignment } from '@ibex/proto';
import type { GrpcFailure } from '../grpc-status.js';
import type { AuthenticatedDevice } from './device-auth.service.js';

export type AgentCall = ServerDuplexStream<AgentMessage, ControllerMessage>;
export type Outbound = NonNullable<ControllerMessage['msg']>;

/**
 * One agent stream after its Hello: what was sent on it (so a pass does not repeat itself on
 * the same stream) and the delivery passes, which run one at a time. A pass requested while
 * one runs is run once more afterwards, reading fresh state.
 */
export class AgentSession {
  readonly id = randomUUID();
  /** Last message from the agent (ms): the idle check ends streams that went quiet. */
  lastHeardAt = Date.now();
  /** Highest desired revision the agent has (per its Hello) or was sent on this stream. */
  revisionSent: number;
  private readonly assignmentsSent = new Set<string>();
  private readonly cancelsSent = new Set<string>();
  private closedWith?: GrpcFailure;
  private passChain: Promise<void> = Promise.resolve();
  private passQueued = false;

  constructor(
    readonly device: AuthenticatedDevice,
    /** The connectedAt this session wrote; the stream end clears it only if still this value. */
    readonly connectedAt: Date,
    private readonly call: AgentCall,
    receivedRevision: number,
    private readonly runPass: (session: AgentSession) => Promise<void>,
  ) {
    this.revisionSent = receivedRevision;
  }

  get deviceId(): string {
    return this.device.id;
  }

  get closed(): boolean {
    return this.closedWith !== undefined || this.call.cancelled || this.call.destroyed || this.call.writableEnded;
  }

  send(msg: Outbound): void {
    if (!this.closed) this.call.write({ msg });
  }

  ack(id: string): void {
    this.send({ $case: 'ack', value: { ids: [id] } });
  }

  /** Sends the assignment unless this stream already carried this attempt. */
  assign(assignment: JobAssignment): boolean {
    const key = `${assignment.jobId}:${assignment.attempt}`;
    if (this.assignmentsSent.has(key)) return false;
    this.assignmentsSent.add(key);
    this.send({ $case: 'assign', value: assignment });
    return true;
  }

  /** Sends a cancellation unless this stream already carried one for the job (`again` forces it). */
  cancel(jobId: string, reason: string, again = false): void {
    if (this.cancelsSent.has(jobId) && !again) return;
    this.cancelsSent.add(jobId);
    this.send({ $case: 'cancel', value: { jobId, reason } });
  }

  /** Ends the stream with a status (once); the agent sees `code` and `details`. */
  close(failure: GrpcFailure): void {
    if (this.closedWith) return;
    this.closedWith = failure;
    endCall(this.call, failure);
  }

  /** Resolves once the delivery passes requested so far have run (tests wait for the first one). */
  passesDone(): Promise<void> {
    return this.passChain;
  }

  requestPass(): void {
    if (this.passQueued) return;
    this.passQueued = true;
    this.passChain = this.passChain.then(() => {
      this.passQueued = false;
      return this.closed ? undefined : this.runPass(this);
    });
  }
}

/** Ends a call with a status. (grpc-js: an `error` event on the server stream sets the status and ends it.) */
export function endCall(call: AgentCall, failure: GrpcFailure): void {
  if (call.writableEnded || call.destroyed) return;
  call.emit('error', Object.assign(new Error(failure.details), failure));
}
