/**
 * The middle value (the mean of the two middle ones for an even count). The bench takes medians
 * because one run on this shared 2-core machine can be slowed by anything else running.
 */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
