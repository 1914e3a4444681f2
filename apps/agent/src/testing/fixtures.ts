import { join } from 'node:path';
import { writeCredential } from '../journal/credential.js';
import { AgentProcess, scratchRoot } from './agent-process.js';
import { ScriptedController, type ScriptedControllerOptions } from './scripted-controller.js';

export const TEST_CREDENTIAL = 'ibxd_dev-1_secret';

/** A scripted controller, a scratch root with an enrolled agent's credential, and cleanup of both. */
export async function agentFixture(opts: ScriptedControllerOptions = {}) {
  const controller = await ScriptedController.start({ credential: TEST_CREDENTIAL, ...opts });
  const scratch = scratchRoot();
  writeCredential(join(scratch.dataDir, 'credential.json'), {
    deviceId: 'dev-1',
    deviceName: 'device-one',
    credential: TEST_CREDENTIAL,
    controller: controller.url,
    labels: {},
    enrolledAtMs: Date.now(),
  });
  const agents: AgentProcess[] = [];
  let server = controller;
  return {
    get controller() {
      return server;
    },
    root: scratch.root,
    dataDir: scratch.dataDir,
    /** Starts `ibex-agent run` against the scripted controller. */
    startAgent(extraArgs: string[] = [], env: Record<string, string> = {}): AgentProcess {
      const a = AgentProcess.start(['run', '--root', scratch.root, '--log-level', 'debug', ...extraArgs], env);
      agents.push(a);
      return a;
    },
    /** Replaces the controller by a new one on the same port (a controller restart). */
    async restartController(): Promise<ScriptedController> {
      const port = server.port;
      await server.stop();
      server = await ScriptedController.start({ credential: TEST_CREDENTIAL, ...opts, port });
      return server;
    },
    async cleanup(): Promise<void> {
      await Promise.all(agents.map((a) => a.kill()));
      await server.stop();
      scratch.cleanup();
    },
  };
}
export type AgentFixture = Awaited<ReturnType<typeof agentFixture>>;
