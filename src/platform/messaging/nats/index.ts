export { createNatsBroker, type NatsBrokerOptions } from './nats-broker.ts';
export { natsLayout, groupToken, type NatsLayout } from './nats-layout.ts';
