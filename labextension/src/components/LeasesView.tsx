import React from 'react';

import { formatCountdown, formatTime } from '../time';
import { ILease } from '../types';
import { Empty, Loading, useNow } from './common';
import { IExplorerHost } from './context';

/** My leases, newest first, with countdowns and release/add actions. */
export function LeasesView(props: {
  host: IExplorerHost;
  leases: ILease[] | null;
  onChanged(): void;
}): JSX.Element {
  const { host, leases } = props;
  const now = useNow();
  if (leases === null) {
    return <Loading label="Loading leases…" />;
  }
  if (leases.length === 0) {
    return <Empty>You hold no leases. Open a dataset and request one.</Empty>;
  }
  const release = async (l: ILease) => {
    try {
      await host.client.releaseLease(l.id);
      host.notifySuccess(`Released your lease on ${l.asset_name}.`);
      props.onChanged();
    } catch (err) {
      host.notifyError('Releasing the lease', err);
    }
  };
  return (
    <ul
      className="jp-dshare-list"
      aria-label="My leases"
      data-testid="dshare-my-leases"
    >
      {leases.map(l => (
        <li
          key={l.id}
          data-testid="dshare-lease-item"
          data-lease-id={l.id}
          data-state={l.state}
        >
          <div>
            <strong>{l.asset_name}</strong> ({l.owner_org}) · {l.state}
          </div>
          <div className="jp-dshare-meta">
            {l.state === 'active'
              ? `ends in ${formatCountdown(l.expires_at, now)}`
              : `requested ${formatTime(l.requested_at)}`}{' '}
            · {l.purpose}
          </div>
          {(l.state === 'active' || l.state === 'pending') && (
            <div className="jp-dshare-actions">
              {l.state === 'active' && (
                <button
                  className="jp-mod-styled"
                  data-testid="dshare-add-to-workflow"
                  onClick={() =>
                    host
                      .addToWorkflow(l, l.asset_name)
                      .catch(err =>
                        host.notifyError('Adding to workflow.yaml', err)
                      )
                  }
                >
                  Add to workflow
                </button>
              )}
              <button
                className="jp-mod-styled"
                data-testid="dshare-release"
                onClick={() => release(l)}
              >
                {l.state === 'pending' ? 'Withdraw' : 'Release'}
              </button>
            </div>
          )}
        </li>
      ))}
    </ul>
  );
}
