import { JetStreamApiError, type JetStreamClient, type JetStreamManager, type StoredMsg } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { partitionOf, type DeadLetter, type DeadLetterStore, type OutboxEvent } from '../broker.ts';
import { REPLAY_GROUP_HEADER, type NatsLayout } from './nats-layout.ts';

/** What a dead-letter message carries; its id is its sequence in the dead-letter stream, its group its subject. */
interface DeadLetterBody {
  event: OutboxEvent;
  error: string;
  attempts: number;
  deadAt: string;
}

export interface NatsDeadLetters extends DeadLetterStore {
  /**
   * Stores `event` as a dead letter of `group`. `source`, where the event is in the events stream (the message's
   * sequence, and `.<index>` in a message of several events), makes a second store of the same delivery (the ack
   * after the first was lost) a duplicate JetStream drops.
   */
  add(group: string, event: OutboxEvent, failure: { error: string; attempts: number }, source: string): Promise<void>;
}

export interface NatsDeadLettersDeps {
  js: JetStreamClient;
  jsm: JetStreamManager;
  layout: NatsLayout;
  partitions: number;
  now: () => Date;
}

// JetStream's answer to deleting a sequence that is not (or no longer) in the stream.
const MESSAGE_DELETE_FAILED = 10057;
// Headers are for people reading the stream with the nats CLI; the body is what the store reads back.
const MAX_ERROR_HEADER = 1024;

/**
 * Dead letters in the `<NAMESPACE>_DLQ` stream, one subject per group. A replay publishes the event again to its
 * partition, marked for this group only (the other groups acknowledge it unseen), then deletes the letter.
 * @example const letters = await createNatsDeadLetters({ js, jsm, layout, partitions: 8, now: () => new Date() }).list('billing', 20);
 */
export function createNatsDeadLetters(deps: NatsDeadLettersDeps): NatsDeadLetters {
  const { js, jsm, layout } = deps;
  const stream = layout.deadLetterStream;

  async function get(group: string, id: string): Promise<DeadLetter | undefined> {
    const seq = parseSequence(id);
    if (seq === undefined) return undefined;
    const stored = await jsm.streams.getMessage(stream, { seq });
    return stored && stored.subject === layout.deadLetterSubject(group) ? toDeadLetter(group, stored) : undefined;
  }

  async function remove(seq: number): Promise<boolean> {
    try {
      return await jsm.streams.deleteMessage(stream, seq, false);
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === MESSAGE_DELETE_FAILED) return false;
      throw error;
    }
  }

  return {
    async add(group, event, failure, source) {
      const deadAt = deps.now().toISOString();
      const h = headers();
      h.set('Stratum-Error', failure.error.replace(/[\r\n]+/g, ' ').slice(0, MAX_ERROR_HEADER));
      h.set('Stratum-Attempts', String(failure.attempts));
      h.set('Stratum-Dead-At', deadAt);
      const body: DeadLetterBody = { event, error: failure.error, attempts: failure.attempts, deadAt };
      await js.publish(layout.deadLetterSubject(group), JSON.stringify(body), {
        msgID: `${group}-${source}`,
        headers: h,
      });
    },

    async list(group, limit) {
      const subject = layout.deadLetterSubject(group);
      const letters: DeadLetter[] = [];
      let seq = 1;
      while (letters.length < limit) {
        const stored = await jsm.direct.getMessage(stream, { seq, next_by_subj: subject });
        if (!stored) break;
        letters.push(toDeadLetter(group, stored));
        seq = stored.seq + 1;
      }
      return letters;
    },

    get,

    async replay(group, id) {
      const letter = await get(group, id);
      if (!letter) return false;
      const h = headers();
      h.set(REPLAY_GROUP_HEADER, group);
      const subject = layout.eventSubject(partitionOf(letter.event.key, deps.partitions));
      // Not the event id: that one is still in the duplicate window when a replay follows soon after the failure.
      await js.publish(subject, JSON.stringify(letter.event), { msgID: `replay-${id}`, headers: h });
      return remove(Number(id));
    },

    async drop(group, id) {
      const letter = await get(group, id);
      return letter ? remove(Number(id)) : false;
    },
  };
}

function parseSequence(id: string): number | undefined {
  if (!/^[1-9][0-9]{0,15}$/.test(id)) return undefined;
  const seq = Number(id);
  return Number.isSafeInteger(seq) ? seq : undefined;
}

function toDeadLetter(group: string, stored: StoredMsg): DeadLetter {
  const body = stored.json<DeadLetterBody>();
  return {
    id: String(stored.seq),
    group,
    event: body.event,
    error: body.error,
    attempts: body.attempts,
    deadAt: body.deadAt,
  };
}
