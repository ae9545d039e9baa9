import { createRequire } from 'node:module';
import path from 'node:path';
import { packageRoot } from './paths.js';

const require = createRequire(import.meta.url);

/** Warden's version, from package.json. */
export const VERSION: string = (require(path.join(packageRoot(), 'package.json')) as { version: string }).version;
