// Where the shared models and texts live: ../shared beside the clone (CI), or W4A8_SHARED.
import * as path from 'node:path';

export const SHARED_DIR = process.env.W4A8_SHARED ?? path.resolve(__dirname, '..', '..', '..', 'shared');
