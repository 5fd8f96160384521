// Module hooks for `node --import <register this file>`: every module URL any thread of the process
// resolves is appended to the file $ANOLE_MODULE_LOG (worker threads inherit --import, so the
// engine thread's modules are logged too).
import fs from 'node:fs';

export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  fs.appendFileSync(process.env.ANOLE_MODULE_LOG, `${resolved.url}\n`);
  return resolved;
}
