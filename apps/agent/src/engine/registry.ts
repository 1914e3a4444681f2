import { filesCapability } from '../capabilities/files/files-capability.js';
import { generationsCapability } from '../capabilities/generations/generations-capability.js';
import { networkCapability } from '../capabilities/network/network-capability.js';
import { openwrtCapability } from '../capabilities/openwrt/openwrt-capability.js';
import { CapabilityRegistry } from './capability.js';

/** The capabilities this agent build has. */
export function defaultRegistry(): CapabilityRegistry {
  return new CapabilityRegistry().register(filesCapability).register(networkCapability).register(generationsCapability).register(openwrtCapability);
}
