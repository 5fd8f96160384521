import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { EVENTS } from '../config.ts';

/** One event this service publishes: a detail type from EVENTS and a JSON detail. */
export interface ServiceEvent {
  detailType: (typeof EVENTS)[Exclude<keyof typeof EVENTS, 'source'>];
  detail: Record<string, unknown>;
}

export type Publish = (events: ServiceEvent[]) => Promise<void>;

/** Publishes to an EventBridge bus, all or nothing: a partly failed PutEvents throws, so the invocation is retried. */
export function eventBridgePublisher(client: EventBridgeClient, busName: string): Publish {
  return async (events) => {
    if (events.length === 0) return;
    const out = await client.send(
      new PutEventsCommand({
        Entries: events.map((e) => ({ EventBusName: busName, Source: EVENTS.source, DetailType: e.detailType, Detail: JSON.stringify(e.detail) })),
      }),
    );
    if ((out.FailedEntryCount ?? 0) > 0) {
      const reasons = (out.Entries ?? []).filter((e) => e.ErrorCode).map((e) => `${e.ErrorCode}: ${e.ErrorMessage}`);
      throw new Error(`EventBridge refused ${out.FailedEntryCount} of ${events.length} events: ${reasons.join('; ')}`);
    }
  };
}
