/**
 * The EventBridge form of an S3 "Object Created" notification (the bucket has EventBridge enabled).
 * Only the fields this service reads are typed.
 */
export interface S3ObjectCreatedEvent {
  id: string;
  source: 'aws.s3';
  'detail-type': 'Object Created';
  time?: string;
  detail: {
    bucket: { name: string };
    object: { key: string; etag?: string; size?: number; sequencer?: string; 'version-id'?: string };
  };
}

export function isS3ObjectCreated(event: { source?: string; 'detail-type'?: string }): event is S3ObjectCreatedEvent {
  return event.source === 'aws.s3' && event['detail-type'] === 'Object Created';
}

/**
 * The keys to try for an event's object, most likely first: the key as sent, then its form-decoded
 * reading (S3 notifications URL-encode keys; "a b+c%2B" names "a b c+"), when that differs.
 */
export function candidateKeys(key: string): string[] {
  let decoded: string;
  try {
    decoded = decodeURIComponent(key.replace(/\+/g, ' '));
  } catch {
    return [key];
  }
  return decoded === key ? [key] : [key, decoded];
}

/** ETags compare without their quotes (S3 events send them bare, GetObject quoted). */
export function sameEtag(a: string | undefined, b: string | undefined): boolean {
  const bare = (e: string | undefined) => e?.replace(/^"|"$/g, '');
  return a !== undefined && b !== undefined && bare(a) === bare(b);
}
