import protobuf from 'protobufjs';
import type { TSchema } from 'typebox';
import type { EventType } from '../../context/events.ts';

/**
 * Protocol Buffers messages derived from the events' TypeBox schemas: one source for the TypeScript type, the
 * runtime check and the wire format (decision 0032). Field numbers follow the order the schema declares its
 * properties, so a new property goes last; the checked-in events.proto (and the test comparing it with
 * `protoText`) makes any renumbering a visible change.
 */

/** The package every generated message is in. */
export const PROTO_PACKAGE = 'stratum.events';

/** The envelope every encoded event travels in; `payload` holds the event type's own message. */
const ENVELOPE = `message Envelope {
  string id = 1;
  string type = 2;
  string key = 3;
  map<string, string> headers = 4;
  string created_at = 5;
  // The payload as the event type's message; an event type without a schema carries JSON in json_payload.
  bytes payload = 6;
  bytes json_payload = 7;
}

// Several events of one partition in one message (NATS packs them so).
message Batch {
  repeated Envelope events = 1;
}`;

interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  anyOf?: JsonSchema[];
  const?: unknown;
  items?: JsonSchema;
}

/** `note.created` -> `NoteCreated`, `note.title_changed` -> `NoteTitleChanged`. */
export function messageNameOf(eventName: string): string {
  return eventName
    .split(/[._]/)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}

/** The proto3 type of one property, or why it has none; nested objects become nested messages. */
function fieldType(schema: JsonSchema, where: string, nested: string[], nestedName: string, indent: string): string {
  if (schema.anyOf) {
    if (schema.anyOf.every((s) => s.type === 'string')) return 'string';
    throw new TypeError(`${where}: only unions of strings (literals) have a Protobuf field type`);
  }
  switch (schema.type) {
    case 'integer':
      return 'sint64';
    case 'number':
      return 'double';
    case 'string':
      return 'string';
    case 'boolean':
      return 'bool';
    case 'object':
      nested.push(messageText(nestedName, schema, where, `${indent}  `));
      return nestedName;
    default:
      throw new TypeError(`${where}: a schema of type ${String(schema.type)} has no Protobuf field type`);
  }
}

function messageText(name: string, schema: JsonSchema, where: string, indent = ''): string {
  if (schema.type !== 'object' || !schema.properties)
    throw new TypeError(`${where}: an event payload must be an object schema`);
  const required = new Set(schema.required ?? []);
  const nested: string[] = [];
  const fields = Object.entries(schema.properties).map(([field, property], i) => {
    const at = `${where}.${field}`;
    const nestedName = messageNameOf(field);
    if (property.type === 'array') {
      if (!property.items) throw new TypeError(`${at}: an array without items`);
      return `${indent}  repeated ${fieldType(property.items, at, nested, nestedName, indent)} ${field} = ${i + 1};`;
    }
    const type = fieldType(property, at, nested, nestedName, indent);
    // proto3 `optional` keeps presence, so an absent property stays absent (not 0 or "").
    return `${indent}  ${required.has(field) ? '' : 'optional '}${type} ${field} = ${i + 1};`;
  });
  return [`${indent}message ${name} {`, ...nested, ...fields, `${indent}}`]
    .map((line) => line.replace(/^\s+$/, ''))
    .join('\n');
}

/** The .proto text of the envelope and every event type's message, in the order given. */
export function protoText(events: readonly EventType[]): string {
  const messages = events.map((event) =>
    messageText(messageNameOf(event.name), event.schema as TSchema as JsonSchema, event.name),
  );
  return [
    '// Generated from the event schemas the contexts declare (src/platform/messaging/codec/proto-schema.ts).',
    '// Field numbers follow the order each schema declares its properties: add new ones last.',
    'syntax = "proto3";',
    '',
    `package ${PROTO_PACKAGE};`,
    '',
    ENVELOPE,
    '',
    ...events.flatMap((event, i) => [`// ${event.name}`, messages[i]!, '']),
  ].join('\n');
}

export interface ProtoTypes {
  envelope: protobuf.Type;
  batch: protobuf.Type;
  /** The message of each event type, by event name. */
  byEvent: ReadonlyMap<string, protobuf.Type>;
}

/** The protobufjs types of `protoText(events)`, resolved. Throws naming the field a schema cannot map. */
export function protoTypes(events: readonly EventType[]): ProtoTypes {
  const { root } = protobuf.parse(protoText(events), { keepCase: true });
  root.resolveAll();
  const lookup = (name: string) => root.lookupType(`${PROTO_PACKAGE}.${name}`);
  return {
    envelope: lookup('Envelope'),
    batch: lookup('Batch'),
    byEvent: new Map(events.map((event) => [event.name, lookup(messageNameOf(event.name))])),
  };
}
