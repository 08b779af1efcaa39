#!/usr/bin/env node
'use strict';
// Thin launcher: the CLI lives in dist/cli/main.js (built by `npm ci` through the prepare script).
require('../dist/cli/main.js').main(process.argv.slice(2));
