/**
 * The docker-openwrt setup as an `openwrt` section (docs/openwrt.md shows the same JSON): an
 * OpenWrt container run by docker; its LAN a macvlan on the host port enp2s0 with a host shim
 * (the host keeps reaching the LAN), its WAN a second port moved in, the Wi-Fi card's phy moved
 * in by its interface name; OpenWrt's LAN 192.168.10.1/24 with DHCP, WAN by DHCP, one WPA2
 * network on the 2.4 GHz radio, and a port forward. Tests of the schema and the renderer (the
 * golden files) start from it.
 */
export const openwrtExample = {
  container: { runtime: 'docker', name: 'openwrt' },
  netnsName: 'openwrt',
  links: [
    { type: 'macvlan', name: 'eth0', parent: { name: 'enp2s0' }, mac: '02:42:c0:a8:0a:01', shim: { name: 'owrt-shim', addresses: ['192.168.10.2/24'] } },
    { type: 'port', name: 'eth1', match: { mac: '00:e0:4c:68:00:02' } },
    { type: 'wifi', match: { interface: 'wlp3s0' }, radio: 'radio0' },
  ],
  config: {
    lan: { devices: ['eth0'], address: '192.168.10.1/24', ipv6Assign: 60, dhcp: { start: 100, limit: 100, leaseTime: '12h' } },
    wan: { device: 'eth1', proto: 'dhcp' },
    wireless: {
      radios: [{ radio: 'radio0', band: '2g', channel: 6, htmode: 'HT20', country: 'DE', networks: [{ ssid: 'Ibex Lab', encryption: 'psk2', key: 'correct horse battery' }] }],
    },
    firewall: { redirects: [{ name: 'ssh to nas', srcDPort: '2222', destIp: '192.168.10.20', destPort: '22', proto: 'tcp' }] },
  },
  confirmTimeoutSec: 90,
};
