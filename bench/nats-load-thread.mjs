// Worker-thread entry for bench/engine.ts: worker threads do not inherit tsx's loader, so this
// registers it and then loads the TypeScript worker.
import { register } from 'tsx/esm/api';
register();
await import('./nats-load-worker.ts');
