import type { ArtifactEndpoint } from '../artifacts/artifact-endpoint.js';
import { chrootsCapability } from '../capabilities/chroots/chroots-capability.js';
import { filesCapability } from '../capabilities/files/files-capability.js';
import { generationsCapability } from '../capabilities/generations/generations-capability.js';
import type { GenerationsRoot } from '../capabilities/generations/generations-root.js';
import { networkCapability } from '../capabilities/network/network-capability.js';
import { openwrtCapability } from '../capabilities/openwrt/openwrt-capability.js';
import { CapabilityRegistry } from '../engine/capability.js';

/** What the capabilities of one --root share with the rest of the agent (its jobs, its trial monitor). */
export interface DeviceParts {
  generations: GenerationsRoot;
  /** Where controller artifacts are downloaded from (set on each Welcome); console commands have none. */
  artifacts?: ArtifactEndpoint | undefined;
}

/** The capabilities this agent build has, for the --root the parts belong to. */
export function agentRegistry(parts: DeviceParts): CapabilityRegistry {
  return new CapabilityRegistry().register(filesCapability).register(networkCapability).register(generationsCapability(parts.generations)).register(openwrtCapability).register(chrootsCapability(parts.artifacts));
}
