/** The encodings an event may travel in to a broker (EVENT_ENCODING); see event-codec.ts. */
export const EVENT_ENCODINGS = ['json', 'msgpack', 'protobuf'] as const;
export type EventEncoding = (typeof EVENT_ENCODINGS)[number];
