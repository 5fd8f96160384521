// Entry of an engine thread: worker threads do not inherit tsx's loader, so register it here
// before importing the TypeScript module named in workerData.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.entry);
