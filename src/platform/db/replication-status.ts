import { primaryState, type Sql } from './connect.ts';

/** One replica as the primary sees it (pg_stat_replication). Lag fields are null without pg_monitor rights. */
export interface ReplicaStatus {
  /** The replica's application_name (Patroni sets it to the member name). */
  name: string;
  address: string | null;
  state: string | null;
  /** `sync`, `async`, `potential` or `quorum`. */
  sync: string | null;
  /** WAL the replica has not replayed yet. */
  lagBytes: number | null;
  replayLagMs: number | null;
}

export interface ClusterStatus {
  /** `host:port` of the server that answered, which target_session_attrs made the primary. */
  primary: string;
  replicas: ReplicaStatus[];
}

interface Row {
  primary: string;
  replicas: ReplicaStatus[];
}

/**
 * Which host is the primary and how far each replica lags, in one round trip to the primary.
 * @example const { primary, replicas } = await readClusterStatus(sql);
 */
export async function readClusterStatus(sql: Sql): Promise<ClusterStatus> {
  const [row] = await sql<Row[]>`
    select concat_ws(':', host(inet_server_addr()), inet_server_port()) as primary,
      coalesce((select json_agg(json_build_object(
          'name', application_name, 'address', host(client_addr), 'state', state, 'sync', sync_state,
          'lagBytes', pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,
          'replayLagMs', (extract(epoch from replay_lag) * 1000)::bigint) order by application_name)
        from pg_stat_replication), '[]'::json) as replicas`;
  return { primary: row!.primary, replicas: row!.replicas };
}

/**
 * What readiness reports about the database: a pool on several hosts (target_session_attrs=primary) names
 * its primary and the replicas' lag; any other pool only proves it answers.
 * @example app.get('/readyz', async () => ({ status: 'ready', ...(await checkDatabaseReadiness(sql)) }))
 */
export async function checkDatabaseReadiness(sql: Sql): Promise<{ cluster: ClusterStatus } | undefined> {
  if (primaryState(sql) === undefined) {
    await sql`select 1`;
    return undefined;
  }
  return { cluster: await readClusterStatus(sql) };
}

/** The server a read pool (DATABASE_READ_URL) reaches: where it is, whether it is a replica, how far behind. */
export interface ReadServerStatus {
  host: string;
  standby: boolean;
  /** Time since the last replayed transaction's commit on a replica (grows while the primary is idle); null on a primary. */
  replayDelayMs: number | null;
}

/**
 * Which server a read pool reaches now.
 * @example const reads = await describeReadServer(readSql); // { host: '127.0.0.1:5442', standby: true, replayDelayMs: 3 }
 */
export async function describeReadServer(sql: Sql): Promise<ReadServerStatus> {
  const [row] = await sql<ReadServerStatus[]>`
    select concat_ws(':', host(inet_server_addr()), inet_server_port()) as host, pg_is_in_recovery() as standby,
      case when pg_is_in_recovery()
        then (extract(epoch from (now() - pg_last_xact_replay_timestamp())) * 1000)::bigint end as "replayDelayMs"`;
  return {
    host: row!.host,
    standby: row!.standby,
    replayDelayMs: row!.replayDelayMs === null ? null : Number(row!.replayDelayMs),
  };
}
