import React from 'react';

import { failedChecks, shortDigest } from '../outputs';
import { formatBytes } from '../skeleton';
import { formatTime } from '../time';
import { IOutput, IRun } from '../types';
import { Empty, Loading } from './common';
import { IExplorerHost } from './context';

/** For org admins: files their release policy held, to approve into the scientist's
 * home or deny with a reason. Every decision is a ledger transaction. */
export function HeldOutputs(props: {
  host: IExplorerHost;
  refreshToken: number;
}): JSX.Element {
  const { host, refreshToken } = props;
  const [runs, setRuns] = React.useState<IRun[] | null>(null);
  const [version, setVersion] = React.useState(0);
  const [denying, setDenying] = React.useState<string | null>(null);
  const [reason, setReason] = React.useState('');

  React.useEffect(() => {
    let cancelled = false;
    host.client.heldOutputs().then(
      page => !cancelled && setRuns(page.items),
      err => {
        if (!cancelled) {
          setRuns([]);
          host.notifyError('Loading held outputs', err);
        }
      }
    );
    return () => {
      cancelled = true;
    };
  }, [refreshToken, version]);

  const decide = async (run: IRun, o: IOutput, approve: boolean) => {
    try {
      await host.client.decideOutput(run.id, o.path, approve, reason.trim());
      host.notifySuccess(
        `${approve ? 'Released' : 'Denied'} ${o.path} of ${run.user}’s run ${run.name}.`
      );
      setDenying(null);
      setReason('');
      setVersion(version + 1);
    } catch (err) {
      host.notifyError(`${approve ? 'Releasing' : 'Denying'} ${o.path}`, err);
    }
  };

  if (runs === null) {
    return <Loading label="Loading held outputs…" />;
  }
  if (runs.length === 0) {
    return <Empty>No outputs wait for your organization’s review.</Empty>;
  }
  return (
    <ul
      className="jp-dshare-list"
      aria-label="Held outputs"
      data-testid="dshare-held-list"
    >
      {runs.map(run => (
        <li key={run.id} data-testid="dshare-held-run" data-run-id={run.id}>
          <div>
            <strong>{run.user}</strong> ({run.org}) · run{' '}
            <strong>{run.name}</strong>
          </div>
          <div className="jp-dshare-meta">
            finished {formatTime(run.finished_at)} · {run.id}
          </div>
          <ul aria-label={`Held files of ${run.name}`}>
            {(run.outputs ?? []).map(o => {
              const key = `${run.id}/${o.path}`;
              return (
                <li
                  key={o.path}
                  data-testid="dshare-held-item"
                  data-path={o.path}
                >
                  <code>{o.path}</code> · {formatBytes(o.size)} ·{' '}
                  <span title={`SHA-256 ${o.sha256}`}>
                    {shortDigest(o.sha256)}
                  </span>
                  <div className="jp-dshare-meta" data-testid="dshare-held-why">
                    {failedChecks(o) || 'held for review by your policy'}
                  </div>
                  {denying === key ? (
                    <form
                      onSubmit={e => {
                        e.preventDefault();
                        void decide(run, o, false);
                      }}
                    >
                      <label>
                        Reason (the scientist sees it)
                        <input
                          className="jp-mod-styled"
                          data-testid="dshare-deny-reason"
                          value={reason}
                          required
                          onChange={e => setReason(e.target.value)}
                        />
                      </label>
                      <button
                        type="submit"
                        className="jp-mod-styled jp-mod-warn"
                        data-testid="dshare-deny-confirm"
                        disabled={!reason.trim()}
                      >
                        Deny
                      </button>
                      <button
                        type="button"
                        className="jp-mod-styled"
                        onClick={() => setDenying(null)}
                      >
                        Cancel
                      </button>
                    </form>
                  ) : (
                    <>
                      <button
                        className="jp-mod-styled jp-mod-accept"
                        data-testid="dshare-output-approve"
                        aria-label={`Release ${o.path} of run ${run.name}`}
                        onClick={() => decide(run, o, true)}
                      >
                        Release
                      </button>
                      <button
                        className="jp-mod-styled jp-mod-warn"
                        data-testid="dshare-output-deny"
                        aria-label={`Deny ${o.path} of run ${run.name}`}
                        onClick={() => {
                          setDenying(key);
                          setReason('');
                        }}
                      >
                        Deny…
                      </button>
                    </>
                  )}
                </li>
              );
            })}
          </ul>
        </li>
      ))}
    </ul>
  );
}
