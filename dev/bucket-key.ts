/**
 * An object key from a path-style URL (`/{bucket}/{key…}`), decoded, or null when it is not one a
 * bucket directory can hold safely. s3rver maps keys to files under its directory, so a key with a
 * `..` or `.` segment (however it was encoded: `..%2f`, `%2e%2e/`), a backslash, an empty segment or
 * a control character could name a file outside it: such keys are refused, never normalised.
 */
export function objectKeyOf(pathname: string, bucket: string): string | null {
  const prefix = `/${bucket}/`;
  if (!pathname.startsWith(prefix)) return null;
  let key: string;
  try {
    key = decodeURIComponent(pathname.slice(prefix.length));
  } catch {
    return null; // malformed percent-encoding
  }
  return isSafeKey(key) ? key : null;
}

export function isSafeKey(key: string): boolean {
  if (key === '' || key.length > 1024) return false;
  // eslint-disable-next-line no-control-regex
  if (/[\\\u0000-\u001f\u007f]/.test(key)) return false;
  return key.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..');
}
