/**
 * The lease keeper thread (started by startKeeper in src/cluster/lease-worker.ts, which describes
 * the keeper and the state it shares with the main thread): reads the cluster state, stands for
 * terms, renews the lease while this node is the Primary and writes its heartbeat, on its own
 * timers and with synchronous file calls.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import {
  backoffMs,
  canWriteWindowMs,
  decide,
  initialMemory,
  renewalAccepted,
  renewIntervalMs,
  type ElectionMemory,
  type ElectionSettings,
  type HeldLease,
  type PrimaryView,
  type Role,
} from './election.js';
import { LeaseStore } from './lease-store.js';
import { sharedState, type KeeperCommand, type KeeperData, type KeeperEvent } from './lease-worker.js';

/** Where the keeper talks to the main thread (parentPort in the thread). */
export type KeeperPort = Pick<MessagePort, 'postMessage' | 'on'>;

/** The keeper's main function: runs on `port` until told to stop. */
export function runKeeper(port: KeeperPort, data: KeeperData): void {
  const send = (event: KeeperEvent): void => port.postMessage(event);
  const { nodeId, address } = data;
  const holder = data.holder;
  const withHolder = <T extends object>(record: T): T => (holder === undefined ? record : { ...record, holder });
  const ttl = data.leaseTtlMs;
  const settings: ElectionSettings = { leaseTtlMs: ttl, clockSkewMs: data.clockSkewMs, pollMs: data.pollMs };
  const shared = sharedState(data.shared);
  const store = new LeaseStore(data.dataDir);
  const monoMs = (): number => Number(process.hrtime.bigint()) / 1e6;
  const nanoseconds = (ms: number): bigint => BigInt(Math.floor(ms * 1e6));
  const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error));
  const jitter = (): number => backoffMs(settings, Math.random());

  let held: HeldLease | undefined;
  let memory: ElectionMemory = initialMemory();
  let role: Role = 'candidate';
  let primary: PrimaryView | undefined;
  let databases: Record<string, { position: string }> = {};
  let stepDownReason: string | undefined;
  let stopping = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let readFailing = false;
  let heartbeatFailing = false;
  let heartbeatRole: Role | undefined;
  // Tells a restart of this node from a long-lived one (the Primary's nudger starts afresh).
  const startedAt = Date.now();

  // A keeper starts holding nothing; step-down requests made before it started are moot.
  shared.setRole('candidate');
  shared.setValidUntilNs(0n);
  shared.acknowledge(shared.requested());

  function log(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
    send({ type: 'log', level, msg, fields });
  }

  function publish(reason?: string): void {
    send({ type: 'state', role, term: held === undefined ? memory.highestSeen : held.term, primary, reason });
  }

  /** Views of an expired lease name nobody: there is no Primary to send writes to. */
  function liveView(view: PrimaryView | undefined, now: number): PrimaryView | undefined {
    if (view === undefined || now < view.expiresAt) return view;
    return { term: view.term, nodeId: undefined, address: undefined, expiresAt: view.expiresAt };
  }

  function setRole(next: Role): void {
    if (next !== 'primary') {
      shared.setRole(next);
      shared.setValidUntilNs(0n);
    }
    role = next;
  }

  function loseLease(reason: string): void {
    if (held === undefined && role !== 'primary') return;
    const term = held === undefined ? undefined : held.term.toString();
    held = undefined;
    setRole('candidate');
    log('warn', 'stepped down', { term, reason });
    publish(reason);
  }

  function handleStepDownRequest(): void {
    const requested = shared.requested();
    if (requested === shared.acknowledged()) return;
    const reason = stepDownReason ?? 'the engine asked';
    stepDownReason = undefined;
    // Let the others win the next term: this node's lease runs out within a TTL, then the others
    // may stand after the skew allowance; this node waits one TTL more before it stands itself.
    memory = { ...memory, holdOffUntil: Date.now() + 2 * ttl + settings.clockSkewMs };
    if (held !== undefined) loseLease(`asked to step down: ${reason}`);
    shared.acknowledge(requested);
  }

  /** Write lease.json for the held term; this node may write only if it landed in time. */
  function writeLease(term: bigint, now: number, local: number, repair: boolean): number {
    const previousEnd = held === undefined ? local : held.leaseEndLocal;
    if (repair) log('warn', "lease.json did not show this node's term; writing it again", { term: term.toString() });
    try {
      store.writeLease(withHolder({ term, nodeId, address, expiresAt: now + ttl, renewedAt: now }));
    } catch (error) {
      loseLease(`lease renewal failed: ${describe(error)}`);
      return settings.pollMs;
    }
    const done = monoMs();
    if (!renewalAccepted(done, previousEnd)) {
      loseLease(`the lease write of term ${term} finished ${Math.round(done - previousEnd)} ms after the lease ran out`);
      return 0;
    }
    if (shared.requested() !== shared.acknowledged()) {
      handleStepDownRequest();
      return 0;
    }
    held = { term, leaseEndLocal: local + ttl };
    shared.setTerm(term);
    shared.setValidUntilNs(nanoseconds(local + canWriteWindowMs(ttl)));
    if (role !== 'primary') {
      shared.setRole('primary');
      role = 'primary';
      log('info', 'became primary', { term: term.toString() });
    }
    primary = { term, nodeId, address, expiresAt: now + ttl };
    return Math.max(0, local + renewIntervalMs(ttl) - done);
  }

  function stand(term: bigint): number {
    setRole('candidate');
    const now = Date.now();
    const local = monoMs();
    let won: boolean;
    try {
      won = store.claimTerm(term, { nodeId, address, createdAt: now });
    } catch (error) {
      log('warn', 'could not stand for a term', { term: term.toString(), error: describe(error) });
      return settings.pollMs + jitter();
    }
    if (term > memory.highestSeen) memory = { ...memory, highestSeen: term };
    shared.setTerm(memory.highestSeen);
    if (!won) {
      log('debug', 'another node won the term', { term: term.toString() });
      return 1 + jitter();
    }
    log('info', 'won the term', { term: term.toString() });
    held = { term, leaseEndLocal: local + ttl };
    return writeLease(term, now, local, false);
  }

  function step(): number {
    handleStepDownRequest();
    const now = Date.now();
    const local = monoMs();
    let lease;
    let highest;
    try {
      lease = store.readLease();
      highest = store.highestTerm();
    } catch (error) {
      if (!readFailing) log('warn', 'cannot read the cluster state', { error: describe(error) });
      readFailing = true;
      if (held !== undefined) loseLease(`cannot read the cluster state: ${describe(error)}`);
      return settings.pollMs;
    }
    if (readFailing) log('info', 'the cluster state is readable again');
    readFailing = false;

    const result = decide({ nodeId, settings, now, localNow: local, lease, highest, held, memory, ...(holder ? { self: holder } : {}) });
    memory = result.memory;
    const decision = result.decision;
    // While this node may write, the shared term stays the one it holds: a higher term is
    // published only once it stepped down.
    switch (decision.action) {
      case 'renew':
        return writeLease(decision.term, now, local, decision.repair);
      case 'step-down':
        loseLease(decision.reason);
        shared.setTerm(memory.highestSeen);
        primary = liveView(result.primary, now);
        return 0;
      case 'follow':
        setRole(decision.role);
        shared.setTerm(memory.highestSeen);
        primary = liveView(result.primary, now);
        return Math.min(settings.pollMs, Math.max(0, decision.checkAt - now) + jitter());
      case 'stand':
        if (decision.takeover === true && lease !== undefined) {
          log('info', 'the lease is held by an earlier process of this node that has exited: standing at once', {
            term: lease.term.toString(),
            previousPid: lease.holder?.pid,
            expiresAt: new Date(lease.expiresAt).toISOString(),
          });
        }
        shared.setTerm(memory.highestSeen);
        primary = liveView(result.primary, now);
        return stand(decision.term);
    }
  }

  function tick(): void {
    timer = undefined;
    if (stopping) return;
    let delay = settings.pollMs;
    try {
      delay = step();
    } catch (error) {
      log('error', 'lease keeper step failed', { error: describe(error) });
      loseLease(`lease keeper step failed: ${describe(error)}`);
    }
    publish();
    // Others see a change of role at once, not at the next heartbeat.
    if (role !== heartbeatRole) writeHeartbeat();
    schedule(delay);
  }

  function schedule(delayMs: number): void {
    if (stopping) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(tick, Math.max(0, Math.ceil(delayMs)));
  }

  function writeHeartbeat(): void {
    heartbeatRole = role;
    try {
      store.writeHeartbeat({
        nodeId,
        address,
        role,
        term: (held === undefined ? memory.highestSeen : held.term).toString(),
        lastHeartbeat: Date.now(),
        startedAt,
        databases,
      });
      if (heartbeatFailing) log('info', 'heartbeats are written again');
      heartbeatFailing = false;
    } catch (error) {
      if (!heartbeatFailing) log('warn', 'cannot write the heartbeat', { error: describe(error) });
      heartbeatFailing = true;
    }
  }

  const heartbeatTimer = setInterval(() => {
    if (!stopping) writeHeartbeat();
  }, data.heartbeatMs);

  function stop(release: boolean): void {
    stopping = true;
    if (timer !== undefined) clearTimeout(timer);
    clearInterval(heartbeatTimer);
    if (held !== undefined) {
      // Release only a lease this node still holds by its own clock: nobody else can have won.
      const stillHeld = release && shared.canWrite();
      const term = held.term;
      held = undefined;
      setRole('replica');
      if (stillHeld) {
        try {
          const lease = store.readLease();
          if (lease !== undefined && lease.term === term && lease.nodeId === nodeId) {
            store.writeLease(withHolder({ term, nodeId, address, expiresAt: 0, renewedAt: Date.now() }));
            log('info', 'released the lease', { term: term.toString() });
          }
        } catch (error) {
          log('warn', 'could not release the lease', { term: term.toString(), error: describe(error) });
        }
      }
    }
    setRole('replica');
    writeHeartbeat();
    publish('stopped');
    send({ type: 'stopped' });
  }

  port.on('message', (command: KeeperCommand) => {
    if (command.type === 'databases') {
      databases = command.databases;
    } else if (command.type === 'step-down') {
      stepDownReason = command.reason;
      if (stopping) return;
      handleStepDownRequest();
      publish();
    } else if (command.type === 'stop') {
      if (!stopping) stop(command.release);
    }
  });

  try {
    store.ensureLayout();
  } catch (error) {
    log('warn', 'cannot create the cluster folders', { error: describe(error) });
  }
  tick();
}

if (parentPort) runKeeper(parentPort, workerData as KeeperData);
