import React from 'react';

import { formatDuration, formatTime } from '../time';
import { ILease } from '../types';
import { Empty, Loading } from './common';
import { IExplorerHost } from './context';
import { DatasetForm } from './DatasetForm';
import { CodeApprovals } from './CodeApprovals';
import { HeldOutputs } from './HeldOutputs';

/** For org admins: register datasets, decide pending lease requests and held outputs. */
export function AdminView(props: {
  host: IExplorerHost;
  refreshToken: number;
  onChanged(): void;
}): JSX.Element {
  const { host, refreshToken } = props;
  const [pending, setPending] = React.useState<ILease[] | null>(null);
  const [registering, setRegistering] = React.useState(false);
  const [version, setVersion] = React.useState(0);

  React.useEffect(() => {
    let cancelled = false;
    host.client.listLeases('pending').then(
      page => !cancelled && setPending(page.items),
      err => {
        if (!cancelled) {
          setPending([]);
          host.notifyError('Loading pending lease requests', err);
        }
      }
    );
    return () => {
      cancelled = true;
    };
  }, [refreshToken, version]);

  const decide = async (l: ILease, decision: 'approve' | 'reject') => {
    try {
      await host.client.decideLease(l.id, decision);
      host.notifySuccess(
        `${decision === 'approve' ? 'Approved' : 'Rejected'} ${l.lessee_user}’s lease on ${l.asset_name}.`
      );
      setVersion(version + 1);
      props.onChanged();
    } catch (err) {
      host.notifyError(
        `${decision === 'approve' ? 'Approving' : 'Rejecting'} the lease`,
        err
      );
    }
  };

  return (
    <div className="jp-dshare-admin" data-testid="dshare-admin">
      {registering ? (
        <DatasetForm
          host={host}
          onDone={() => {
            setRegistering(false);
            props.onChanged();
          }}
          onCancel={() => setRegistering(false)}
        />
      ) : (
        <button
          className="jp-mod-styled jp-mod-accept"
          data-testid="dshare-register"
          onClick={() => setRegistering(true)}
        >
          Register a dataset
        </button>
      )}
      <h3>Pending lease requests</h3>
      {pending === null ? (
        <Loading label="Loading requests…" />
      ) : pending.length === 0 ? (
        <Empty>No lease requests wait for your organization.</Empty>
      ) : (
        <ul
          className="jp-dshare-list"
          aria-label="Pending lease requests"
          data-testid="dshare-pending-list"
        >
          {pending.map(l => (
            <li
              key={l.id}
              data-testid="dshare-pending-item"
              data-lease-id={l.id}
            >
              <div>
                <strong>{l.lessee_user}</strong> ({l.lessee_org}) wants{' '}
                <strong>{l.asset_name}</strong> for{' '}
                {formatDuration(l.duration_s)}
              </div>
              <div className="jp-dshare-meta">
                {formatTime(l.requested_at)} · purpose: {l.purpose}
              </div>
              <button
                className="jp-mod-styled jp-mod-accept"
                data-testid="dshare-approve"
                aria-label={`Approve ${l.lessee_user}'s lease on ${l.asset_name}`}
                onClick={() => decide(l, 'approve')}
              >
                Approve
              </button>
              <button
                className="jp-mod-styled jp-mod-warn"
                data-testid="dshare-reject"
                aria-label={`Reject ${l.lessee_user}'s lease on ${l.asset_name}`}
                onClick={() => decide(l, 'reject')}
              >
                Reject
              </button>
            </li>
          ))}
        </ul>
      )}
      <h3>Held outputs</h3>
      <HeldOutputs host={host} refreshToken={refreshToken} />
      <h3>Code approval requests</h3>
      <CodeApprovals host={host} refreshToken={refreshToken} />
    </div>
  );
}
