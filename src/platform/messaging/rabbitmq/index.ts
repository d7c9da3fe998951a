export { createRabbitMqBroker, type RabbitMqBrokerOptions } from './rabbitmq-broker.ts';
export { rabbitNames } from './names.ts';
export { deleteNamespace } from './topology.ts';
