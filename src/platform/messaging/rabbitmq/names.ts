/**
 * The names of everything the RabbitMQ adapter declares for a namespace. One place, so the adapter, the tests'
 * clean-up and an operator reading `rabbitmqctl list_queues` agree.
 */
export interface RabbitNames {
  /** Direct exchange; an event goes out with routing key `p<partition>`. */
  events: string;
  /** Direct exchange for messages a partition queue rejects outright; routes by group to the group's dlq. */
  deadLetterExchange: string;
  /** Direct exchange for rebalancing nudges between the members of a group (routing key: the group). */
  control: string;
  partitionKey(partition: number): string;
  partitionQueue(group: string, partition: number): string;
  deadLetterQueue(group: string): string;
  /** A queue nobody publishes to: its consumer count is the number of live members of the group. */
  membersQueue(group: string): string;
}

/** @example rabbitNames('stratum').partitionQueue('scores', 3) // 'stratum.scores.p3' */
export function rabbitNames(namespace: string): RabbitNames {
  return {
    events: `${namespace}.events`,
    deadLetterExchange: `${namespace}.dlx`,
    control: `${namespace}.control`,
    partitionKey: (partition) => `p${partition}`,
    partitionQueue: (group, partition) => `${namespace}.${group}.p${partition}`,
    deadLetterQueue: (group) => `${namespace}.${group}.dlq`,
    membersQueue: (group) => `${namespace}.${group}.members`,
  };
}
