import React from 'react';

import { formatTime } from '../time';
import { IRun } from '../types';
import { Empty, Loading } from './common';
import { IExplorerHost } from './context';
import { MyApprovals } from './MyApprovals';
import { OutputList } from './OutputList';

/** My runs with each job's state and what left each run (released, held and why, denied
 * with the owner's reason); a job's log is fetched on demand and shown as text. */
export function RunsView(props: {
  host: IExplorerHost;
  refreshToken: number;
}): JSX.Element {
  const { host, refreshToken } = props;
  const [runs, setRuns] = React.useState<IRun[] | null>(null);
  const [logs, setLogs] = React.useState<{
    title: string;
    text: string;
  } | null>(null);

  React.useEffect(() => {
    let cancelled = false;
    host.client.listRuns().then(
      page => !cancelled && setRuns(page.items),
      err => {
        if (!cancelled) {
          setRuns([]);
          host.notifyError('Loading runs', err);
        }
      }
    );
    return () => {
      cancelled = true;
    };
  }, [refreshToken]);

  const showLogs = async (run: IRun, job: string) => {
    try {
      const text = await host.client.jobLogs(run.id, job);
      setLogs({ title: `${run.name} / ${job}`, text });
    } catch (err) {
      host.notifyError(`Loading the logs of ${job}`, err);
    }
  };

  if (runs === null) {
    return <Loading label="Loading runs…" />;
  }
  if (runs.length === 0) {
    return (
      <div>
        <Empty>
          No runs yet. Run a workflow with %dshare_run workflow.yaml.
        </Empty>
        <MyApprovals host={host} refreshToken={refreshToken} />
      </div>
    );
  }
  return (
    <div>
      <MyApprovals host={host} refreshToken={refreshToken} />
      <ul
        className="jp-dshare-list"
        aria-label="My runs"
        data-testid="dshare-runs"
      >
        {runs.map(r => (
          <li
            key={r.id}
            data-testid="dshare-run-item"
            data-run-id={r.id}
            data-state={r.state}
          >
            <div>
              <strong>{r.name}</strong> · {r.state}
              {r.outcome ? ` (${r.outcome})` : ''}
              {r.mock && (
                <span
                  className="jp-dshare-mock-badge"
                  data-testid="dshare-run-mock"
                  title="The jobs read mock data, not the real rows"
                >
                  {' '}
                  · MOCK run on mock data
                </span>
              )}
            </div>
            <div className="jp-dshare-meta">
              started {formatTime(r.started_at)}
              {r.finished_at ? ` · finished ${formatTime(r.finished_at)}` : ''}
            </div>
            <ul aria-label={`Jobs of ${r.name}`}>
              {(r.jobs ?? []).map(j => (
                <li
                  key={j.name}
                  data-testid="dshare-job-item"
                  data-state={j.state}
                >
                  {j.name}: {j.state}
                  {j.exit_code !== null && j.exit_code !== undefined
                    ? ` (exit ${j.exit_code})`
                    : ''}{' '}
                  <button
                    className="jp-mod-styled"
                    data-testid="dshare-job-logs"
                    aria-label={`Show logs of job ${j.name}`}
                    onClick={() => showLogs(r, j.name)}
                  >
                    Logs
                  </button>
                </li>
              ))}
            </ul>
            <OutputList runName={r.name} outputs={r.outputs ?? []} />
          </li>
        ))}
      </ul>
      {logs && (
        <section
          aria-label={`Logs of ${logs.title}`}
          className="jp-dshare-logs"
        >
          <h3>
            {logs.title}{' '}
            <button
              className="jp-mod-styled"
              aria-label="Close logs"
              onClick={() => setLogs(null)}
            >
              ×
            </button>
          </h3>
          <pre data-testid="dshare-logs">{logs.text}</pre>
        </section>
      )}
    </div>
  );
}
