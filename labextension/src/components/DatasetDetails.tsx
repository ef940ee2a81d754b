import React from 'react';

import { formatCountdown, formatDuration, formatTime } from '../time';
import { IDataset, IHistoryEntry, ILease } from '../types';
import { InlineError, Loading, Tags, useNow } from './common';
import { IExplorerHost } from './context';
import { LeaseForm } from './LeaseForm';
import { MockPreview } from './MockPreview';
import { SkeletonTree } from './SkeletonTree';

export interface IDatasetDetailsProps {
  host: IExplorerHost;
  datasetId: string;
  myLeases: ILease[];
  isOwnerAdmin(dataset: IDataset): boolean;
  onBack(): void;
  onChanged(): void;
  onEdit(dataset: IDataset): void;
}

export const RETIRE_EXPLANATION =
  'Retiring removes the dataset from the catalogue and crypto-shreds it: the broker ' +
  'destroys the data key that seals its storage details, so no one, including your ' +
  'organization, can mount it through dshare again. Active leases end. The ledger keeps ' +
  'its history. This cannot be undone.';

/** Description, columns, skeleton, policy, history and the lease actions. */
export function DatasetDetails(props: IDatasetDetailsProps): JSX.Element {
  const { host, datasetId, myLeases } = props;
  const [dataset, setDataset] = React.useState<IDataset | null>(null);
  const [history, setHistory] = React.useState<IHistoryEntry[] | null>(null);
  const [error, setError] = React.useState<unknown>(null);
  const [version, setVersion] = React.useState(0);
  const now = useNow();

  React.useEffect(() => {
    let cancelled = false;
    Promise.all([
      host.client.getDataset(datasetId),
      host.client.history(datasetId)
    ]).then(
      ([d, h]) => {
        if (!cancelled) {
          setDataset(d);
          setHistory(h.items);
        }
      },
      err => {
        if (!cancelled) {
          setError(err);
          host.notifyError('Loading the dataset', err);
        }
      }
    );
    return () => {
      cancelled = true;
    };
  }, [datasetId, version]);

  const reload = () => {
    setVersion(version + 1);
    props.onChanged();
  };

  if (error) {
    return (
      <div data-testid="dshare-details">
        <button
          className="jp-mod-styled"
          onClick={props.onBack}
          aria-label="Back to datasets"
        >
          ← Datasets
        </button>
        <InlineError error={error} />
      </div>
    );
  }
  if (!dataset) {
    return <Loading label="Loading dataset…" />;
  }
  const mine = myLeases.filter(
    l =>
      l.asset_id === dataset.id &&
      (l.state === 'active' || l.state === 'pending')
  );
  const active = mine.find(l => l.state === 'active');

  const release = async (lease: ILease) => {
    try {
      await host.client.releaseLease(lease.id);
      host.notifySuccess(`Released your lease on ${dataset.name}.`);
      reload();
    } catch (err) {
      host.notifyError('Releasing the lease', err);
    }
  };
  const addToWorkflow = async (lease: ILease) => {
    try {
      await host.addToWorkflow(lease, dataset.name);
    } catch (err) {
      host.notifyError('Adding to workflow.yaml', err);
    }
  };
  const retire = async () => {
    const ok = await host.confirm(
      `Retire ${dataset.name}?`,
      RETIRE_EXPLANATION,
      'Retire'
    );
    if (!ok) {
      return;
    }
    try {
      await host.client.retireDataset(dataset.id);
      host.notifySuccess(`Retired ${dataset.name}; its data key is destroyed.`);
      reload();
    } catch (err) {
      host.notifyError('Retiring the dataset', err);
    }
  };
  const p = dataset.policy;

  return (
    <div className="jp-dshare-details" data-testid="dshare-details">
      <button
        className="jp-mod-styled"
        onClick={props.onBack}
        aria-label="Back to datasets"
      >
        ← Datasets
      </button>
      <h2 className="jp-dshare-title">
        <span data-testid="dshare-dataset-name">{dataset.name}</span>
        <span className="jp-dshare-owner"> · {dataset.owner_org}</span>
      </h2>
      <Tags tags={dataset.tags} />
      <p data-testid="dshare-details-description">{dataset.description}</p>
      <div className="jp-dshare-meta">
        state: {dataset.state} · storage: {dataset.storage_type} · active
        leases: {dataset.active_leases}
      </div>

      <section aria-label="Actions" className="jp-dshare-actions">
        {mine.map(l => (
          <div
            key={l.id}
            className="jp-dshare-mylease"
            data-testid="dshare-my-lease"
          >
            <span data-testid="dshare-lease-countdown">
              {l.state === 'pending'
                ? 'Your lease request is pending approval.'
                : `Your lease ends in ${formatCountdown(l.expires_at, now)}.`}
            </span>
            {l.state === 'active' && (
              <button
                className="jp-mod-styled jp-mod-accept"
                data-testid="dshare-add-to-workflow"
                onClick={() => addToWorkflow(l)}
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
        ))}
        {!active && dataset.state === 'active' && (
          <LeaseForm host={host} dataset={dataset} onLeased={reload} />
        )}
        <button
          className="jp-mod-styled"
          data-testid="dshare-open-skeleton"
          onClick={() => host.openSkeleton(dataset)}
        >
          Open skeleton
        </button>
        {props.isOwnerAdmin(dataset) && dataset.state === 'active' && (
          <>
            <button
              className="jp-mod-styled"
              data-testid="dshare-edit"
              onClick={() => props.onEdit(dataset)}
            >
              Update
            </button>
            <button
              className="jp-mod-styled jp-mod-warn"
              data-testid="dshare-retire"
              onClick={retire}
            >
              Retire
            </button>
          </>
        )}
      </section>

      <section aria-label="Columns">
        <h3>Columns</h3>
        {dataset.columns.length === 0 ? (
          <div>No column schema published.</div>
        ) : (
          <table className="jp-dshare-table" data-testid="dshare-columns">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Type</th>
                <th scope="col">Tags</th>
              </tr>
            </thead>
            <tbody>
              {dataset.columns.map(c => (
                <tr key={c.name}>
                  <td>{c.name}</td>
                  <td>{c.type}</td>
                  <td>{c.tags.join(', ')}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>

      {dataset.columns.length > 0 && dataset.state === 'active' && (
        <MockPreview
          host={host}
          dataset={dataset}
          canSynthesize={props.isOwnerAdmin(dataset)}
          onSynthesized={reload}
        />
      )}

      <section aria-label="Directory skeleton">
        <h3>Directory skeleton</h3>
        <SkeletonTree entries={dataset.skeleton} />
      </section>

      <section aria-label="Lease policy" data-testid="dshare-policy">
        <h3>Lease policy</h3>
        <ul>
          <li>Longest lease: {formatDuration(p.max_duration_s)}</li>
          <li>{p.exclusive ? 'Exclusive: one lessee at a time' : 'Shared'}</li>
          <li>
            Concurrent leases:{' '}
            {p.max_concurrent ? `at most ${p.max_concurrent}` : 'no limit'}
          </li>
          <li>
            Organizations:{' '}
            {p.allowed_orgs.length
              ? p.allowed_orgs.join(', ')
              : 'any member organization'}
          </li>
          <li>
            {p.approval_required
              ? 'Owner approves each lease'
              : 'Granted at once'}
          </li>
          {p.code_approval_required && (
            <li data-testid="dshare-policy-code-approval">
              Runs need code the owner approved (request it in My runs)
            </li>
          )}
          <li>
            {p.interactive
              ? 'Mounted read-only in your notebook server'
              : 'Workflows only: your server sees the skeleton, jobs see the data'}
          </li>
        </ul>
      </section>

      <section aria-label="History">
        <h3>History</h3>
        {history === null || history.length === 0 ? (
          <div>No history.</div>
        ) : (
          <ol className="jp-dshare-timeline" data-testid="dshare-history">
            {history.map(h => (
              <li key={h.tx_id} data-testid="dshare-history-entry">
                <time dateTime={h.timestamp}>{formatTime(h.timestamp)}</time>{' '}
                <strong>{h.actor}</strong> ({h.org}) {h.action}
              </li>
            ))}
          </ol>
        )}
      </section>
    </div>
  );
}
