import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * A random secret kept in a file of the data directory (mode 0600): made on the first start, the
 * same after a restart, so what was signed with it (URLs, webhooks) stays verifiable.
 * Returns the secret and whether it was made just now.
 */
export function readOrCreateSecret(file: string, make: () => string = () => randomBytes(32).toString('base64url')): { secret: string; created: boolean } {
  try {
    const secret = fs.readFileSync(file, 'utf8').trim();
    if (secret.length >= 32) return { secret, created: false };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  const secret = make();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return { secret, created: true };
}
