import { AppError } from '../../platform/errors/app-error.ts';

export type OrderStatus = 'pending' | 'processing' | 'completed' | 'cancelled';

export const ORDER_STATUSES: readonly OrderStatus[] = ['pending', 'processing', 'completed', 'cancelled'];

/** Which statuses an order may move to from each status. */
export const ALLOWED_TRANSITIONS: Readonly<Record<OrderStatus, readonly OrderStatus[]>> = {
  pending: ['processing', 'cancelled'],
  processing: ['completed', 'cancelled'],
  completed: [],
  cancelled: [],
};

/** The statuses from which `to` can be reached. */
export function statusesLeadingTo(to: OrderStatus): OrderStatus[] {
  return ORDER_STATUSES.filter((from) => ALLOWED_TRANSITIONS[from].includes(to));
}

/** Money is a decimal string ("12.34"), never a binary float. */
export interface OrderItem {
  id: number;
  productId: number;
  quantity: number;
  price: string;
}

export interface Order {
  id: number;
  customerId: number;
  status: OrderStatus;
  totalAmount: string;
  notes: string | null;
  createdAt: string;
  updatedAt: string;
  items: OrderItem[];
}

export interface NewOrderItem {
  productId: number;
  quantity: number;
  price: string;
}

export interface NewOrder {
  customerId: number;
  items: NewOrderItem[];
  notes?: string | null;
}

export interface OrderStats {
  byStatus: Record<OrderStatus, number>;
  total: number;
}

/** ORDER.NOT_FOUND (404) for order `id`. */
export function orderNotFound(id: number): AppError {
  return new AppError('ORDER.NOT_FOUND', `order ${id} does not exist`, { details: { id } });
}
