#!/usr/bin/env node
import { buildProgram, reportFatal } from './program.js';

try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  process.exitCode = reportFatal(error);
}
