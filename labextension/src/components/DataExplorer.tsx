import React from 'react';

import { IDataset, ILease, IMe } from '../types';
import { AdminView } from './AdminView';
import { IExplorerHost } from './context';
import { DatasetDetails } from './DatasetDetails';
import { DatasetForm } from './DatasetForm';
import { DatasetList } from './DatasetList';
import { LeasesView } from './LeasesView';
import { RunsView } from './RunsView';

type Tab = 'datasets' | 'leases' | 'runs' | 'admin';

const TAB_LABELS: Record<Tab, string> = {
  datasets: 'Datasets',
  leases: 'My leases',
  runs: 'My runs',
  admin: 'Admin'
};

export interface IDataExplorerProps {
  host: IExplorerHost;
  /** Bumped by the "refresh" command and the refresh timer. */
  refreshToken: number;
}

/** The DataExplorer sidebar: datasets, my leases, my runs, and admin tools. */
export function DataExplorer(props: IDataExplorerProps): JSX.Element {
  const { host } = props;
  const [me, setMe] = React.useState<IMe | null>(null);
  const [tab, setTab] = React.useState<Tab>('datasets');
  const [selected, setSelected] = React.useState<string | null>(null);
  const [editing, setEditing] = React.useState<IDataset | null>(null);
  const [leases, setLeases] = React.useState<ILease[] | null>(null);
  const [localToken, setLocalToken] = React.useState(0);
  const token = props.refreshToken + localToken;
  const changed = () => setLocalToken(t => t + 1);

  React.useEffect(() => {
    host.client
      .me()
      .then(setMe, err => host.notifyError('Loading your identity', err));
  }, []);

  React.useEffect(() => {
    let cancelled = false;
    host.client.listLeases('mine').then(
      page => !cancelled && setLeases(page.items),
      err => {
        if (!cancelled) {
          setLeases([]);
          host.notifyError('Loading your leases', err);
        }
      }
    );
    return () => {
      cancelled = true;
    };
  }, [token]);

  const isAdmin = !!me && me.roles.includes('admin');
  const tabs: Tab[] = isAdmin
    ? ['datasets', 'leases', 'runs', 'admin']
    : ['datasets', 'leases', 'runs'];
  const isOwnerAdmin = (d: IDataset) =>
    isAdmin && !!me && me.org === d.owner_org;

  const onTabKey = (e: React.KeyboardEvent, i: number) => {
    // Arrow keys move between tabs, as ARIA's tab pattern expects.
    const delta = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
    if (delta) {
      e.preventDefault();
      const next = tabs[(i + delta + tabs.length) % tabs.length];
      setTab(next);
      document.getElementById(`dshare-tab-${next}`)?.focus();
    }
  };

  let body: JSX.Element;
  if (tab === 'datasets' && editing) {
    body = (
      <DatasetForm
        host={host}
        existing={editing}
        onDone={() => {
          setEditing(null);
          changed();
        }}
        onCancel={() => setEditing(null)}
      />
    );
  } else if (tab === 'datasets' && selected) {
    body = (
      <DatasetDetails
        key={`${selected}-${token}`}
        host={host}
        datasetId={selected}
        myLeases={leases ?? []}
        isOwnerAdmin={isOwnerAdmin}
        onBack={() => setSelected(null)}
        onChanged={changed}
        onEdit={setEditing}
      />
    );
  } else if (tab === 'datasets') {
    body = (
      <DatasetList
        host={host}
        myLeases={leases ?? []}
        refreshToken={token}
        onSelect={d => setSelected(d.id)}
      />
    );
  } else if (tab === 'leases') {
    body = <LeasesView host={host} leases={leases} onChanged={changed} />;
  } else if (tab === 'runs') {
    body = <RunsView host={host} refreshToken={token} />;
  } else {
    body = <AdminView host={host} refreshToken={token} onChanged={changed} />;
  }

  return (
    <div className="jp-dshare-explorer" data-testid="dshare-explorer">
      <header className="jp-dshare-header">
        <h2>DataExplorer</h2>
        {me && (
          <span className="jp-dshare-meta" data-testid="dshare-me">
            {me.user} · {me.org}
            {isAdmin ? ' · admin' : ''}
          </span>
        )}
        <button
          className="jp-mod-styled"
          aria-label="Refresh DataExplorer"
          data-testid="dshare-refresh"
          onClick={changed}
        >
          ⟳
        </button>
      </header>
      <div
        role="tablist"
        aria-label="DataExplorer sections"
        className="jp-dshare-tabs"
      >
        {tabs.map((t, i) => (
          <button
            key={t}
            id={`dshare-tab-${t}`}
            role="tab"
            aria-selected={tab === t}
            aria-controls="dshare-tabpanel"
            tabIndex={tab === t ? 0 : -1}
            data-testid={`dshare-tab-${t}`}
            className={
              tab === t ? 'jp-dshare-tab jp-mod-active' : 'jp-dshare-tab'
            }
            onClick={() => setTab(t)}
            onKeyDown={e => onTabKey(e, i)}
          >
            {TAB_LABELS[t]}
          </button>
        ))}
      </div>
      <div
        id="dshare-tabpanel"
        role="tabpanel"
        aria-labelledby={`dshare-tab-${tab}`}
        className="jp-dshare-panel"
      >
        {body}
      </div>
    </div>
  );
}
