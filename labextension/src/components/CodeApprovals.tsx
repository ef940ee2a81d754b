import React from 'react';

import { shortDigest } from '../outputs';
import { formatTime } from '../time';
import { ICodeApproval } from '../types';
import { Empty, Loading } from './common';
import { IExplorerHost } from './context';

/** For org admins: code that scientists want to run over the org's datasets, with the
 * workflow, every file and a diff against the latest approved version. Approving or
 * denying (with a reason the scientist reads) is a ledger transaction. */
export function CodeApprovals(props: {
  host: IExplorerHost;
  refreshToken: number;
}): JSX.Element {
  const { host, refreshToken } = props;
  const [items, setItems] = React.useState<ICodeApproval[] | null>(null);
  const [version, setVersion] = React.useState(0);
  const [denying, setDenying] = React.useState<string | null>(null);
  const [reason, setReason] = React.useState('');

  React.useEffect(() => {
    let cancelled = false;
    host.client.listApprovals('review').then(
      page => !cancelled && setItems(page.items),
      err => {
        if (!cancelled) {
          setItems([]);
          host.notifyError('Loading code approval requests', err);
        }
      }
    );
    return () => {
      cancelled = true;
    };
  }, [refreshToken, version]);

  const decide = async (a: ICodeApproval, decision: 'approve' | 'deny') => {
    try {
      await host.client.decideApproval(a.id, decision, reason.trim());
      host.notifySuccess(
        `${decision === 'approve' ? 'Approved' : 'Denied'} the code of ${a.user} (${a.org}) for ${a.dataset_ids.join(', ')}.`
      );
      setDenying(null);
      setReason('');
      setVersion(version + 1);
    } catch (err) {
      host.notifyError(
        `${decision === 'approve' ? 'Approving' : 'Denying'} the code`,
        err
      );
    }
  };

  if (items === null) {
    return <Loading label="Loading code approval requests…" />;
  }
  const pending = items.filter(a => a.state === 'pending');
  if (pending.length === 0) {
    return <Empty>No code waits for your organization’s approval.</Empty>;
  }
  return (
    <ul
      className="jp-dshare-list"
      aria-label="Code approval requests"
      data-testid="dshare-code-approvals"
    >
      {pending.map(a => (
        <li
          key={a.id}
          data-testid="dshare-code-approval"
          data-approval-id={a.id}
        >
          <div>
            <strong>{a.user}</strong> ({a.org}) wants to run code over{' '}
            <strong>{a.dataset_ids.join(', ')}</strong>
          </div>
          <div className="jp-dshare-meta">
            {formatTime(a.requested_at)} · code{' '}
            <span title={`SHA-256 ${a.code_sha256}`}>
              {shortDigest(a.code_sha256)}
            </span>
            {a.previous
              ? ` · compared with approval ${a.previous.id}`
              : ' · no earlier approved version'}
          </div>
          <details>
            <summary>Workflow</summary>
            <pre data-testid="dshare-code-spec">{a.spec ?? ''}</pre>
          </details>
          <ul aria-label={`Files of request ${a.id}`}>
            {a.files.map(f => (
              <li
                key={f.path}
                data-testid="dshare-code-file"
                data-path={f.path}
              >
                <details>
                  <summary>
                    <code>{f.path}</code> ·{' '}
                    <span title={`SHA-256 ${f.sha256}`}>
                      {shortDigest(f.sha256)}
                    </span>
                  </summary>
                  <pre>
                    {f.content === null || f.content === undefined
                      ? '(binary or too large to show: compare its SHA-256)'
                      : f.content}
                  </pre>
                </details>
              </li>
            ))}
          </ul>
          <h4>Changes</h4>
          <pre className="jp-dshare-diff" data-testid="dshare-code-diff">
            {a.diff || '(no changes against the approved version)'}
          </pre>
          {denying === a.id ? (
            <form
              onSubmit={e => {
                e.preventDefault();
                void decide(a, 'deny');
              }}
            >
              <label>
                Reason (the scientist sees it)
                <input
                  className="jp-mod-styled"
                  data-testid="dshare-code-deny-reason"
                  value={reason}
                  required
                  onChange={e => setReason(e.target.value)}
                />
              </label>
              <button
                type="submit"
                className="jp-mod-styled jp-mod-warn"
                data-testid="dshare-code-deny-confirm"
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
                data-testid="dshare-code-approve"
                aria-label={`Approve the code of ${a.user} for ${a.dataset_ids.join(', ')}`}
                onClick={() => decide(a, 'approve')}
              >
                Approve
              </button>
              <button
                className="jp-mod-styled jp-mod-warn"
                data-testid="dshare-code-deny"
                aria-label={`Deny the code of ${a.user} for ${a.dataset_ids.join(', ')}`}
                onClick={() => {
                  setDenying(a.id);
                  setReason('');
                }}
              >
                Deny…
              </button>
            </>
          )}
        </li>
      ))}
    </ul>
  );
}
