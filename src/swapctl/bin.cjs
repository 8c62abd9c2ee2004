#!/usr/bin/env node
// The `swapctl` bin: runs the CLI from its TypeScript source through tsx, so
// `npx swapctl` works on a fresh clone after `npm ci`, with no build step.
'use strict';
require('tsx/cjs');
const { runSwapctl } = require('./swapctl.ts');
const { processIo } = require('./output.ts');

runSwapctl(process.argv.slice(2), processIo).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(
      `swapctl: failed: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
