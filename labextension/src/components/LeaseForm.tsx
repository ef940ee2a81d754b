import React from 'react';

import { errorText } from '../notify';
import { formatDuration, formatTime } from '../time';
import { IDataset, ILease } from '../types';
import { IExplorerHost } from './context';

/** Request a lease within the dataset's policy; shows granted or pending. */
export function LeaseForm(props: {
  host: IExplorerHost;
  dataset: IDataset;
  onLeased(lease: ILease): void;
}): JSX.Element {
  const { host, dataset, onLeased } = props;
  const maxHours = dataset.policy.max_duration_s / 3600;
  const [hours, setHours] = React.useState(
    String(Math.min(host.settings.defaultLeaseHours, maxHours))
  );
  const [purpose, setPurpose] = React.useState('');
  const [problem, setProblem] = React.useState('');
  const [busy, setBusy] = React.useState(false);
  const [result, setResult] = React.useState<ILease | null>(null);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const h = Number(hours);
    if (!Number.isFinite(h) || h <= 0) {
      setProblem('Duration must be a positive number of hours.');
      return;
    }
    const seconds = Math.round(h * 3600);
    if (seconds > dataset.policy.max_duration_s) {
      setProblem(
        `Duration must be at most ${formatDuration(dataset.policy.max_duration_s)} ` +
          '(the owner’s policy).'
      );
      return;
    }
    if (!purpose.trim()) {
      setProblem('Purpose is required: the owner sees it on the ledger.');
      return;
    }
    setProblem('');
    setBusy(true);
    try {
      const lease = await host.client.requestLease(
        dataset.id,
        seconds,
        purpose.trim()
      );
      setResult(lease);
      onLeased(lease);
      if (lease.state === 'active' && dataset.policy.interactive) {
        // The data itself appears at ~/datasets now rather than at the next refresh.
        host.client
          .refreshViews()
          .catch(err =>
            host.notifyError(`Linking ${dataset.name} into ~/datasets`, err)
          );
      }
    } catch (err) {
      // Next to the form as well as in the notification: the notification may be
      // closed or buried, and the form is where the person fixes the request.
      setProblem(`The server refused the lease: ${errorText(err)}`);
      host.notifyError('Requesting a lease', err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form
      className="jp-dshare-form"
      onSubmit={submit}
      aria-label="Request a lease"
    >
      <label>
        Duration (hours, at most {formatDuration(dataset.policy.max_duration_s)}
        )
        <input
          className="jp-mod-styled"
          type="number"
          min="0"
          step="any"
          data-testid="dshare-lease-duration"
          value={hours}
          onChange={e => setHours(e.target.value)}
        />
      </label>
      <label>
        Purpose
        <input
          className="jp-mod-styled"
          data-testid="dshare-lease-purpose"
          value={purpose}
          onChange={e => setPurpose(e.target.value)}
        />
      </label>
      {problem && (
        <div
          className="jp-dshare-error"
          role="alert"
          data-testid="dshare-form-error"
        >
          {problem}
        </div>
      )}
      <button
        type="submit"
        className="jp-mod-styled jp-mod-accept"
        disabled={busy}
        data-testid="dshare-lease-submit"
      >
        Request lease
      </button>
      {result && (
        <div
          role="status"
          data-testid="dshare-lease-result"
          data-state={result.state}
        >
          {result.state === 'active'
            ? `Granted until ${formatTime(result.expires_at)}.`
            : result.state === 'pending'
              ? `Pending: waiting for ${result.owner_org} to approve.`
              : `Lease ${result.state}.`}
        </div>
      )}
    </form>
  );
}
