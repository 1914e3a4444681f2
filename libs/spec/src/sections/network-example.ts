/**
 * The Alpine setup of issue 3, as a `network` section (docs/network.md shows the same JSON):
 * lo; eth0 renamed eth0_static, static 192.168.1.100/24 with gateway and DNS; eth1 renamed
 * eth1_dhcp by DHCP; a route to 192.168.2.0/24 on eth0_static; a log line when an interface goes
 * down. Tests of the schema, the renderer and the agent start from it.
 */
export const networkScenarioExample = {
  interfaces: [
    { name: 'lo', method: 'loopback' },
    { name: 'eth0_static', match: { name: 'eth0' }, method: 'static', addresses: ['192.168.1.100/24'], gateway: '192.168.1.1', dns: { servers: ['8.8.8.8', '8.8.4.4'] } },
    { name: 'eth1_dhcp', match: { name: 'eth1' }, method: 'dhcp' },
  ],
  routes: [{ interface: 'eth0_static', to: '192.168.2.0/24', via: '192.168.1.1' }],
  hooks: [{ phase: 'down', name: 'log-down', content: '#!/bin/sh\nlogger -t ifdown "Bringing down interface: ${IFACE}"\n' }],
};
