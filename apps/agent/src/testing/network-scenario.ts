import { type NetworkSection, networkScenarioExample, networkSectionSchema } from '@ibex/spec';

/** The scenario of issue 3 (libs/spec `networkScenarioExample`), parsed with its defaults. */
export const scenarioSpec = (): NetworkSection => networkSectionSchema.parse(networkScenarioExample);

/**
 * The scenario as the integration tests apply it (a desired state): the down hook appends a line
 * to `logFile` (under the scratch root) instead of calling logger, so the test can read it.
 */
export const scenarioDesiredState = (logFile: string) => ({
  network: {
    interfaces: [
      { name: 'lo', method: 'loopback' },
      { name: 'eth0_static', match: { name: 'eth0' }, method: 'static', addresses: ['192.168.1.100/24'], gateway: '192.168.1.1', dns: { servers: ['8.8.8.8', '8.8.4.4'] } },
      { name: 'eth1_dhcp', match: { name: 'eth1' }, method: 'dhcp' },
    ],
    routes: [{ interface: 'eth0_static', to: '192.168.2.0/24', via: '192.168.1.1' }],
    hooks: [{ phase: 'down', name: 'log-down', content: `#!/bin/sh\necho "interface \${IFACE} went down" >> ${logFile}\n` }],
  },
});
