/**
 * SIGINT / SIGTERM stop a long-running command gracefully; a second signal exits at once.
 *
 * A Ctrl-C under `npm start` reaches node twice within milliseconds: the terminal signals the whole
 * foreground process group, and npm forwards what it got to its script (which `exec`s node). So a
 * repeat within `sameSignalMs` of the first counts as the same signal, not as "again, exit now".
 */
export function stopOnSignals(stop: () => Promise<void>, sameSignalMs = 1000): void {
  let firstAt: number | undefined;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (firstAt !== undefined) {
        if (Date.now() - firstAt < sameSignalMs) return; // the terminal's and npm's copy of one Ctrl-C
        process.stderr.write(`${signal} again: exiting without waiting\n`);
        process.exit(1);
      }
      firstAt = Date.now();
      process.stderr.write(`${signal}: stopping (finishing the jobs in hand; again to exit at once)\n`);
      stop().then(
        () => process.exit(0),
        (e) => {
          process.stderr.write(`anole: stopping failed: ${(e as Error).message}\n`);
          process.exit(1);
        },
      );
    });
  }
}
