import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { resolveModelLocation } from '../sidecar/bundle/model-location.ts';

/**
 * `node --import tsx test/resolve-location-child.ts LOCATION`: resolves a model location as the CLI
 * and the worker do (settings from this process's environment), in a process of its own so that
 * several can race for one cache. Prints a JSON line `{"downloading": file}` when a file's first
 * bytes arrive, then `{"dir", "sha256": {file: hash}}` of the directory as it is on return.
 */
const seen = new Set<string>();
const dir = await resolveModelLocation(process.argv[2], (file) => {
  if (seen.has(file)) return;
  seen.add(file);
  process.stdout.write(`${JSON.stringify({ downloading: file })}\n`);
});
const sha256: Record<string, string> = {};
for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || entry.name === '.anole-download.json') continue;
  const file = path.join(entry.parentPath, entry.name);
  sha256[path.relative(dir, file)] = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}
// the S3 client's sockets may linger: leave once the answer is out
process.stdout.write(`${JSON.stringify({ dir, sha256 })}\n`, () => process.exit(0));
