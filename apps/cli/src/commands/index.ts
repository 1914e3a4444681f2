import type { CommandGroup } from '../program.js';
import { artifactCommands } from './artifacts.command.js';
import { auditCommands } from './audit.command.js';
import { completionCommands } from './completion.command.js';
import { deviceCommands } from './devices.command.js';
import { generationCommands } from './generations.command.js';
import { imageCommands } from './images.command.js';
import { jobCommands } from './jobs.command.js';
import { loginCommands } from './login.command.js';
import { rolloutCommands } from './rollouts.command.js';
import { stateCommands } from './state.command.js';
import { tokenCommands } from './tokens.command.js';

/**
 * Every command group, in the order `ibexctl --help` lists them. A new group is one file in
 * this folder exporting a CommandGroup, and one line here (apps/cli/README.md "Adding commands").
 */
export const commandGroups: CommandGroup[] = [
  loginCommands,
  deviceCommands,
  stateCommands,
  jobCommands,
  generationCommands,
  artifactCommands,
  rolloutCommands,
  tokenCommands,
  imageCommands,
  auditCommands,
  completionCommands,
];
