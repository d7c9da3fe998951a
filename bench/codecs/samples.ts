import { randomBytes, randomUUID } from 'node:crypto';
import type { EventType } from '../../src/platform/context/events.ts';
import type { OutboxEvent } from '../../src/platform/messaging/broker.ts';
import { payloadMismatch } from '../../src/platform/messaging/codec/event-codec.ts';
import type { NewEvent } from '../../src/platform/messaging/outbox.ts';

/** An event as a writer puts it into the outbox: its type, ordering key, payload and headers. */
type Sample = Omit<NewEvent, 'headers'> & { headers: Record<string, string> };

const FIRST_NAMES = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Margaret', 'Linus', 'Frances', 'Ken'];
const LAST_NAMES = ['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Hamilton', 'Torvalds', 'Allen'];
const STATUSES = ['pending', 'processing', 'completed', 'cancelled'] as const;

/** A W3C trace context, as stratum's outbox writes it inside a trace. */
function traceparent(): string {
  return `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
}

/** A small deterministic generator, so every run builds the same payloads (sizes included). */
function numbers(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

/**
 * Payload and key of the `n`-th event of `type`, shaped as stratum's contexts publish them (users keyed
 * `users`, accounts and images by account id, orders by customer id): six- and seven-digit ids, real-looking
 * names, amounts as decimal strings.
 */
function samplePayload(type: string, n: number): { key: string; payload: unknown } {
  const r = numbers(n * 2654435761 + type.length * 97);
  const int = (min: number, max: number) => min + Math.floor(r() * (max - min + 1));
  const pick = <T>(list: readonly T[]): T => list[Math.floor(r() * list.length)]!;
  const name = `${pick(FIRST_NAMES)} ${pick(LAST_NAMES)}`;
  const accountId = `Person_${int(1, 15_000)}`;
  const orderId = int(100_000, 9_999_999);
  const customerId = int(1, 250_000);
  switch (type) {
    case 'user.created': {
      const username = `${name.toLowerCase().replace(' ', '.')}${int(1, 999)}`;
      const id = int(1, 2_000_000);
      // SCORE_MODE=async adds `others` (how many users the fan-out raises); the eager mode leaves it out.
      return { key: 'users', payload: n % 2 === 0 ? { id, username } : { id, username, others: id - 1 } };
    }
    case 'account.created':
    case 'account.updated':
      return { key: accountId, payload: { id: accountId, name } };
    case 'image.changed':
      return {
        key: accountId,
        payload: {
          accountId,
          url: `https://images.example.com/accounts/${accountId}/avatar-${randomBytes(4).toString('hex')}.png`,
        },
      };
    case 'order.created':
      return {
        key: String(customerId),
        payload: { id: orderId, customerId, totalAmount: (int(100, 250_000) / 100).toFixed(2) },
      };
    case 'order.status_changed': {
      const from = int(0, 2);
      return {
        key: String(customerId),
        payload: { id: orderId, from: STATUSES[from]!, to: STATUSES[from + 1]! },
      };
    }
    case 'order.items_imported':
      return { key: String(customerId), payload: { id: orderId, imported: int(1, 100_000), rejected: int(0, 50) } };
    case 'order.transferred': {
      const to = int(1, 250_000);
      return {
        key: String(to),
        payload: { id: int(100_000, 9_999_999), previousId: orderId, fromCustomerId: customerId, toCustomerId: to },
      };
    }
    case 'order.deleted':
      return { key: String(customerId), payload: { id: orderId } };
    default:
      throw new Error(`bench/codecs/samples.ts has no sample payload for the declared event type ${type}: add one`);
  }
}

/** The `n`-th event of `type` as written into the outbox (headers: a traceparent, as inside a trace). */
export function sampleNewEvent(type: string, n: number): Sample {
  return { type, ...samplePayload(type, n), headers: { traceparent: traceparent() } };
}

/**
 * `count` events of each declared type as the relay hands them to the codec: a UUID id, an ISO createdAt, a
 * traceparent header. Throws when a payload does not match its type's schema (the samples would then measure
 * the codec's JSON fallback, not its Protobuf message).
 */
export function sampleEvents(events: readonly EventType[], count: number): Map<string, OutboxEvent[]> {
  const schemas = new Map(events.map((e) => [e.name, e] as const));
  const start = Date.now();
  return new Map(
    events.map((type) => [
      type.name,
      Array.from({ length: count }, (_, n) => {
        const event: OutboxEvent = {
          id: randomUUID(),
          ...sampleNewEvent(type.name, n),
          createdAt: new Date(start - (count - n) * 37).toISOString(),
        };
        const mismatch = payloadMismatch(schemas, event);
        if (mismatch) throw new Error(`bench/codecs/samples.ts: ${mismatch}`);
        return event;
      }),
    ]),
  );
}
