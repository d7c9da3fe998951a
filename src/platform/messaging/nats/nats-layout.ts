import { AppError } from '../../errors/app-error.ts';

/** Header naming the only group a replayed event is for; the other groups acknowledge it unseen. */
export const REPLAY_GROUP_HEADER = 'Stratum-Replay-Group';

/** The names one namespace uses on a NATS server: two streams, their subjects, one durable consumer per group and partition. */
export interface NatsLayout {
  namespace: string;
  eventsStream: string;
  deadLetterStream: string;
  /** Every partition subject of the events stream (`<ns>.events.*`: a wildcard is a whole token). */
  eventSubjects: string;
  deadLetterSubjects: string;
  eventSubject(partition: number): string;
  deadLetterSubject(group: string): string;
  consumerName(group: string, partition: number): string;
}

// A subject token and a stream name alike: no dots, wildcards, spaces or path separators.
const NAMESPACE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const MAX_GROUP_LENGTH = 128;

/**
 * A group name as a subject token and part of a consumer name: every character but letters, digits, "_" and "-"
 * becomes "~" and its UTF-8 bytes in hex, so "notes.index" is "notes~2Eindex" and no two groups meet.
 * @example groupToken('notes.index') // 'notes~2Eindex'
 */
export function groupToken(group: string): string {
  if (group.length === 0 || group.length > MAX_GROUP_LENGTH) {
    throw new AppError('REQUEST.INVALID', `a consumer group name has 1 to ${MAX_GROUP_LENGTH} characters`, {
      details: { group },
    });
  }
  return group.replace(/[^A-Za-z0-9_-]/gu, (c) =>
    [...Buffer.from(c, 'utf8')].map((b) => `~${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
  );
}

/**
 * The layout of `namespace`: streams `<NAMESPACE>_EVENTS` and `<NAMESPACE>_DLQ`. The namespace is lower case so
 * that upper-casing it for the stream names cannot make two namespaces share a stream.
 * @example natsLayout('stratum').eventSubject(3) // 'stratum.events.p3'
 */
export function natsLayout(namespace: string): NatsLayout {
  if (!NAMESPACE.test(namespace)) {
    throw new AppError(
      'REQUEST.INVALID',
      `NATS namespace "${namespace}" must be lower-case letters, digits, "_" or "-" (at most 64)`,
      { details: { namespace } },
    );
  }
  const upper = namespace.toUpperCase();
  return {
    namespace,
    eventsStream: `${upper}_EVENTS`,
    deadLetterStream: `${upper}_DLQ`,
    eventSubjects: `${namespace}.events.*`,
    deadLetterSubjects: `${namespace}.dlq.*`,
    eventSubject: (partition) => `${namespace}.events.p${partition}`,
    deadLetterSubject: (group) => `${namespace}.dlq.${groupToken(group)}`,
    consumerName: (group, partition) => `${groupToken(group)}_p${partition}`,
  };
}
