import { Type } from '@fastify/type-provider-typebox';

const Money = (description: string) => Type.String({ pattern: '^(0|[1-9][0-9]{0,7})(\\.[0-9]{1,2})?$', description });
const PositiveId = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER });
export const StatusSchema = Type.Union([
  Type.Literal('pending'),
  Type.Literal('processing'),
  Type.Literal('completed'),
  Type.Literal('cancelled'),
]);

export const NewOrderBody = Type.Object(
  {
    customerId: PositiveId,
    items: Type.Array(
      Type.Object(
        {
          productId: PositiveId,
          quantity: Type.Integer({ minimum: 1, maximum: 2_147_483_647 }),
          price: Money('a decimal string with at most 2 decimals, e.g. "12.34"'),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 1000 },
    ),
    notes: Type.Optional(Type.Union([Type.String({ maxLength: 2000, pattern: '^[^\\u0000]*$' }), Type.Null()])),
  },
  { additionalProperties: false },
);

// The answers. Each describes its answer exactly: every field, no other (the route's serializer writes these
// fields and only these, and /docs/json lists them).

export const ItemSchema = Type.Object(
  {
    id: Type.Integer(),
    productId: Type.Integer(),
    quantity: Type.Integer(),
    price: Type.String({ description: 'a decimal string, e.g. "12.50"' }),
  },
  { additionalProperties: false },
);

export const OrderSchema = Type.Object(
  {
    id: Type.Integer({ description: "names the order's bucket; a transfer gives the order a new id" }),
    customerId: Type.Integer(),
    status: StatusSchema,
    totalAmount: Type.String({
      description: 'the sum of the items\' quantity * price, a decimal string, e.g. "12.50"',
    }),
    notes: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
    items: Type.Array(ItemSchema),
  },
  { additionalProperties: false },
);

const MissingShards = Type.Array(Type.Integer(), {
  description: 'the shards that did not answer in time (consistency=partial; empty otherwise)',
});

export const OrderPageSchema = Type.Object(
  {
    items: Type.Array(OrderSchema),
    nextCursor: Type.Union([Type.String(), Type.Null()], {
      description: "the next page's cursor; null on the last page",
    }),
    missingShards: MissingShards,
  },
  { additionalProperties: false },
);

export const StatsSchema = Type.Object(
  {
    byStatus: Type.Object(
      { pending: Type.Integer(), processing: Type.Integer(), completed: Type.Integer(), cancelled: Type.Integer() },
      { additionalProperties: false },
    ),
    total: Type.Integer(),
    missingShards: MissingShards,
  },
  { additionalProperties: false },
);

/** 301 for an order transferred to another customer (a problem+json body naming its new id). */
export const MovedSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    code: Type.String(),
    detail: Type.String(),
    movedTo: Type.Integer(),
  },
  { additionalProperties: false },
);

export const ImportResultSchema = Type.Object(
  {
    imported: Type.Integer({ minimum: 0 }),
    rejected: Type.Array(
      Type.Object(
        {
          fromLine: Type.Integer(),
          toLine: Type.Integer(),
          reason: Type.String(),
        },
        { additionalProperties: false },
      ),
      { description: 'the chunks PostgreSQL refused (rolled back to their savepoint), by input line' },
    ),
  },
  { additionalProperties: false },
);

export const CheckoutSchema = Type.Object(
  { sagaId: Type.String({ format: 'uuid' }), order: OrderSchema },
  { additionalProperties: false },
);

export const SagaStatusSchema = Type.Object(
  {
    sagaId: Type.String({ format: 'uuid' }),
    status: Type.Union([
      Type.Literal('running'),
      Type.Literal('compensating'),
      Type.Literal('completed'),
      Type.Literal('compensated'),
    ]),
    orderId: Type.Union([Type.Integer(), Type.Null()]),
    failedStep: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false },
);

export const SagaIdParams = Type.Object({ sagaId: Type.String({ format: 'uuid' }) });

export const OrderIdParams = Type.Object({ id: Type.String({ pattern: '^[0-9]{1,16}$' }) });

export const ListQuery = Type.Object(
  {
    customerId: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
    status: Type.Optional(StatusSchema),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,3}$', description: '1..500, default 50' })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    consistency: Type.Optional(
      Type.Union([Type.Literal('strict'), Type.Literal('partial')], {
        description: "strict (default): 503 if a shard fails; partial: the others' data and missingShards",
      }),
    ),
  },
  { additionalProperties: false },
);

export const ConsistencyQuery = Type.Object(
  {
    consistency: Type.Optional(Type.Union([Type.Literal('strict'), Type.Literal('partial')])),
  },
  { additionalProperties: false },
);

export const TransferBody = Type.Object({ toCustomerId: PositiveId }, { additionalProperties: false });

const NewItems = NewOrderBody.properties.items;

export const CheckoutBody = Type.Object(
  {
    customerId: PositiveId,
    items: NewItems,
    paymentToken: Type.String({
      minLength: 1,
      maxLength: 200,
      description: 'the simulator: tok_decline is refused, tok_timeout never answers, others are charged',
    }),
  },
  { additionalProperties: false },
);

export const ProductParams = Type.Object({ productId: Type.String({ pattern: '^[0-9]{1,15}$' }) });
export const StockBody = Type.Object(
  { available: Type.Integer({ minimum: 0, maximum: 2_147_483_647 }) },
  { additionalProperties: false },
);

export const PatchBody = Type.Object({ status: StatusSchema }, { additionalProperties: false });

export const ImportQuery = Type.Object(
  {
    chunkSize: Type.Optional(
      Type.String({ pattern: '^[0-9]{1,7}$', description: 'rows per savepoint, 1..1000000, default 1000' }),
    ),
    atomic: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])),
  },
  { additionalProperties: false },
);
