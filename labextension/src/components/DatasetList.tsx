import React from 'react';

import { formatCountdown } from '../time';
import { IDataset, IDatasetFilters, ILease } from '../types';
import { Empty, InlineError, Loading, Tags, useNow } from './common';
import { IExplorerHost } from './context';

export interface IDatasetListProps {
  host: IExplorerHost;
  myLeases: ILease[];
  refreshToken: number;
  onSelect(dataset: IDataset): void;
}

function availability(d: IDataset): string {
  if (d.state !== 'active') {
    return d.state;
  }
  if (d.policy.exclusive && d.active_leases > 0) {
    return 'leased';
  }
  if (
    d.policy.max_concurrent !== null &&
    d.policy.max_concurrent > 0 &&
    d.active_leases >= d.policy.max_concurrent
  ) {
    return 'full';
  }
  return 'available';
}

/** Search and filters over the ledger's datasets, with my lease countdowns. */
export function DatasetList(props: IDatasetListProps): JSX.Element {
  const { host, myLeases, refreshToken, onSelect } = props;
  const [filters, setFilters] = React.useState<IDatasetFilters>({});
  const [items, setItems] = React.useState<IDataset[] | null>(null);
  const [error, setError] = React.useState<unknown>(null);
  const now = useNow();

  React.useEffect(() => {
    let cancelled = false;
    // Debounce typing so a search is one request, not one per key.
    const t = setTimeout(() => {
      host.client.listDatasets(filters).then(
        page => {
          if (!cancelled) {
            setItems(page.items);
            setError(null);
          }
        },
        err => {
          if (!cancelled) {
            setError(err);
            setItems([]);
            host.notifyError('Loading datasets', err);
          }
        }
      );
    }, 250);
    return () => {
      cancelled = true;
      clearTimeout(t);
    };
  }, [filters, refreshToken]);

  const set = (patch: IDatasetFilters) => setFilters({ ...filters, ...patch });
  const leaseFor = (id: string) =>
    myLeases.find(
      l => l.asset_id === id && (l.state === 'active' || l.state === 'pending')
    );

  return (
    <div className="jp-dshare-datasets">
      <div className="jp-dshare-filters" role="search">
        <input
          className="jp-mod-styled jp-dshare-search"
          type="search"
          placeholder="Search datasets"
          aria-label="Search datasets"
          data-testid="dshare-search"
          value={filters.q ?? ''}
          onChange={e => set({ q: e.target.value })}
        />
        <input
          className="jp-mod-styled"
          placeholder="Organization"
          aria-label="Filter by organization"
          data-testid="dshare-filter-org"
          value={filters.org ?? ''}
          onChange={e => set({ org: e.target.value })}
        />
        <input
          className="jp-mod-styled"
          placeholder="Tag"
          aria-label="Filter by tag"
          data-testid="dshare-filter-tag"
          value={filters.tag ?? ''}
          onChange={e => set({ tag: e.target.value })}
        />
        <select
          className="jp-mod-styled"
          aria-label="Filter by storage type"
          data-testid="dshare-filter-storage"
          value={filters.storage ?? ''}
          onChange={e => set({ storage: e.target.value })}
        >
          <option value="">Any storage</option>
          {['local', 'hostpath', 'nfs', 'azurefile', 's3', 'gcs'].map(s => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <label className="jp-dshare-check">
          <input
            type="checkbox"
            data-testid="dshare-filter-available"
            checked={!!filters.available}
            onChange={e => set({ available: e.target.checked })}
          />{' '}
          Available now
        </label>
      </div>
      <InlineError error={error} />
      {items === null ? (
        <Loading label="Loading datasets…" />
      ) : items.length === 0 ? (
        <Empty>
          No datasets match. Clear the filters or ask an organization to publish
          one.
        </Empty>
      ) : (
        <ul
          className="jp-dshare-list"
          aria-label="Datasets"
          data-testid="dshare-dataset-list"
        >
          {items.map(d => {
            const lease = leaseFor(d.id);
            return (
              <li
                key={d.id}
                data-testid="dshare-dataset-item"
                data-dataset-id={d.id}
              >
                <button
                  className="jp-dshare-item"
                  aria-label={`Open dataset ${d.name} from ${d.owner_org}`}
                  onClick={() => onSelect(d)}
                >
                  <span
                    className="jp-dshare-owner"
                    data-testid="dshare-dataset-owner"
                  >
                    {d.owner_org}
                  </span>
                  <span
                    className="jp-dshare-name"
                    data-testid="dshare-dataset-name"
                  >
                    {d.name}
                  </span>
                  <Tags tags={d.tags} />
                  <span
                    className="jp-dshare-availability"
                    data-testid="dshare-dataset-availability"
                  >
                    {availability(d)}
                  </span>
                  {lease && (
                    <span
                      className="jp-dshare-countdown"
                      data-testid="dshare-lease-countdown"
                    >
                      {lease.state === 'pending'
                        ? 'my lease: pending'
                        : `my lease: ${formatCountdown(lease.expires_at, now)}`}
                    </span>
                  )}
                </button>
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}
