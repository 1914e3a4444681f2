import { type NetworkSection, networkSectionSchema } from '@ibex/spec';

/** The scenario of issue 3: lo; eth0 -> eth0_static static; eth1 -> eth1_dhcp by DHCP; a route on eth0_static; a log line on down. */
export const scenarioSpec = (): NetworkSection =>
  networkSectionSchema.parse({
    interfaces: [
      { name: 'lo', method: 'loopback' },
      { name: 'eth0_static', match: { name: 'eth0' }, method: 'static', addresses: ['192.168.1.100/24'], gateway: '192.168.1.1', dns: { servers: ['8.8.8.8', '8.8.4.4'] } },
      { name: 'eth1_dhcp', match: { name: 'eth1' }, method: 'dhcp' },
    ],
    routes: [{ interface: 'eth0_static', to: '192.168.2.0/24', via: '192.168.1.1' }],
    hooks: [{ phase: 'down', name: 'log-down', content: '#!/bin/sh\nlogger -t ifdown "Bringing down interface: ${IFACE}"\n' }],
  });
