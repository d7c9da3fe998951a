export { createNatsBroker } from './nats-broker.ts';
export { natsLayout } from './nats-layout.ts';
