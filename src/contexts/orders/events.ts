import { defineEvent, Type } from '../../platform/context/events.ts';

const OrderStatus = Type.Union([
  Type.Literal('pending'),
  Type.Literal('processing'),
  Type.Literal('completed'),
  Type.Literal('cancelled'),
]);

/** Events of the orders context; each is keyed by the order's customer id, so one customer's events stay in order. */
export const OrderCreated = defineEvent(
  'order.created',
  Type.Object({
    id: Type.Integer(),
    customerId: Type.Integer(),
    totalAmount: Type.String(),
  }),
);
export const OrderStatusChanged = defineEvent(
  'order.status_changed',
  Type.Object({ id: Type.Integer(), from: OrderStatus, to: OrderStatus }),
);
export const OrderItemsImported = defineEvent(
  'order.items_imported',
  Type.Object({
    id: Type.Integer(),
    imported: Type.Integer({ minimum: 0 }),
    rejected: Type.Integer({ minimum: 0 }),
  }),
);
/** An order moved to another customer: it has a new id (its bucket follows the customer); `previousId` answers 301. */
export const OrderTransferred = defineEvent(
  'order.transferred',
  Type.Object({
    id: Type.Integer(),
    previousId: Type.Integer(),
    fromCustomerId: Type.Integer(),
    toCustomerId: Type.Integer(),
  }),
);
export const OrderDeleted = defineEvent('order.deleted', Type.Object({ id: Type.Integer() }));

export const ORDERS_EVENTS = [
  OrderCreated,
  OrderStatusChanged,
  OrderItemsImported,
  OrderTransferred,
  OrderDeleted,
] as const;

/** The events after which a cached order is stale. */
export const ORDER_CHANGES = [OrderStatusChanged, OrderItemsImported, OrderTransferred, OrderDeleted] as const;
