/**
 * Replication benchmark (`npm run bench -- replication`): one Primary and two Replicas as separate
 * `litebase serve` processes on one shared folder, on this machine. Compaction is off, so the log
 * keeps every segment.
 *
 * 1. Visibility lag. A writer sends INSERTs to the Primary on a fixed schedule (open loop, a few in
 *    flight at most). Each Replica is probed by its own loop, one request in flight on a keep-alive
 *    connection: `SELECT max(id) FROM t` WITHOUT minPosition, so the probe never makes the replica
 *    look at the log. A write's lag on a replica is the time from its acknowledgement to the answer
 *    of the first probe that returns its id (an upper bound; the previous probe bounds it from
 *    below, and that bracket's width is reported as the resolution). Beside it, a plain fs.watch on
 *    the log folder in this process records when each segment file appeared: the floor for a
 *    replica that watches the folder. Four configurations: watching (the default) on a short log,
 *    poll only every 1000 ms, poll only every 50 ms, and watching again on a long log.
 * 2. Read-your-writes, same configurations, separate window: right after each acknowledgement,
 *    each Replica gets the same SELECT with `minPosition` = the acknowledged position; the time to
 *    its answer (one round trip included, measured on its own) is what a client that reads its
 *    own writes on a replica waits, and its rows must include the write. A replica starts looking
 *    at the log as soon as such a read arrives, so this is not the passive lag of 1.
 * 3. Catch-up: the log is grown with larger rows while one replica is SIGSTOPped. Then, with the
 *    segment files dropped from the page cache (posix_fadvise DONTNEED through python3; what a
 *    node on another machine reads, whose page cache never saw them), a plain sequential read of
 *    them, a fresh node (new id, empty local dir) timed from its spawn until it serves the last
 *    position, and the paused replica timed from SIGCONT until it has caught up, each after the
 *    files were dropped again. The goal is judged on the fresh node against that plain read. Then
 *    the same with the page cache warm: another fresh node, beside the plain read of this process
 *    and an in-process replay broken into stages. Without the means to drop the page cache, only
 *    the warm figures are made, and the goal is judged on them.
 *
 * With --shared-dir DIR[,DIR...] the whole run is made twice: on a folder under the temp root, then
 * with the shared folder under DIR (e.g. CephFS; node i through DIR number i modulo their count,
 * the local dirs on the local disk) and every replica started with --no-replica-watch (inotify
 * does not see other clients' changes there: nudges and polling only), and the two are shown side
 * by side. The lag goal on the shared folder is issue 15's (p99 <= 50 ms).
 *
 * stdout: tables, then ONE JSON line, last. Progress on stderr. Exit 0 when the measurements are
 * valid, 1 when not (failed writes, a stale read-your-writes answer, diverging replicas, a node that
 * died), 2 for a usage error or, with --strict, a missed goal.
 */
import { randomBytes } from 'node:crypto';
import { watch } from 'node:fs';
import path from 'node:path';
import {
  BenchCluster,
  positionOf as databasePositionOf,
  sleep,
  waitForPosition as waitForDatabasePosition,
  type ClusterNode,
} from './support/cluster.js';
import { releaseAll } from './support/cleanup.js';
import {
  answerPosition,
  databaseChecksum,
  databasePosition,
  errorCode,
  JsonClient,
  lastInsertRowid,
  scalar,
} from './support/http-client.js';
import { machineInfo, mountTypeOf, type MachineInfo } from './support/machine.js';
import { inotifyWatches, ProcessesCpuMonitor, processesCpuCell, type ProcessesCpu } from './support/proc-cpu.js';
import { progress, round, since } from './support/report.js';
import {
  evictFromPageCache,
  listSegments,
  pipelineSpeeds,
  plainRead,
  type PipelineSpeeds,
  type ReadSpeed,
} from './support/segment-read.js';
import { benchTmpRoot, parseSharedDirs } from './support/server.js';
import { formatNumber, renderTable, type Cell, type Column } from './support/table.js';
import { readOptions } from './support/options.js';

/** Issue 5's goals; on a shared file system without inotify (--shared-dir), issue 15's lag goal. */
export const REPLICATION_GOALS = { maxP99LagMs: 20, maxP99LagMsSharedDir: 50, minCatchUpRatioToRead: 0.5 } as const;

const DB = 'bench';
const QUERY = `/v1/databases/${DB}/query`;
const PROBE = { statements: [{ sql: 'SELECT max(id) FROM t' }] };
const MIB = 1024 * 1024;
/** ~100 bytes per row during the lag windows: small transactions, one segment each. */
const SMALL_ROW = 'litebase-replication-bench-'.padEnd(100, 'x');

export interface ReplicationOptions {
  /** INSERTs per second to the Primary during the lag windows (fixed schedule). */
  rate: number;
  /** Seconds of the passive visibility window, per configuration. */
  visibilitySeconds: number;
  /** Seconds of the read-your-writes window, per configuration. */
  readYourWritesSeconds: number;
  /** Positions to add with larger rows before the catch-up. */
  bulkSegments: number;
  /** ...but no longer than this. */
  bulkSeconds: number;
  /** Characters of random (incompressible) text per bulk row. */
  bulkRowChars: number;
  /** Concurrent writers while building the log. */
  bulkWriters: number;
  /** Pause between two probes of one replica (0: back to back). */
  probeGapMs: number;
  strict: boolean;
  /**
   * --shared-dir: the shared folder goes under these (the same folder through different mounts,
   * node i through number i modulo their count) instead of the temp root, and every replica runs
   * with --no-replica-watch. Absent: under the temp root, as before.
   */
  sharedDirs?: string[];
}

export const DEFAULT_REPLICATION_OPTIONS: ReplicationOptions = {
  rate: 200,
  visibilitySeconds: 10,
  readYourWritesSeconds: 5,
  bulkSegments: 5_000,
  bulkSeconds: 30,
  bulkRowChars: 3000,
  bulkWriters: 4,
  probeGapMs: 1,
  strict: false,
};

type ModeKey = 'watch' | 'poll_only' | 'poll_only_50ms' | 'watch_long_log';

interface Mode {
  key: ModeKey;
  label: string;
  args: string[];
  pollMs: number;
}

const MODES: Record<ModeKey, Mode> = {
  watch: { key: 'watch', label: 'watching + poll 1000 ms (default), short log', args: [], pollMs: 1000 },
  poll_only: { key: 'poll_only', label: 'poll only, 1000 ms (--no-replica-watch)', args: ['--no-replica-watch'], pollMs: 1000 },
  poll_only_50ms: {
    key: 'poll_only_50ms',
    label: 'poll only, 50 ms (--replica-poll-ms 50)',
    args: ['--no-replica-watch', '--replica-poll-ms', '50'],
    pollMs: 50,
  },
  watch_long_log: { key: 'watch_long_log', label: 'watching + poll 1000 ms (default), long log', args: [], pollMs: 1000 },
};
const DISPLAY_ORDER: ModeKey[] = ['watch', 'watch_long_log', 'poll_only', 'poll_only_50ms'];

/**
 * On a shared file system whose inotify does not see other clients' changes (CephFS, NFS) the
 * default is no watching (docs/DEPLOY-CEPHFS.md): the replicas learn of new segments from the
 * Primary's nudges and their poll. "poll only, 1000 ms" is then the default itself, so it is not
 * run twice.
 */
const SHARED_DIR_MODES: Record<ModeKey, Mode> = {
  ...MODES,
  watch: {
    key: 'watch',
    label: 'no watching, nudges + poll 1000 ms (--no-replica-watch), short log',
    args: ['--no-replica-watch'],
    pollMs: 1000,
  },
  watch_long_log: {
    key: 'watch_long_log',
    label: 'no watching, nudges + poll 1000 ms (--no-replica-watch), long log',
    args: ['--no-replica-watch'],
    pollMs: 1000,
  },
};
const SHARED_DIR_DISPLAY_ORDER: ModeKey[] = ['watch', 'watch_long_log', 'poll_only_50ms'];

export interface LagSummary {
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  mean_ms: number;
  samples: number;
}

export interface Visibility extends LagSummary {
  replica_flags: string;
  /** Segment files in the log folder when the window started: a watcher's cost may grow with it. */
  log_segments: number;
  /** inotify watches each replica process held at the end of the window (Linux). */
  inotify_watches: Record<string, number | null>;
  /** p50 of a no-wait probe's round trip on the replicas (the same request, nothing to wait for). */
  rtt_ms: number;
  rtt_p99_ms: number;
  /** p50 width of the bracket a lag lies in (previous probe sent .. first probe that saw it answered). */
  resolution_ms: number;
  probes: number;
  probe_errors: number;
  /**
   * When a plain fs.watch on the log folder, in this process, reported each write's segment file,
   * relative to the acknowledgement (negative: before it; the Primary links the file, fsyncs the
   * folder, then answers). What a replica watching the folder directly could achieve.
   */
  fs_watch_event: LagSummary & { missed: number };
  /** Writes a probe saw before the Primary's answer reached the writer (counted as 0 ms). */
  seen_before_ack: number;
  /** Writes no probe saw before the window closed (drain included): a replica stuck behind. */
  not_seen: number;
  /** Probe answers whose `position` covered a write their rows did not show yet (see the report). */
  position_ahead_of_rows: number;
  per_replica: Record<string, LagSummary>;
  writes: number;
  write_errors: number;
  write_rate: number;
  write_ack_p50_ms: number;
  cpu: ProcessesCpu;
}

export interface ReadYourWrites extends LagSummary {
  rtt_ms: number;
  errors: number;
  error_codes: Record<string, number>;
  /** Answers to a minPosition read that did not include the write: a broken guarantee. */
  stale_answers: number;
  /** ...of which the answer's own `position` already covered the write. */
  stale_answers_claiming_position: number;
  per_replica: Record<string, LagSummary>;
  writes: number;
  write_errors: number;
  cpu: ProcessesCpu;
}

export interface CatchUpFigures {
  positions: number;
  bytes: number;
  seconds: number;
  positions_per_s: number;
  mib_per_s: number;
  ratio_to_raw: number;
}

/**
 * The catch-ups with the segment files out of the page cache, beside a plain read of them that is
 * out of it too: what a replica on another machine, whose page cache never saw them, does.
 */
export interface ColdCatchUp {
  /** The plain read of the evicted files: the reference for both figures below. */
  read: ReadSpeed;
  /** A fresh node (new id, empty local dir), spawn -> serves the last position. */
  fresh: CatchUpFigures;
  /** A replica SIGSTOPped while the log grew, SIGCONT -> serves the last position. */
  resumed_replica: CatchUpFigures & { from_position: string };
}

/** Warm-cache figures (top level) and, where the page cache could be emptied, cold ones. */
export interface CatchUp extends CatchUpFigures {
  raw_read_mib_per_s: number;
  /** Both plain reads (before the fresh node and after the resumed replica); the faster one is the reference. */
  raw_reads: ReadSpeed[];
  /** Spawn to GET /readyz = 200 (a joining node replays the log before it listens). */
  ready_ms: number;
  /** The same for a node joining when the log was a few segments long: the cost of starting at all. */
  node_start_ms: number;
  excluding_start: Omit<CatchUpFigures, 'positions' | 'bytes'>;
  segment_bytes_avg: number;
  /** A replica that was SIGSTOPped while the log grew, from SIGCONT until it serves the last position (cold when `cold` is there). */
  resumed_replica: CatchUpFigures & { from_position: string };
  /** Absent when the files could not be dropped from the page cache (the reason is a warning). */
  cold?: ColdCatchUp;
  /** The figure the goal is judged on: the cold fresh node when there is one, else the warm one. */
  judged: { figure: string; ratio_to_read: number };
  /** The replay stages in this process, without a server: where a catch-up's time can go. */
  pipeline: PipelineSpeeds;
  bulk: { seconds: number; positions: number; writes: number; row_chars: number; writers: number; errors: number };
}

export interface ReplicationReport {
  /** Where the shared folder was: under the temp root, or on --shared-dir. */
  shared_folder: { on_shared_dir: boolean; dirs: string[]; filesystem: string; replica_flags: string };
  /** The configurations measured, in display order (on a shared dir "poll_only" is the default and not run twice). */
  modes: ModeKey[];
  /** The labels of those configurations. */
  mode_labels: Partial<Record<ModeKey, string>>;
  visibility: Partial<Record<ModeKey, Visibility>>;
  read_your_writes: Partial<Record<ModeKey, ReadYourWrites>>;
  catch_up: CatchUp;
  goals: { p99_lag_max_ms: number; p99_lag_le_max: boolean; catch_up_ge_half_raw: boolean };
  all_goals_pass: boolean;
  machine: MachineInfo;
  config: {
    rate: number;
    visibility_s: number;
    read_your_writes_s: number;
    probe_gap_ms: number;
    lease_ttl_ms: number;
    compaction: string;
  };
  server_log_lines: { lines: number; samples: string[] };
  durations_s: Record<string, number>;
  warnings: string[];
  failures: string[];
}

// ---------------------------------------------------------------------------------------------
// Statistics

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? NaN;
}

function lagSummary(values: number[]): LagSummary {
  const sorted = [...values].sort((a, b) => a - b);
  const sum = sorted.reduce((total, value) => total + value, 0);
  return {
    p50_ms: round(percentile(sorted, 50), 2),
    p99_ms: round(percentile(sorted, 99), 2),
    max_ms: round(sorted[sorted.length - 1] ?? NaN, 2),
    mean_ms: round(sorted.length > 0 ? sum / sorted.length : NaN, 2),
    samples: sorted.length,
  };
}

function catchUpFigures(positions: number, bytes: number, seconds: number, rawMibPerS: number): CatchUpFigures {
  const mibPerS = bytes / MIB / seconds;
  return {
    positions,
    bytes,
    seconds: round(seconds, 3),
    positions_per_s: Math.round(positions / seconds),
    mib_per_s: round(mibPerS, 1),
    ratio_to_raw: round(mibPerS / rawMibPerS, 3),
  };
}

// ---------------------------------------------------------------------------------------------
// Load and probes

interface WriteRecord {
  id: number;
  position: bigint;
  ackAt: number;
  latency: number;
}

interface WriterOutcome {
  writes: WriteRecord[];
  errors: number;
  seconds: number;
}

/** At most this many INSERTs in flight: the writer keeps its pace even when one answer is slow. */
const WRITER_IN_FLIGHT = 4;

/**
 * INSERTs to the Primary at `rate` per second, each sent at its scheduled time (open loop), up to
 * WRITER_IN_FLIGHT at once; past that the schedule slips rather than bursting afterwards.
 */
async function pacedWriter(
  client: JsonClient,
  rate: number,
  seconds: number,
  onAck?: (write: WriteRecord) => void,
): Promise<WriterOutcome> {
  const interval = 1000 / rate;
  const started = performance.now();
  const end = started + seconds * 1000;
  let next = started;
  const writes: WriteRecord[] = [];
  let errors = 0;
  const inflight = new Set<Promise<void>>();
  const send = async (): Promise<void> => {
    const sentAt = performance.now();
    try {
      const answer = await client.request('POST', QUERY, { statements: [{ sql: 'INSERT INTO t(v) VALUES (?)', params: [SMALL_ROW] }] });
      const ackAt = performance.now();
      const id = lastInsertRowid(answer.body);
      const position = answerPosition(answer.body);
      if (answer.status === 200 && id !== undefined && position !== undefined) {
        const write = { id, position, ackAt, latency: ackAt - sentAt };
        writes.push(write);
        onAck?.(write);
      } else {
        errors++;
      }
    } catch {
      errors++;
    }
  };
  while (performance.now() < end) {
    if (inflight.size >= WRITER_IN_FLIGHT) {
      await Promise.race(inflight);
      continue;
    }
    const request = send().finally(() => inflight.delete(request));
    inflight.add(request);
    next += interval;
    const now = performance.now();
    if (next < now - interval) next = now;
    else if (next > now) await sleep(next - now);
  }
  await Promise.all(inflight);
  // Answers can come back out of order; matching wants them in commit order.
  writes.sort((a, b) => a.id - b.id);
  return { writes, errors, seconds: (performance.now() - started) / 1000 };
}

interface ProbeRecord {
  sentAt: number;
  answeredAt: number;
  maxId: number;
  position: bigint;
}

/** Back-to-back no-wait reads on one replica until `done()` says so. */
async function probeLoop(
  client: JsonClient,
  gapMs: number,
  done: (last: ProbeRecord | undefined) => boolean,
): Promise<{ probes: ProbeRecord[]; errors: number }> {
  const probes: ProbeRecord[] = [];
  let errors = 0;
  while (!done(probes[probes.length - 1])) {
    const sentAt = performance.now();
    try {
      const answer = await client.request('POST', QUERY, PROBE);
      const answeredAt = performance.now();
      const maxId = scalar(answer.body);
      const position = answerPosition(answer.body);
      if (answer.status === 200 && maxId !== undefined && position !== undefined) {
        probes.push({ sentAt, answeredAt, maxId: maxId ?? 0, position });
      } else {
        errors++;
      }
    } catch {
      errors++;
      await sleep(10);
    }
    if (gapMs > 0) await sleep(gapMs);
  }
  return { probes, errors };
}

interface ProbeMatch {
  lags: number[];
  widths: number[];
  seenBeforeAck: number;
  notSeen: number;
  positionAheadOfRows: number;
}

/** For every write, the first probe (in answer order) whose max(id) includes it. */
function matchProbes(writes: WriteRecord[], probes: ProbeRecord[]): ProbeMatch {
  const lags: number[] = [];
  const widths: number[] = [];
  let seenBeforeAck = 0;
  let notSeen = 0;
  let j = 0;
  for (const write of writes) {
    while (j < probes.length && (probes[j]?.maxId ?? 0) < write.id) j++;
    const hit = probes[j];
    if (!hit) {
      notSeen++;
      continue;
    }
    const upper = hit.answeredAt - write.ackAt;
    if (upper < 0) seenBeforeAck++;
    lags.push(Math.max(0, upper));
    const previous = probes[j - 1];
    if (previous) widths.push(Math.max(0, hit.answeredAt - Math.max(previous.sentAt, write.ackAt)));
  }
  // A probe whose position covers a write must also show its row: the position a replica reports
  // should never run ahead of what its reads see.
  let positionAheadOfRows = 0;
  let w = -1;
  for (const probe of probes) {
    while (w + 1 < writes.length && (writes[w + 1]?.position ?? 0n) <= probe.position) w++;
    const covered = writes[w];
    if (covered && probe.maxId < covered.id) positionAheadOfRows++;
  }
  return { lags, widths, seenBeforeAck, notSeen, positionAheadOfRows };
}

/** No-wait reads on each replica, one after another: the round trip a probe adds. */
async function roundTrips(clients: JsonClient[], count: number): Promise<number[]> {
  const rtts: number[] = [];
  for (let i = 0; i < count; i++) {
    const client = clients[i % clients.length];
    if (!client) continue;
    const started = performance.now();
    const answer = await client.request('POST', QUERY, PROBE);
    if (answer.status === 200) rtts.push(performance.now() - started);
  }
  return rtts.sort((a, b) => a - b);
}

function positionOf(node: ClusterNode): Promise<bigint | undefined> {
  return databasePositionOf(node, DB);
}

/** Poll GET /v1/databases/bench every `everyMs` until the node reports at least `target`. */
function waitForPosition(node: ClusterNode, target: bigint, timeoutMs: number, everyMs = 5): Promise<number> {
  return waitForDatabasePosition(node, DB, target, timeoutMs, everyMs);
}

/**
 * The steady state the lag is measured in: the Primary nudges only the nodes whose heartbeat it has
 * read (its housekeeping reads them once a second), so right after a replica (re)starts it learns
 * of new segments from its poll alone for a second or two. Wait until the Primary's GET /v1/cluster
 * shows a heartbeat each replica wrote since it was ready; then 2 s of the same paced writes, not
 * measured (one more housekeeping round, and the write and apply paths of freshly started
 * processes warmed up, as the other benchmarks warm up before they measure).
 */
async function waitUntilNudged(primary: ClusterNode, replicas: ClusterNode[], rate: number): Promise<void> {
  const since = Date.now() - Math.max(0, ...replicas.map((replica) => performance.now() - replica.readyAt));
  const deadline = performance.now() + 30_000;
  for (;;) {
    const answer = await primary.client.request('GET', '/v1/cluster', undefined, 5_000).catch(() => undefined);
    const nodes = (answer?.body as { nodes?: Array<{ nodeId?: unknown; lastHeartbeat?: unknown }> } | undefined)?.nodes ?? [];
    const seen = replicas.every((replica) =>
      nodes.some((node) => node.nodeId === replica.id && typeof node.lastHeartbeat === 'string' && Date.parse(node.lastHeartbeat) >= since),
    );
    if (seen) break;
    if (performance.now() > deadline) throw new Error("the Primary did not read the replicas' heartbeats within 30 s");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const writer = new JsonClient(primary.url, primary.key, WRITER_IN_FLIGHT);
  try {
    await pacedWriter(writer, rate, 2);
  } finally {
    writer.close();
  }
}

/** Every replica at the Primary's position with the same rolling checksum; a message per difference. */
async function compareWithPrimary(primary: ClusterNode, replicas: ClusterNode[]): Promise<string[]> {
  const answer = await primary.client.request('GET', `/v1/databases/${DB}`);
  const position = databasePosition(answer.body);
  const checksum = databaseChecksum(answer.body);
  if (position === undefined || checksum === undefined) return [`the Primary did not describe ${DB}: ${answer.text.slice(0, 200)}`];
  const problems: string[] = [];
  for (const replica of replicas) {
    try {
      await waitForPosition(replica, position, 10_000, 20);
      const view = await replica.client.request('GET', `/v1/databases/${DB}`);
      const theirs = databaseChecksum(view.body);
      const at = databasePosition(view.body);
      if (at === position && theirs !== checksum) {
        problems.push(`replica ${replica.id} has checksum ${theirs ?? '?'} at position ${position}, the Primary ${checksum}`);
      }
    } catch (error) {
      problems.push(error instanceof Error ? error.message : String(error));
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// The phases

function cpuMonitor(primary: ClusterNode, replicas: ClusterNode[]): ProcessesCpuMonitor {
  const pids: Record<string, number | undefined> = { [`primary ${primary.id}`]: primary.pid };
  for (const replica of replicas) pids[`replica ${replica.id}`] = replica.pid;
  return new ProcessesCpuMonitor(pids);
}

async function measureVisibility(
  mode: Mode,
  primary: ClusterNode,
  replicas: ClusterNode[],
  options: ReplicationOptions,
  logDir: string,
): Promise<Visibility> {
  const pollMs = mode.pollMs;
  const logSegments = listSegments(logDir).segments;
  const probeClients = replicas.map((replica) => new JsonClient(replica.url, replica.key, 1));
  const writer = new JsonClient(primary.url, primary.key, WRITER_IN_FLIGHT);
  try {
    const rtts = await roundTrips(probeClients, 200);
    let lastId = Number.POSITIVE_INFINITY;
    let writerDone = false;
    let drainUntil = Number.POSITIVE_INFINITY;
    // Probing continues after the last write until every replica shows it (bounded by a poll period + 1.5 s).
    const done = (last: ProbeRecord | undefined): boolean =>
      writerDone && ((last !== undefined && last.maxId >= lastId) || performance.now() > drainUntil);
    // The reference for a watcher: when this process hears of each new segment file through a
    // plain fs.watch on the log folder (one inotify watch on the directory).
    const fileEvents = new Map<bigint, number>();
    const folderWatch = watch(logDir, (_event, name) => {
      const match = typeof name === 'string' ? /^(\d{20})\.seg$/.exec(name) : null;
      if (match?.[1] && !fileEvents.has(BigInt(match[1]))) fileEvents.set(BigInt(match[1]), performance.now());
    });
    const cpu = cpuMonitor(primary, replicas);
    const loops = probeClients.map((client) => probeLoop(client, options.probeGapMs, done));
    await sleep(50);
    const outcome = await pacedWriter(writer, options.rate, options.visibilitySeconds);
    lastId = outcome.writes[outcome.writes.length - 1]?.id ?? 0;
    drainUntil = performance.now() + pollMs + 1500;
    writerDone = true;
    const probed = await Promise.all(loops);
    folderWatch.close();
    const eventDelays = outcome.writes.flatMap((write) => {
      const at = fileEvents.get(write.position);
      return at === undefined ? [] : [at - write.ackAt];
    });
    const cpuUsage = cpu.stop();
    const watches: Record<string, number | null> = {};
    for (const replica of replicas) watches[replica.id] = inotifyWatches(replica.pid);

    const all: number[] = [];
    const widths: number[] = [];
    const perReplica: Record<string, LagSummary> = {};
    let seenBeforeAck = 0;
    let notSeen = 0;
    let ahead = 0;
    let probes = 0;
    let probeErrors = 0;
    probed.forEach((result, index) => {
      const match = matchProbes(outcome.writes, result.probes);
      all.push(...match.lags);
      widths.push(...match.widths);
      seenBeforeAck += match.seenBeforeAck;
      notSeen += match.notSeen;
      ahead += match.positionAheadOfRows;
      probes += result.probes.length;
      probeErrors += result.errors;
      perReplica[replicas[index]?.id ?? String(index)] = lagSummary(match.lags);
    });
    const latencies = outcome.writes.map((write) => write.latency).sort((a, b) => a - b);
    return {
      ...lagSummary(all),
      replica_flags: mode.args.join(' ') || '(defaults)',
      log_segments: logSegments,
      inotify_watches: watches,
      rtt_ms: round(percentile(rtts, 50), 2),
      rtt_p99_ms: round(percentile(rtts, 99), 2),
      resolution_ms: round(
        percentile(
          [...widths].sort((a, b) => a - b),
          50,
        ),
        2,
      ),
      probes,
      probe_errors: probeErrors,
      seen_before_ack: seenBeforeAck,
      fs_watch_event: { ...lagSummary(eventDelays), missed: outcome.writes.length - eventDelays.length },
      not_seen: notSeen,
      position_ahead_of_rows: ahead,
      per_replica: perReplica,
      writes: outcome.writes.length,
      write_errors: outcome.errors,
      write_rate: round(outcome.writes.length / outcome.seconds, 1),
      write_ack_p50_ms: round(percentile(latencies, 50), 2),
      cpu: cpuUsage,
    };
  } finally {
    writer.close();
    for (const client of probeClients) client.close();
  }
}

async function measureReadYourWrites(primary: ClusterNode, replicas: ClusterNode[], options: ReplicationOptions): Promise<ReadYourWrites> {
  const clients = replicas.map((replica) => new JsonClient(replica.url, replica.key, 32));
  const writer = new JsonClient(primary.url, primary.key, WRITER_IN_FLIGHT);
  try {
    const rtts = await roundTrips(clients, 200);
    const lags: number[][] = replicas.map(() => []);
    const errorCodes: Record<string, number> = {};
    let errors = 0;
    let stale = 0;
    let staleClaiming = 0;
    const inflight: Promise<void>[] = [];
    const cpu = cpuMonitor(primary, replicas);
    const outcome = await pacedWriter(writer, options.rate, options.readYourWritesSeconds, (write) => {
      clients.forEach((client, index) => {
        inflight.push(
          (async () => {
            try {
              const answer = await client.request('POST', QUERY, { ...PROBE, minPosition: write.position.toString() });
              const at = performance.now();
              if (answer.status !== 200) {
                errors++;
                const code = errorCode(answer.body) ?? `HTTP ${answer.status}`;
                errorCodes[code] = (errorCodes[code] ?? 0) + 1;
                return;
              }
              if ((scalar(answer.body) ?? 0) < write.id) {
                stale++;
                if ((answerPosition(answer.body) ?? 0n) >= write.position) staleClaiming++;
              }
              lags[index]?.push(at - write.ackAt);
            } catch (error) {
              errors++;
              const code = error instanceof Error ? error.message.slice(0, 80) : 'error';
              errorCodes[code] = (errorCodes[code] ?? 0) + 1;
            }
          })(),
        );
      });
    });
    await Promise.all(inflight);
    const cpuUsage = cpu.stop();
    const perReplica: Record<string, LagSummary> = {};
    replicas.forEach((replica, index) => {
      perReplica[replica.id] = lagSummary(lags[index] ?? []);
    });
    return {
      ...lagSummary(lags.flat()),
      rtt_ms: round(percentile(rtts, 50), 2),
      errors,
      error_codes: errorCodes,
      stale_answers: stale,
      stale_answers_claiming_position: staleClaiming,
      per_replica: perReplica,
      writes: outcome.writes.length,
      write_errors: outcome.errors,
      cpu: cpuUsage,
    };
  } finally {
    writer.close();
    for (const client of clients) client.close();
  }
}

interface BulkOutcome {
  seconds: number;
  positions: number;
  writes: number;
  errors: number;
}

/** Concurrent INSERTs of random (incompressible) text until the log has grown by `positions`. */
async function buildLog(primary: ClusterNode, options: ReplicationOptions, from: bigint): Promise<BulkOutcome> {
  const client = new JsonClient(primary.url, primary.key, options.bulkWriters);
  const started = performance.now();
  const end = started + options.bulkSeconds * 1000;
  const target = from + BigInt(options.bulkSegments);
  let reached = from;
  let writes = 0;
  let errors = 0;
  try {
    await Promise.all(
      Array.from({ length: options.bulkWriters }, async () => {
        while (reached < target && performance.now() < end) {
          const text = randomBytes(Math.ceil((options.bulkRowChars * 3) / 4))
            .toString('base64')
            .slice(0, options.bulkRowChars);
          try {
            const answer = await client.request('POST', QUERY, { statements: [{ sql: 'INSERT INTO t(v) VALUES (?)', params: [text] }] });
            const position = answerPosition(answer.body);
            if (answer.status === 200 && position !== undefined) {
              writes++;
              if (position > reached) reached = position;
            } else {
              errors++;
            }
          } catch {
            errors++;
          }
          if (errors > 100) throw new Error(`building the log: ${errors} failed INSERTs`);
        }
      }),
    );
  } finally {
    client.close();
  }
  return { seconds: (performance.now() - started) / 1000, positions: Number(reached - from), writes, errors };
}

// ---------------------------------------------------------------------------------------------
// The run

export async function runReplicationBenchmark(partial: Partial<ReplicationOptions> = {}): Promise<ReplicationReport> {
  const options: ReplicationOptions = { ...DEFAULT_REPLICATION_OPTIONS, ...partial };
  const runStarted = performance.now();
  const durations: Record<string, number> = {};
  const machine = machineInfo(benchTmpRoot());
  const warnings: string[] = [];
  const failures: string[] = [];
  if (machine.load_average_1m > 0.5 * machine.cpus) {
    warnings.push(`the 1-minute load average was ${machine.load_average_1m} at the start (${machine.cpus} cpus): other work was running`);
  }
  // Compaction off: the log must keep every segment for the catch-up, and archiving in the
  // background would take CPU from the lag windows.
  const cluster = new BenchCluster(
    randomBytes(16).toString('hex'),
    {
      LITEBASE_COMPACTION_LOG_BYTES: '0',
      LITEBASE_COMPACTION_LOG_SEGMENTS: '0',
      LITEBASE_ARCHIVE_INTERVAL_MS: '0',
    },
    options.sharedDirs,
  );
  const onShared = cluster.onSharedDir;
  const modes = onShared ? SHARED_DIR_MODES : MODES;
  const displayOrder = onShared ? SHARED_DIR_DISPLAY_ORDER : DISPLAY_ORDER;
  // Replicas started outside the lag configurations (the paused one, the fresh ones) take the default's flags.
  const replicaArgs = modes.watch.args;
  const maxP99LagMs = onShared ? REPLICATION_GOALS.maxP99LagMsSharedDir : REPLICATION_GOALS.maxP99LagMs;
  try {
    let phase = performance.now();
    progress('starting the Primary');
    const first = await cluster.start('n1');
    const primary = await cluster.primary(first);
    await primary.client.request('POST', '/v1/databases', { name: DB }).then((answer) => {
      if (answer.status !== 201) throw new Error(`create database: ${answer.status} ${answer.text.slice(0, 300)}`);
    });
    const table = await primary.client.request('POST', QUERY, { statements: [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)' }] });
    if (table.status !== 200) throw new Error(`create table: ${table.status} ${table.text.slice(0, 300)}`);
    const logDir = cluster.logDir(DB);

    const visibility: Partial<Record<ModeKey, Visibility>> = {};
    const readYourWrites: Partial<Record<ModeKey, ReadYourWrites>> = {};
    const measure = async (mode: Mode, replicas: ClusterNode[]): Promise<void> => {
      const head = await positionOf(primary);
      for (const replica of replicas) await waitForPosition(replica, head ?? 0n, 60_000, 20);
      await waitUntilNudged(primary, replicas, options.rate);
      phase = performance.now();
      progress(`  visibility lag, ${options.visibilitySeconds} s at ${options.rate} INSERT/s`);
      visibility[mode.key] = await measureVisibility(mode, primary, replicas, options, logDir);
      durations[`visibility_${mode.key}`] = since(phase);
      phase = performance.now();
      progress(`  read-your-writes (minPosition), ${options.readYourWritesSeconds} s`);
      readYourWrites[mode.key] = await measureReadYourWrites(primary, replicas, options);
      failures.push(...(await compareWithPrimary(primary, replicas)));
      durations[`read_your_writes_${mode.key}`] = since(phase);
    };

    // 1. Lag with a short log, three replica configurations; each restart reuses the local dirs.
    let replicas: ClusterNode[] = [];
    let nodeStartMs = Number.POSITIVE_INFINITY;
    for (const key of displayOrder.filter((mode) => mode !== 'watch_long_log')) {
      const mode = modes[key];
      phase = performance.now();
      for (const replica of replicas) await replica.stop();
      progress(`replicas: ${mode.label}`);
      // One after the other, so a start is timed on an otherwise quiet machine.
      replicas = [await cluster.start('n2', mode.args), await cluster.start('n3', mode.args)];
      if (key === 'watch') nodeStartMs = Math.min(...replicas.map((replica) => replica.startMs));
      durations[`start_${mode.key}`] = since(phase);
      await measure(mode, replicas);
    }

    // 2. A long log, written while replica n2 (default configuration) is SIGSTOPped.
    phase = performance.now();
    for (const replica of replicas) await replica.stop();
    const paused = await cluster.start('n2', replicaArgs);
    const pausedAt = (await positionOf(paused)) ?? 0n;
    paused.pause();
    const before = (await positionOf(primary)) ?? 0n;
    progress(
      `building the log: ${options.bulkSegments} positions of ${options.bulkRowChars}-character random rows ` +
        `(${options.bulkWriters} writers, at most ${options.bulkSeconds} s)`,
    );
    const bulk = await buildLog(primary, options, before);
    durations.build_log = since(phase);
    const last = (await positionOf(primary)) ?? 0n;
    const log = listSegments(logDir);
    if (BigInt(log.segments) !== last) warnings.push(`the log holds ${log.segments} segments for position ${last}`);

    // 3. Catch-up. With the files out of the page cache first (where that can be done): a plain
    //    read of them, a fresh node n9, then the paused replica. Then, warm, another fresh node.
    phase = performance.now();
    progress(
      `plain read of ${log.files.length} log files, ${log.segments} segments (${(log.bytes / MIB).toFixed(1)} MiB), page cache warm`,
    );
    const rawBefore = plainRead(log.files);
    // Every node's mount has its own page cache: drop the files through each of them.
    const evictEverywhere = (): string | undefined =>
      cluster.views.map((view) => evictFromPageCache(log.files.map((file) => view + file.slice(cluster.views[0]!.length)))).find(Boolean);
    const notEvicted = evictEverywhere();
    if (notEvicted)
      warnings.push(`the segment files could not be dropped from the page cache (${notEvicted}): catch-up measured warm only`);
    let coldRead: ReadSpeed | undefined;
    if (!notEvicted) {
      coldRead = plainRead(log.files);
      progress(`  the same out of the page cache: ${coldRead.mib_per_s} MiB/s`);
      if (coldRead.mib_per_s > 0.8 * rawBefore.mib_per_s)
        warnings.push('dropping the files from the page cache made little difference to a plain read');
      evictEverywhere();
    }
    progress(`fresh node n9 joins and catches up to position ${last}${coldRead ? ' (files out of the page cache)' : ''}`);
    const fresh = await cluster.start('n9', replicaArgs, { readyTimeoutMs: 300_000 });
    const caughtAt = await waitForPosition(fresh, last, 300_000);
    const firstFreshSeconds = (caughtAt - fresh.spawnedAt) / 1000;
    durations.catch_up_fresh = since(phase);

    phase = performance.now();
    if (coldRead) evictEverywhere();
    progress(`resuming replica ${paused.id} (paused at position ${pausedAt})`);
    const resumedAt = performance.now();
    paused.resume();
    const resumedCaughtAt = await waitForPosition(paused, last, 300_000);
    const resumedSeconds = (resumedCaughtAt - resumedAt) / 1000;
    durations.catch_up_resumed = since(phase);
    failures.push(...(await compareWithPrimary(primary, [fresh, paused])));

    // Warm: one more fresh node, just for this figure (when n9 was the cold one).
    let freshSeconds = firstFreshSeconds;
    let readyMs = fresh.startMs;
    if (coldRead) {
      phase = performance.now();
      progress(`fresh node n10 joins and catches up to position ${last} (page cache warm)`);
      const warm = await cluster.start('n10', replicaArgs, { readyTimeoutMs: 300_000 });
      freshSeconds = ((await waitForPosition(warm, last, 300_000)) - warm.spawnedAt) / 1000;
      readyMs = warm.startMs;
      failures.push(...(await compareWithPrimary(primary, [warm])));
      await warm.stop();
      durations.catch_up_fresh_warm = since(phase);
    }

    // 4. Lag again, default configuration, with the long log in the folder.
    progress(`replicas n2 and n9 (default configuration), log of ${log.segments} segments`);
    await measure(modes.watch_long_log, [paused, fresh]);

    // The nodes are stopped first: a busy replica would take the CPU these reads measure.
    const logLines = cluster.nodes.map((node) => node.logSummary());
    await cluster.stopNodes();
    phase = performance.now();
    progress('plain read again, and an in-process replay by stages (nodes stopped)');
    const rawAfter = plainRead(log.files);
    const pipeline = pipelineSpeeds(log.files, path.join(cluster.root, 'pipeline-scratch.sqlite'));
    durations.reads = since(phase);

    const raw = Math.max(rawBefore.mib_per_s, rawAfter.mib_per_s);
    const positions = Number(last);
    const freshFigures = catchUpFigures(positions, log.bytes, freshSeconds, raw);
    const netSeconds = Math.max(0.001, freshSeconds - nodeStartMs / 1000);
    const net = catchUpFigures(positions, log.bytes, netSeconds, raw);
    // Bytes of the segments the paused replica had not applied.
    const resumedBytes = log.sizes.slice(Number(pausedAt)).reduce((sum, size) => sum + size, 0);
    const resumed = {
      ...catchUpFigures(Number(last - pausedAt), resumedBytes, resumedSeconds, coldRead?.mib_per_s ?? raw),
      from_position: pausedAt.toString(),
    };
    const cold: ColdCatchUp | undefined = coldRead && {
      read: coldRead,
      fresh: catchUpFigures(positions, log.bytes, firstFreshSeconds, coldRead.mib_per_s),
      resumed_replica: resumed,
    };
    const catchUp: CatchUp = {
      ...freshFigures,
      raw_read_mib_per_s: raw,
      raw_reads: [rawBefore, rawAfter],
      ready_ms: Math.round(readyMs),
      node_start_ms: Math.round(nodeStartMs),
      excluding_start: {
        seconds: net.seconds,
        positions_per_s: net.positions_per_s,
        mib_per_s: net.mib_per_s,
        ratio_to_raw: net.ratio_to_raw,
      },
      segment_bytes_avg: Math.round(log.bytes / Math.max(1, log.files.length)),
      resumed_replica: resumed,
      ...(cold ? { cold } : {}),
      judged: cold
        ? {
            figure: 'fresh node, segment files out of the page cache, spawn -> serves the last position',
            ratio_to_read: cold.fresh.ratio_to_raw,
          }
        : { figure: 'fresh node, page cache warm, spawn -> serves the last position', ratio_to_read: freshFigures.ratio_to_raw },
      pipeline,
      bulk: {
        seconds: round(bulk.seconds, 2),
        positions: bulk.positions,
        writes: bulk.writes,
        row_chars: options.bulkRowChars,
        writers: options.bulkWriters,
        errors: bulk.errors,
      },
    };

    for (const key of displayOrder) {
      const v = visibility[key];
      const r = readYourWrites[key];
      if (!v || !r) throw new Error(`configuration ${key} was not measured`);
      const writes = v.writes + v.write_errors;
      if (v.write_errors > 0.01 * writes) failures.push(`${key}: ${v.write_errors} of ${writes} INSERTs failed`);
      if (v.not_seen > 0) failures.push(`${key}: ${v.not_seen} acknowledged writes were never seen on a replica during the window`);
      if (v.probe_errors > 0) warnings.push(`${key}: ${v.probe_errors} replica probes failed`);
      if (r.stale_answers > 0) failures.push(`${key}: ${r.stale_answers} reads with minPosition did not include the write they waited for`);
      if (r.errors > 0) failures.push(`${key}: ${r.errors} reads with minPosition failed (${JSON.stringify(r.error_codes)})`);
      if (v.position_ahead_of_rows > 0) {
        warnings.push(
          `${key}: ${v.position_ahead_of_rows} probe answers carried a position whose rows they did not show yet ` +
            '(the replica advances its position before it reopens its reader)',
        );
      }
      for (const cpu of [v.cpu, r.cpu]) {
        if ((cpu.other_pct ?? 0) > 25)
          warnings.push(`${key}: other processes used ${cpu.other_pct ?? 0}% CPU during a window: figures are disturbed`);
      }
    }
    if (bulk.positions < options.bulkSegments) {
      warnings.push(
        `the log grew by ${bulk.positions} positions in ${options.bulkSeconds} s, fewer than the ${options.bulkSegments} asked for`,
      );
    }

    const serverLogLines = {
      lines: logLines.reduce((sum, item) => sum + item.lines, 0),
      samples: logLines.flatMap((item) => item.samples).slice(0, 10),
    };
    const goals = {
      p99_lag_max_ms: maxP99LagMs,
      p99_lag_le_max: (visibility.watch?.p99_ms ?? NaN) <= maxP99LagMs && (visibility.watch_long_log?.p99_ms ?? NaN) <= maxP99LagMs,
      catch_up_ge_half_raw: catchUp.judged.ratio_to_read >= REPLICATION_GOALS.minCatchUpRatioToRead,
    };
    durations.total = since(runStarted);
    const sharedDir = cluster.views[0]!;
    return {
      shared_folder: {
        on_shared_dir: onShared,
        dirs: onShared ? cluster.views : [sharedDir],
        filesystem: mountTypeOf(sharedDir),
        replica_flags: replicaArgs.join(' ') || '(defaults)',
      },
      modes: displayOrder,
      mode_labels: Object.fromEntries(displayOrder.map((key) => [key, modes[key].label])),
      visibility,
      read_your_writes: readYourWrites,
      catch_up: catchUp,
      goals,
      all_goals_pass: goals.p99_lag_le_max && goals.catch_up_ge_half_raw,
      machine,
      config: {
        rate: options.rate,
        visibility_s: options.visibilitySeconds,
        read_your_writes_s: options.readYourWritesSeconds,
        probe_gap_ms: options.probeGapMs,
        lease_ttl_ms: 5000,
        compaction: 'off (LITEBASE_COMPACTION_LOG_BYTES=0, LITEBASE_COMPACTION_LOG_SEGMENTS=0, LITEBASE_ARCHIVE_INTERVAL_MS=0)',
      },
      server_log_lines: serverLogLines,
      durations_s: durations,
      warnings,
      failures,
    };
  } finally {
    await cluster.stopAll();
  }
}

// ---------------------------------------------------------------------------------------------
// Output

function ms(value: number): string {
  return formatNumber(value, value >= 100 ? 0 : 1);
}

/** The first columns of both lag tables: the configuration and its latency distribution. */
const LAG_COLUMNS: Column[] = [
  { header: 'replicas' },
  { header: 'p50 ms', align: 'right' },
  { header: 'p99 ms', align: 'right' },
  { header: 'max ms', align: 'right' },
  { header: 'samples', align: 'right' },
];

/** The columns of both catch-up tables (out of the page cache, and warm). */
const CATCH_UP_COLUMNS: Column[] = [
  { header: 'measurement' },
  { header: 'positions', align: 'right' },
  { header: 'MiB', align: 'right' },
  { header: 'seconds', align: 'right' },
  { header: 'positions/s', align: 'right' },
  { header: 'MiB/s', align: 'right' },
  { header: 'x plain read', align: 'right' },
];

/** The human-readable tables (stdout, before the JSON line). */
export function formatReplicationReport(report: ReplicationReport): string {
  const { machine, config, shared_folder: folder } = report;
  const label = (key: ModeKey): string => report.mode_labels[key] ?? key;
  /** The measured configurations with their figures (all of them are there once a run finished). */
  const measured = report.modes.flatMap((key) => {
    const visibility = report.visibility[key];
    const ryw = report.read_your_writes[key];
    return visibility && ryw ? [{ key, visibility, ryw }] : [];
  });
  const lines: string[] = [
    `Litebase replication benchmark: 1 Primary + 2 Replicas (separate processes, one shared folder), ${config.rate} INSERT/s to the Primary on a fixed schedule (at most ${WRITER_IN_FLIGHT} in flight)`,
    `machine: ${machine.cpus} cpus (${machine.cpu_model}), node ${machine.node_version}, ${machine.platform}/${machine.arch}, ` +
      (folder.on_shared_dir
        ? `shared folder on ${folder.filesystem} (--shared-dir: ${folder.dirs.join(', ')}; node i through the i-th, modulo), ` +
          `local dirs on ${machine.tmp_filesystem} (${machine.tmp_dir}), replicas ${folder.replica_flags}`
        : `data on ${machine.tmp_filesystem} (${machine.tmp_dir})`) +
      '; compaction off so the log keeps every segment',
    '',
    `Visibility lag: Primary's acknowledgement -> the row readable on a Replica (${config.visibility_s} s per configuration).`,
    'Each replica is probed by its own loop: SELECT max(id) FROM t without minPosition, one request in flight on a keep-alive',
    `connection, ${config.probe_gap_ms} ms apart. A lag is the answer time of the first probe showing the row (an upper bound); "res." is`,
    'the p50 width of the bracket it lies in (previous probe sent .. that probe answered), "RTT" a probe\'s own round trip.',
    '"fs.watch": when a plain fs.watch on the log folder in this process heard of each write\'s segment, relative to the',
    'acknowledgement (negative: before it). "log files": segments in the folder at the start of the window;',
    '"inotify": watches each replica process held at its end;',
    '"cpu%": Primary / each Replica / this process (writer and probes) / the rest of the machine, % of one core.',
    '',
    renderTable(
      [
        ...LAG_COLUMNS,
        { header: 'writes/s', align: 'right' },
        { header: 'res. ms', align: 'right' },
        { header: 'RTT ms', align: 'right' },
        { header: 'fs.watch p50/p99', align: 'right' },
        { header: 'log files', align: 'right' },
        { header: 'inotify', align: 'right' },
        { header: 'cpu% P/R/R/bench/other', align: 'right' },
      ],
      measured.map(({ key, visibility: v }): Cell[] => {
        const watches = Object.values(v.inotify_watches)
          .map((count) => (count === null ? '-' : String(count)))
          .join('/');
        return [
          label(key),
          ms(v.p50_ms),
          ms(v.p99_ms),
          ms(v.max_ms),
          v.samples,
          formatNumber(v.write_rate, 0),
          ms(v.resolution_ms),
          ms(v.rtt_ms),
          `${ms(v.fs_watch_event.p50_ms)} / ${ms(v.fs_watch_event.p99_ms)}`,
          v.log_segments,
          watches,
          processesCpuCell(v.cpu),
        ];
      }),
    ),
    '',
    'Per replica (p50 / p99 / max ms):',
    ...measured.map(
      ({ key, visibility }) =>
        `  ${label(key).padEnd(42)} ` +
        Object.entries(visibility.per_replica)
          .map(([id, lag]) => `${id}: ${ms(lag.p50_ms)} / ${ms(lag.p99_ms)} / ${ms(lag.max_ms)}`)
          .join('    '),
    ),
    '',
    `Read-your-writes: after each acknowledgement, the same SELECT with minPosition = the acknowledged position on each`,
    `Replica (${config.read_your_writes_s} s per configuration); the time from the acknowledgement to its answer, one round trip included.`,
    'A replica looks at the log as soon as such a read arrives, so this does not wait for the watcher or the poll.',
    '"stale": answers whose rows did not include the write they waited for (the guarantee broken); see the JSON',
    '(stale_answers_claiming_position) for how many of them carried a position covering the write.',
    '',
    renderTable(
      [
        ...LAG_COLUMNS,
        { header: 'RTT ms', align: 'right' },
        { header: 'stale', align: 'right' },
        { header: 'errors', align: 'right' },
        { header: 'cpu% P/R/R/bench/other', align: 'right' },
      ],
      measured.map(({ key, ryw: r }): Cell[] => {
        return [
          label(key),
          ms(r.p50_ms),
          ms(r.p99_ms),
          ms(r.max_ms),
          r.samples,
          ms(r.rtt_ms),
          r.stale_answers,
          r.errors,
          processesCpuCell(r.cpu),
        ];
      }),
    ),
    '',
  ];
  const c = report.catch_up;
  const mib = (bytes: number): string => formatNumber(bytes / MIB, 1);
  /** A catch-up row: label, positions, MiB, seconds, positions/s, MiB/s, x plain read. */
  const figuresRow = (label: string, f: CatchUpFigures): Cell[] => [
    label,
    f.positions,
    mib(f.bytes),
    formatNumber(f.seconds, 2),
    f.positions_per_s,
    formatNumber(f.mib_per_s, 1),
    formatNumber(f.ratio_to_raw, 3),
  ];
  /** A read of the whole log (plain, or a stage of the replay in this process) as a catch-up row. */
  const readRow = (label: string, read: ReadSpeed, reference = c.raw_read_mib_per_s): Cell[] =>
    figuresRow(label, {
      positions: c.positions,
      bytes: read.bytes,
      seconds: read.seconds,
      positions_per_s: Math.round(c.positions / read.seconds),
      mib_per_s: read.mib_per_s,
      ratio_to_raw: read.mib_per_s / reference,
    });
  lines.push(
    `Catch-up over ${formatNumber(c.positions)} segments, ${mib(c.bytes)} MiB (${formatNumber(c.segment_bytes_avg)} bytes per segment on average; ` +
      `${formatNumber(c.bulk.positions)} of them written by ${c.bulk.writers} writers of ${c.bulk.row_chars}-character random rows in ${c.bulk.seconds} s).`,
    ...(c.cold
      ? [
          'Out of the page cache (each figure starts after posix_fadvise DONTNEED on every segment file: what a node on another',
          'machine reads), beside a plain read of the files out of the page cache too:',
          '',
          renderTable(CATCH_UP_COLUMNS, [
            figuresRow('fresh node (new id, empty local dir): spawn -> serves the last position', c.cold.fresh),
            figuresRow('replica paused (SIGSTOP) while the log grew: SIGCONT -> caught up', c.cold.resumed_replica),
            readRow('plain read of the log files in order (readFileSync)', c.cold.read, c.cold.read.mib_per_s),
          ]),
          '',
        ]
      : []),
    'With the page cache warm (the files were just written, or just read); the plain read is the faster of two: before the fresh',
    'node starts (the paused replica and an idle Primary running) and at the end, with every node stopped, like the in-process replay.',
    '',
    renderTable(CATCH_UP_COLUMNS, [
      figuresRow('fresh node (new id, empty local dir): spawn -> serves the last position', c),
      figuresRow(`  the same, minus a node's start on a short log (${formatNumber(c.node_start_ms)} ms)`, {
        ...c.excluding_start,
        positions: c.positions,
        bytes: c.bytes,
      }),
      ...(c.cold ? [] : [figuresRow('replica paused (SIGSTOP) while the log grew: SIGCONT -> caught up', c.resumed_replica)]),
      ...c.raw_reads.map((read, index) =>
        readRow(`plain read of the log files in order (readFileSync), ${index === 0 ? 'before' : 'after'}`, read),
      ),
      readRow('in this process: read + decode (SHA-256 trailer, LZ4)', c.pipeline.read_decode),
      readRow('  + SHA-256 of every page image (rolling checksum)', c.pipeline.read_decode_hash),
      readRow('  + page writes into a scratch file', c.pipeline.read_decode_hash_write),
    ]),
    '',
    renderTable(
      [{ header: 'goal' }, { header: 'measured', align: 'right' }, { header: 'result' }],
      [
        [
          `p99 visibility lag <= ${report.goals.p99_lag_max_ms} ms (default configuration${folder.on_shared_dir ? ' on --shared-dir' : ''}; short log / long log)`,
          `${ms(report.visibility.watch?.p99_ms ?? NaN)} / ${ms(report.visibility.watch_long_log?.p99_ms ?? NaN)} ms`,
          report.goals.p99_lag_le_max ? 'PASS' : 'FAIL',
        ],
        [
          `fresh replica catch-up >= ${REPLICATION_GOALS.minCatchUpRatioToRead} x plain read of the segment bytes (${c.cold ? 'out of the page cache' : 'page cache warm'})`,
          formatNumber(c.judged.ratio_to_read, 3),
          report.goals.catch_up_ge_half_raw ? 'PASS' : 'FAIL',
        ],
      ],
    ),
  );
  if (report.server_log_lines.lines > 0) {
    lines.push('', `the nodes printed ${report.server_log_lines.lines} warning/error line(s); samples in the JSON (server_log_lines)`);
  }
  if (report.warnings.length > 0) lines.push('', ...report.warnings.map((warning) => `WARNING: ${warning}`));
  if (report.failures.length > 0) lines.push('', ...report.failures.map((failure) => `FAILED: ${failure}`));
  return lines.join('\n');
}

export function printReplicationReport(report: ReplicationReport): void {
  console.log(formatReplicationReport(report));
}

/** With --shared-dir: the main figures of the run on the temp root and of the run on the shared folder, side by side. */
export function formatBeside(local: ReplicationReport, shared: ReplicationReport): string {
  const lag = (report: ReplicationReport, key: ModeKey): string => {
    const v = report.visibility[key];
    return v ? `${ms(v.p50_ms)} / ${ms(v.p99_ms)}` : '-';
  };
  const ryw = (report: ReplicationReport): string => {
    const r = report.read_your_writes.watch;
    return r ? `${ms(r.p50_ms)} / ${ms(r.p99_ms)}` : '-';
  };
  const fresh = (report: ReplicationReport): string => {
    const figures = report.catch_up.cold?.fresh ?? report.catch_up;
    return `${formatNumber(figures.mib_per_s, 1)} MiB/s, ${formatNumber(figures.ratio_to_raw, 3)} x`;
  };
  const read = (report: ReplicationReport): string =>
    formatNumber(report.catch_up.cold?.read.mib_per_s ?? report.catch_up.raw_read_mib_per_s, 1);
  const resumed = (report: ReplicationReport): string => formatNumber(report.catch_up.resumed_replica.mib_per_s, 1);
  const cache = (report: ReplicationReport): string => (report.catch_up.cold ? 'out of the page cache' : 'page cache warm');
  const goal = (report: ReplicationReport): string =>
    `lag p99 <= ${report.goals.p99_lag_max_ms} ms: ${report.goals.p99_lag_le_max ? 'PASS' : 'FAIL'}; catch-up >= ${REPLICATION_GOALS.minCatchUpRatioToRead} x read: ${report.goals.catch_up_ge_half_raw ? 'PASS' : 'FAIL'}`;
  return [
    `Beside each other: the shared folder under the temp root (${local.shared_folder.filesystem}, replicas ${local.shared_folder.replica_flags}) ` +
      `and on --shared-dir (${shared.shared_folder.filesystem}, replicas ${shared.shared_folder.replica_flags})`,
    '',
    renderTable(
      [
        { header: 'figure' },
        { header: `temp root (${local.shared_folder.filesystem})`, align: 'right' },
        { header: `--shared-dir (${shared.shared_folder.filesystem})`, align: 'right' },
      ],
      [
        ['visibility lag p50 / p99 ms, default configuration, short log', lag(local, 'watch'), lag(shared, 'watch')],
        ['visibility lag p50 / p99 ms, default configuration, long log', lag(local, 'watch_long_log'), lag(shared, 'watch_long_log')],
        ['visibility lag p50 / p99 ms, poll only every 50 ms', lag(local, 'poll_only_50ms'), lag(shared, 'poll_only_50ms')],
        ['read-your-writes p50 / p99 ms, default configuration', ryw(local), ryw(shared)],
        [`plain read of the segment files, MiB/s (${cache(local)} / ${cache(shared)})`, read(local), read(shared)],
        ['fresh node catch-up, spawn -> last position, x plain read', fresh(local), fresh(shared)],
        ['paused replica catch-up, SIGCONT -> last position, MiB/s', resumed(local), resumed(shared)],
        ['goals', goal(local), goal(shared)],
      ],
    ),
  ].join('\n');
}

const USAGE = `usage: npm run bench -- replication [options]

  visibility lag Primary -> Replicas (watching; polling only, 1000 ms and 50 ms), read-your-writes
  with minPosition, and catch-up of a fresh replica beside a plain read of the segment files

options:
  --rate N            INSERTs per second to the Primary during the lag windows (default ${DEFAULT_REPLICATION_OPTIONS.rate})
  --duration S        seconds of each visibility window (default ${DEFAULT_REPLICATION_OPTIONS.visibilitySeconds})
  --ryw-duration S    seconds of each read-your-writes window (default ${DEFAULT_REPLICATION_OPTIONS.readYourWritesSeconds})
  --segments N        positions added with larger rows before the catch-up (default ${DEFAULT_REPLICATION_OPTIONS.bulkSegments})
  --shared-dir DIR[,DIR...]
                      run everything twice: with the shared folder under the temp root, then in a
                      new folder under DIR (e.g. a CephFS mount), the local dirs staying on the
                      temp root, every replica with --no-replica-watch; the results side by side.
                      Several DIRs are the same folder through different mounts (one ceph-fuse
                      client per node): node i uses the i-th, modulo their count
  --strict            exit 2 when a goal is missed`;

function parseOptions(argv: string[]): Partial<ReplicationOptions> | string {
  const options: Partial<ReplicationOptions> = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--strict') {
      options.strict = true;
      continue;
    }
    if (flag === '--shared-dir') {
      const dirs = parseSharedDirs(argv[i + 1]);
      if (typeof dirs === 'string') return dirs;
      options.sharedDirs = dirs;
      i++;
      continue;
    }
    const value = Number(argv[i + 1]);
    if (!(Number.isFinite(value) && value > 0)) return `bad option "${flag ?? ''}"${argv[i + 1] === undefined ? '' : ` ${argv[i + 1]}`}`;
    if (flag === '--rate') options.rate = value;
    else if (flag === '--duration') options.visibilitySeconds = value;
    else if (flag === '--ryw-duration') options.readYourWritesSeconds = value;
    else if (flag === '--segments' && Number.isInteger(value)) options.bulkSegments = value;
    else return `bad option "${flag ?? ''}" ${argv[i + 1] ?? ''}`;
    i++;
  }
  return options;
}

/** Past this, something hangs: clean up, say so on the JSON line, exit 1 (twice as long with --shared-dir: two runs). */
const WATCHDOG_SECONDS = 420;

/**
 * `npm run bench -- replication [options]` in full: runs, prints the tables and the JSON line,
 * returns the exit code (0 valid, 1 invalid measurement, 2 usage or --strict with a missed goal).
 * `argv` is what follows the word "replication".
 */
export async function replicationMain(argv: string[]): Promise<number> {
  const read = readOptions(argv, USAGE, parseOptions);
  if ('exitCode' in read) return read.exitCode;
  const parsed = read.options;
  const watchdogSeconds = parsed.sharedDirs ? 2 * WATCHDOG_SECONDS : WATCHDOG_SECONDS;
  const timer = setTimeout(() => {
    const message = `benchmark did not finish within ${watchdogSeconds} s`;
    console.error(`\n${message}; stopping the nodes`);
    void releaseAll().finally(() => {
      console.log(JSON.stringify({ benchmark: 'replication', ok: false, error: message }));
      process.exit(1);
    });
  }, watchdogSeconds * 1000);
  timer.unref();
  try {
    if (parsed.sharedDirs) {
      // The same run on a folder under the temp root first, then on the shared folder.
      const { sharedDirs, ...onTempRoot } = parsed;
      progress('== run 1 of 2: the shared folder under the temp root');
      const local = await runReplicationBenchmark(onTempRoot);
      progress(`== run 2 of 2: the shared folder under ${sharedDirs.join(', ')}`);
      const shared = await runReplicationBenchmark(parsed);
      console.log('== the shared folder under the temp root\n');
      printReplicationReport(local);
      console.log(`\n== the shared folder on --shared-dir\n`);
      printReplicationReport(shared);
      console.log(`\n${formatBeside(local, shared)}`);
      const ok = local.failures.length === 0 && shared.failures.length === 0;
      const allGoalsPass = local.all_goals_pass && shared.all_goals_pass;
      console.log(JSON.stringify({ benchmark: 'replication', ok, all_goals_pass: allGoalsPass, local, shared_dir: shared }));
      if (!ok) return 1;
      return parsed.strict && !allGoalsPass ? 2 : 0;
    }
    const report = await runReplicationBenchmark(parsed);
    printReplicationReport(report);
    const ok = report.failures.length === 0;
    console.log(JSON.stringify({ benchmark: 'replication', ok, ...report }));
    if (!ok) return 1;
    return parsed.strict && !report.all_goals_pass ? 2 : 0;
  } catch (error) {
    await releaseAll();
    const message = error instanceof Error ? error.message : String(error);
    console.error(`\nbenchmark failed: ${message}`);
    console.log(JSON.stringify({ benchmark: 'replication', ok: false, error: message }));
    return 1;
  } finally {
    clearTimeout(timer);
  }
}
