import { declaredEvents } from '../app/messaging.ts';
import { protoText } from '../platform/messaging/codec/proto-schema.ts';

export const PROTO_HELP = `usage: stratum proto

Prints the Protocol Buffers messages of every event type the contexts declare (proto3): the envelope and batch
EVENT_ENCODING=protobuf sends, and one message per event type, derived from its schema. proto/events.proto is this
output, checked in for consumers in other languages.`;

/** `stratum proto`: the .proto text of the declared events, on stdout. Needs no database. */
export function runProto(io: { out: (text: string) => void }): number {
  io.out(protoText(declaredEvents()).trimEnd());
  return 0;
}
