import React from 'react';

import { shortDigest } from '../outputs';
import { formatTime } from '../time';
import { ICodeApproval } from '../types';
import { IExplorerHost } from './context';

const STATE_TEXT: Record<ICodeApproval['state'], string> = {
  pending: 'waiting for',
  approved: 'approved by',
  denied: 'denied by'
};

/** In My runs: ask the owners of a workflow's data to approve its code (the server
 * sends the workflow and the home's snapshot; the broker hashes what the run would
 * ship), and the state of every request, with the owner's reason for a denial. */
export function MyApprovals(props: {
  host: IExplorerHost;
  refreshToken: number;
}): JSX.Element {
  const { host, refreshToken } = props;
  const [items, setItems] = React.useState<ICodeApproval[]>([]);
  const [path, setPath] = React.useState('workflow.yaml');
  const [busy, setBusy] = React.useState(false);
  const [version, setVersion] = React.useState(0);

  React.useEffect(() => {
    let cancelled = false;
    host.client.listApprovals('mine').then(
      page => !cancelled && setItems(page.items),
      err => !cancelled && host.notifyError('Loading code approvals', err)
    );
    return () => {
      cancelled = true;
    };
  }, [refreshToken, version]);

  const request = async () => {
    setBusy(true);
    try {
      const reply = await host.client.requestApproval(path.trim());
      const owners = reply.items.map(a => a.owner_org).join(', ');
      host.notifySuccess(
        `Asked ${owners} to approve the code of ${path.trim()}.`
      );
      setVersion(version + 1);
    } catch (err) {
      host.notifyError(`Requesting approval of ${path.trim()}`, err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-label="Code approvals" data-testid="dshare-my-approvals">
      <h3>Code approvals</h3>
      <form
        onSubmit={e => {
          e.preventDefault();
          void request();
        }}
      >
        <label>
          Workflow file in your home
          <input
            className="jp-mod-styled"
            data-testid="dshare-approval-path"
            value={path}
            onChange={e => setPath(e.target.value)}
          />
        </label>
        <button
          type="submit"
          className="jp-mod-styled jp-mod-accept"
          data-testid="dshare-request-approval"
          disabled={busy || !path.trim()}
        >
          Request approval
        </button>
      </form>
      {items.length > 0 && (
        <ul className="jp-dshare-list" aria-label="My code approval requests">
          {items.map(a => (
            <li
              key={a.id}
              data-testid="dshare-my-approval"
              data-approval-id={a.id}
              data-state={a.state}
            >
              <div>
                code {shortDigest(a.code_sha256)} for {a.dataset_ids.join(', ')}
                : {STATE_TEXT[a.state]} {a.owner_org}
              </div>
              <div className="jp-dshare-meta">
                requested {formatTime(a.requested_at)}
                {a.decided_at
                  ? ` · decided ${formatTime(a.decided_at)}`
                  : ''} · {a.files.map(f => f.path).join(', ') || 'no files'}
              </div>
              {a.reason && (
                <div data-testid="dshare-approval-reason">
                  {a.state === 'denied' ? 'Reason' : 'Note'}: {a.reason}
                </div>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
