import type { PredictionRecord } from '../../contract/prediction.ts';
import type { S3BlobStore } from '../../contract/s3-blob-store.ts';
import type { Delivery, DeliveryContext } from './delivery.ts';
import { wantsEvent, type WebhookSender } from './webhooks.ts';

/**
 * The worker's webhooks: a prediction that names a webhook gets the events its filter asks for, in the
 * background (a slow or failing receiver never holds a job). `present` makes the body from the record.
 */
export function webhookNotifier(opts: {
  webhooks?: WebhookSender;
  present: (record: PredictionRecord) => Promise<unknown>;
  log: (message: string) => void;
}): DeliveryContext['notify'] {
  const { webhooks, present, log } = opts;
  return (record, event, index = 0) => {
    if (!webhooks || !record.webhook || !wantsEvent(record.webhook_events_filter, event)) return;
    const url = record.webhook;
    void (async () => {
      const payload = await present(record);
      await webhooks.send({ url, predictionId: record.id, event, index, payload });
    })().catch((e) => log(`webhook for ${record.id}: ${(e as Error).message}`));
  };
}

/** `output`: the prediction with the output so far (the record itself gets it only at the end). */
export async function notifyOutput(d: Delivery, ctx: Pick<DeliveryContext, 'predictions' | 'notify'>): Promise<void> {
  const index = d.images++;
  const output = structuredClone(d.output);
  const r = (await ctx.predictions.get(d.job.id).catch(() => undefined))?.value;
  if (r) ctx.notify({ ...r, output }, 'output', index);
}

/** The record with each image key replaced by a presigned URL (when no API presenter is given). */
export async function presentRecord(r: PredictionRecord, blobs: S3BlobStore): Promise<unknown> {
  const output = r.output
    ? await Promise.all(r.output.map((parts) => Promise.all(parts.map(async (p) => (p.type === 'image' ? { type: 'image', url: (await blobs.presignGet(p.key)).url, width: p.width, height: p.height } : p)))))
    : null;
  const { job: _job, owner: _owner, revisions: _revisions, ...shown } = r;
  return { ...shown, output };
}
