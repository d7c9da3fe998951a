export { createRabbitMqBroker, type RabbitMqBrokerOptions } from './rabbitmq-broker.ts';
export { rabbitNames, type RabbitNames } from './names.ts';
export { deleteNamespace } from './topology.ts';
