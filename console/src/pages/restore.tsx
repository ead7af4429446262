import { useEffect, useMemo, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import { ApiError, db } from '../api.js';
import { TimeChart } from '../chart.js';
import { asApiError, usePoll } from '../hooks.js';
import type { PageProps } from '../main.js';
import { needs } from '../permissions.js';
import { href } from '../route.js';
import type { RestoreJob, RestorePoints } from '../types.js';
import { ErrorBox, formatBytes, saveBlob } from '../ui.js';

/** Restore points as points on a time axis (y: their position): checkpoints, and the two ends. */
function timelineData(points: RestorePoints): { labels: string[]; data: uPlot.AlignedData } {
  const events: Array<{ t: number; series: number; position: number }> = [];
  if (points.earliest) events.push({ t: Date.parse(points.earliest.time) / 1000, series: 0, position: Number(points.earliest.position) });
  for (const checkpoint of points.checkpoints)
    events.push({ t: Date.parse(checkpoint.time) / 1000, series: 1, position: Number(checkpoint.position) });
  if (points.latest) events.push({ t: Date.parse(points.latest.time) / 1000, series: 2, position: Number(points.latest.position) });
  events.sort((a, b) => a.t - b.t);
  const columns: Array<Array<number | null>> = [[], [], []];
  for (const event of events) columns.forEach((column, index) => column.push(index === event.series ? event.position : null));
  return { labels: ['earliest', 'checkpoint', 'latest'], data: [events.map((event) => event.t), ...columns] as uPlot.AlignedData };
}

/** Restore timeline: restore points on a time axis, restore into a new database with progress; backup download. */
export function RestorePage({ api, permissions, refreshPermissions, params }: PageProps) {
  const restorable = permissions.databasesWith('restore');
  const [database, setDatabase] = useState(() => params.get('db') ?? restorable[0] ?? '');
  const [by, setBy] = useState<'time' | 'position'>('time');
  const [timestamp, setTimestamp] = useState('');
  const [position, setPosition] = useState('');
  const [target, setTarget] = useState('');
  const [job, setJob] = useState<RestoreJob | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  const points = usePoll(async () => (database ? api.get<RestorePoints>(`/v1/databases/${db(database)}/restore-points`) : null), 0, [
    database,
  ]);
  const restores = usePoll(
    async () => (database ? (await api.get<{ restores: RestoreJob[] }>(`/v1/databases/${db(database)}/restores`)).restores : []),
    0,
    [database, job?.status],
  );
  const timeline = useMemo(() => (points.value ? timelineData(points.value) : null), [points.value]);

  // A fresh default moment and target name for each database.
  useEffect(() => {
    const latest = points.value?.latest;
    if (latest) {
      setTimestamp(latest.time);
      setPosition(latest.position);
    }
    if (database) setTarget(`${database}-restored`);
  }, [points.value, database]);

  // While a restore runs, ask the Primary for its progress.
  useEffect(() => {
    if (!job || job.status !== 'running') return;
    const timer = setTimeout(async () => {
      try {
        const { restore } = await api.get<{ restore: RestoreJob }>(`/v1/databases/${db(job.database)}/restores/${job.id}`);
        setJob(restore);
        if (restore.status === 'succeeded') await refreshPermissions();
      } catch (caught) {
        setError(asApiError(caught));
      }
    }, 250);
    return () => clearTimeout(timer);
  }, [job]);

  const earliestMs = points.value?.earliest ? Date.parse(points.value.earliest.time) : null;
  const latestMs = points.value?.latest ? Date.parse(points.value.latest.time) : null;
  const chosenMs = Date.parse(timestamp);
  const mayRestore = database !== '' && permissions.on(database, 'restore');

  const start = async (event: Event) => {
    event.preventDefault();
    setError(null);
    try {
      const body = { ...(by === 'time' ? { timestamp } : { position }), target: target.trim() };
      const { restore } = await api.post<{ restore: RestoreJob }>(`/v1/databases/${db(database)}/restore`, body);
      setJob(restore);
    } catch (caught) {
      setError(asApiError(caught));
    }
  };

  const download = async () => {
    setError(null);
    try {
      const { blob, headers } = await api.blob(`/v1/databases/${db(database)}/backup`);
      saveBlob(blob, `${database}-${headers.get('x-litebase-position') ?? 'backup'}.sqlite`);
    } catch (caught) {
      setError(asApiError(caught));
    }
  };

  return (
    <section>
      <div class="inline">
        <label>
          Database{' '}
          <select value={database} data-testid="restore-database" onChange={(event) => setDatabase(event.currentTarget.value)}>
            {!restorable.includes(database) && database !== '' && <option value={database}>{database}</option>}
            {restorable.map((name) => (
              <option value={name}>{name}</option>
            ))}
          </select>
        </label>
        <button disabled={database === '' || !permissions.on(database, 'read')} data-testid="backup-download" onClick={download}>
          Download backup
        </button>
      </div>
      <ErrorBox error={error ?? points.error} />
      {points.value && (
        <>
          <p class="hint" data-testid="restore-range">
            Restorable from {points.value.earliest ? `${points.value.earliest.time} (position ${points.value.earliest.position})` : '–'} to{' '}
            {points.value.latest ? `${points.value.latest.time} (position ${points.value.latest.position})` : '–'} ·{' '}
            {points.value.checkpoints.length} checkpoints · archive {points.value.archive.bundles} bundles,{' '}
            {formatBytes(points.value.archive.bytes)}
          </p>
          {timeline && (
            <TimeChart
              title="Restore points (click to pick a moment)"
              labels={timeline.labels}
              data={timeline.data}
              pointsOnly
              marker={by === 'time' && Number.isFinite(chosenMs) ? chosenMs / 1000 : null}
              onPick={(seconds) => {
                setBy('time');
                setTimestamp(new Date(Math.round(seconds * 1000)).toISOString());
              }}
              format={(value) => String(Math.round(value))}
              testId="restore-timeline"
            />
          )}
        </>
      )}
      <form class="restore-form" onSubmit={start}>
        <fieldset>
          <legend>Restore to</legend>
          <label>
            <input type="radio" name="by" checked={by === 'time'} onChange={() => setBy('time')} /> a moment
          </label>
          {earliestMs !== null && latestMs !== null && latestMs > earliestMs && (
            <input
              type="range"
              min={earliestMs}
              max={latestMs}
              step={1}
              value={Number.isFinite(chosenMs) ? Math.min(latestMs, Math.max(earliestMs, chosenMs)) : latestMs}
              disabled={by !== 'time'}
              onInput={(event) => setTimestamp(new Date(Number(event.currentTarget.value)).toISOString())}
            />
          )}
          <input
            class="code"
            value={timestamp}
            disabled={by !== 'time'}
            data-testid="restore-timestamp"
            onInput={(event) => setTimestamp(event.currentTarget.value)}
          />
          <label>
            <input
              type="radio"
              name="by"
              checked={by === 'position'}
              data-testid="restore-by-position"
              onChange={() => setBy('position')}
            />{' '}
            a position
          </label>
          <input
            class="code"
            value={position}
            disabled={by !== 'position'}
            data-testid="restore-position"
            onInput={(event) => setPosition(event.currentTarget.value)}
          />
        </fieldset>
        <label>
          Into the new database{' '}
          <input value={target} data-testid="restore-target" onInput={(event) => setTarget(event.currentTarget.value)} />
        </label>
        <button
          class="primary"
          type="submit"
          disabled={!mayRestore || target.trim() === '' || job?.status === 'running'}
          title={mayRestore ? '' : needs('restore', database)}
          data-testid="restore-start"
        >
          Restore
        </button>
      </form>
      {job && (
        <div class="job" data-testid="restore-job">
          <progress max={100} value={job.progress.percent} data-testid="restore-progress" />
          <span data-testid="restore-status">{job.status}</span> · {job.progress.phase} · {job.progress.percent.toFixed(0)}% ·{' '}
          {formatBytes(job.progress.bytes)} of {formatBytes(job.progress.totalBytes)}
          {job.status === 'succeeded' && job.result && (
            <p>
              Restored {job.database} into{' '}
              <a href={href('sql', { db: job.target })} data-testid="restore-open-target">
                {job.target}
              </a>{' '}
              at position {job.result.position}
              {job.result.time ? ` (${job.result.time})` : ''} in {job.result.durationMs} ms.
            </p>
          )}
          {job.error && <ErrorBox error={new ApiError(0, job.error.code, job.error.message)} />}
        </div>
      )}
      {(restores.value?.length ?? 0) > 0 && (
        <>
          <h2>Restores of {database}</h2>
          <table>
            <thead>
              <tr>
                <th>Started</th>
                <th>Target</th>
                <th>Asked for</th>
                <th>Status</th>
                <th>Restored position</th>
              </tr>
            </thead>
            <tbody>
              {restores.value?.map((restore) => (
                <tr>
                  <td>{restore.startedAt}</td>
                  <td>{restore.target}</td>
                  <td>{restore.request.timestamp ?? `position ${restore.request.position}`}</td>
                  <td>{restore.status}</td>
                  <td>{restore.result?.position ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
