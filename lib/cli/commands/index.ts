// Every command module, in the order `w4a8 --help` lists them.
import type { CommandModule } from 'yargs';
import { infoCommand } from './info';
import { evalCommand } from './eval';
import { generateCommand } from './generate';
import { inspectCommand } from './inspect';
import { importCommand } from './import';
import { quantizeCommand } from './quantize';
import { sweepCommand } from './sweep';
import { demoCommand } from './demo';
import { benchCommand } from './bench';
import { adapterCommand } from './adapter';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [infoCommand, importCommand, inspectCommand, evalCommand, generateCommand, quantizeCommand, adapterCommand, sweepCommand, demoCommand, benchCommand];
