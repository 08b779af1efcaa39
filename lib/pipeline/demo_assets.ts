// Where the demo finds its sample: ../shared beside the checkout (or $W4A8_SHARED).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { W4A8Error } from '../util/errors';

export interface DemoAssets {
  checkpoint: string;
  tokenizer: string;
  calibText: string;
  evalText: string;
}

export function sharedDir(): string {
  if (process.env.W4A8_SHARED) return path.resolve(process.env.W4A8_SHARED);
  return path.resolve(__dirname, '..', '..', '..', 'shared');
}

export function locateDemoAssets(dir = sharedDir()): DemoAssets {
  const assets: DemoAssets = {
    checkpoint: path.join(dir, 'models', 'stories260K', 'stories260K.bin'),
    tokenizer: path.join(dir, 'models', 'stories260K', 'tok512.bin'),
    calibText: path.join(dir, 'data', 'tinystories', 'calib.txt'),
    evalText: path.join(dir, 'data', 'tinystories', 'eval-dev.txt'),
  };
  const missing = Object.values(assets).filter((p) => !fs.existsSync(p));
  if (missing.length > 0) {
    throw new W4A8Error(
      `the demo needs the shared sample folder ${dir} (models/stories260K/stories260K.bin and tok512.bin, ` +
        `data/tinystories/calib.txt and eval-dev.txt); missing: ${missing.join(', ')}. ` +
        'Put it beside the checkout as ../shared or set W4A8_SHARED to its path.',
    );
  }
  return assets;
}
