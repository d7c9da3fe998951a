/** The AMQP reply code an amqplib error carries when the server closed a channel (403, 404, 405, 406...). */
export function amqpReplyCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** 404 NOT_FOUND: the queue or exchange does not exist (e.g. a group that never subscribed). */
export const isNotFound = (error: unknown): boolean => amqpReplyCode(error) === 404;

/** 403 ACCESS_REFUSED on an exclusive consume: another member holds the queue. */
export const isAccessRefused = (error: unknown): boolean => amqpReplyCode(error) === 403;

export const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));
