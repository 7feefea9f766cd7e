#!/usr/bin/env node
// Launches the TypeScript CLI through tsx so `sentinel` works from a checkout without a build step;
// the container image runs the compiled dist/ instead.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/main.ts');
