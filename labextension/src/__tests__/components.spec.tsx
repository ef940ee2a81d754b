import {
  act,
  fireEvent,
  render,
  screen,
  waitFor
} from '@testing-library/react';
import React from 'react';

import { DataExplorer } from '../components/DataExplorer';
import {
  DatasetDetails,
  RETIRE_EXPLANATION
} from '../components/DatasetDetails';
import { DatasetForm, formField } from '../components/DatasetForm';
import { DatasetList } from '../components/DatasetList';
import { LeaseForm } from '../components/LeaseForm';
import { RunsView } from '../components/RunsView';
import { DShareError } from '../request';
import { HeldOutputs } from '../components/HeldOutputs';
import { dataset, fakeClient, fakeHost, lease, output, run } from './fixtures';

const XSS =
  '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';

async function flushDebounce() {
  await act(async () => {
    jest.advanceTimersByTime(300);
  });
}

describe('DatasetList', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('renders ledger text inertly: an HTML/script payload in a name stays text', async () => {
    const client = fakeClient({
      listDatasets: async () => ({
        items: [
          dataset({ name: XSS, owner_org: '<b>UiS</b>', tags: ['<i>t</i>'] })
        ]
      })
    });
    const { container } = render(
      <DatasetList
        host={fakeHost(client)}
        myLeases={[]}
        refreshToken={0}
        onSelect={jest.fn()}
      />
    );
    await flushDebounce();
    const name = await screen.findByTestId('dshare-dataset-name');
    expect(name.textContent).toBe(XSS);
    expect(container.querySelector('img, script, b, i')).toBeNull();
    expect((window as any).__pwned).toBeUndefined();
  });

  it('shows owner, tags, availability and the countdown of my lease', async () => {
    const client = fakeClient({
      listDatasets: async () => ({
        items: [
          dataset(),
          dataset({
            id: 'ds-2',
            name: 'Exclusive',
            policy: { ...dataset().policy, exclusive: true },
            active_leases: 1
          })
        ]
      })
    });
    const expires = new Date(
      Date.now() + 2 * 3600_000 + 5 * 60_000 + 30_000
    ).toISOString();
    render(
      <DatasetList
        host={fakeHost(client)}
        myLeases={[lease({ expires_at: expires })]}
        refreshToken={0}
        onSelect={jest.fn()}
      />
    );
    await flushDebounce();
    const items = await screen.findAllByTestId('dshare-dataset-item');
    expect(items[0].textContent).toContain('UiS');
    expect(
      items[0].querySelector('[data-testid=dshare-dataset-tags]')?.textContent
    ).toBe('textnlp');
    expect(
      items[0].querySelector('[data-testid=dshare-dataset-availability]')
        ?.textContent
    ).toBe('available');
    expect(
      items[0].querySelector('[data-testid=dshare-lease-countdown]')
        ?.textContent
    ).toBe('my lease: 2h 05m');
    expect(
      items[1].querySelector('[data-testid=dshare-dataset-availability]')
        ?.textContent
    ).toBe('leased');
    expect(
      items[1].querySelector('[data-testid=dshare-lease-countdown]')
    ).toBeNull();
  });

  it('sends the search and filters to the server', async () => {
    const client = fakeClient();
    render(
      <DatasetList
        host={fakeHost(client)}
        myLeases={[]}
        refreshToken={0}
        onSelect={jest.fn()}
      />
    );
    await flushDebounce();
    fireEvent.change(screen.getByTestId('dshare-search'), {
      target: { value: 'word' }
    });
    fireEvent.change(screen.getByTestId('dshare-filter-storage'), {
      target: { value: 's3' }
    });
    fireEvent.click(screen.getByTestId('dshare-filter-available'));
    await flushDebounce();
    expect(client.listDatasets).toHaveBeenLastCalledWith({
      q: 'word',
      storage: 's3',
      available: true
    });
  });

  it('shows an empty state and reports a server error', async () => {
    const err = new DShareError(403, 'FORBIDDEN', 'user has no organization');
    const client = fakeClient({
      listDatasets: jest.fn().mockRejectedValue(err)
    });
    const host = fakeHost(client);
    render(
      <DatasetList
        host={host}
        myLeases={[]}
        refreshToken={0}
        onSelect={jest.fn()}
      />
    );
    expect(screen.getByTestId('dshare-loading')).toBeTruthy();
    await flushDebounce();
    expect(host.notifyError).toHaveBeenCalledWith('Loading datasets', err);
    expect(screen.getByTestId('dshare-inline-error').textContent).toBe(
      'FORBIDDEN: user has no organization'
    );
    expect(screen.getByTestId('dshare-empty')).toBeTruthy();
  });
});

describe('LeaseForm', () => {
  it.each([
    ['active', /^Granted until /],
    ['pending', /^Pending: waiting for UiS to approve\.$/]
  ])('shows a %s lease result', async (state, text) => {
    const client = fakeClient({
      requestLease: async () => lease({ state: state as any })
    });
    const onLeased = jest.fn();
    render(
      <LeaseForm
        host={fakeHost(client)}
        dataset={dataset()}
        onLeased={onLeased}
      />
    );
    fireEvent.change(screen.getByTestId('dshare-lease-duration'), {
      target: { value: '1.5' }
    });
    fireEvent.change(screen.getByTestId('dshare-lease-purpose'), {
      target: { value: ' thesis ' }
    });
    fireEvent.click(screen.getByTestId('dshare-lease-submit'));
    const result = await screen.findByTestId('dshare-lease-result');
    expect(result.textContent).toMatch(text);
    expect(client.requestLease).toHaveBeenCalledWith('ds-1', 5400, 'thesis');
    expect(onLeased).toHaveBeenCalled();
  });

  it('links an interactive dataset into ~/datasets as soon as it is granted', async () => {
    const interactive = dataset({
      policy: { ...dataset().policy, interactive: true }
    });
    const client = fakeClient({ requestLease: async () => lease() });
    render(
      <LeaseForm
        host={fakeHost(client)}
        dataset={interactive}
        onLeased={jest.fn()}
      />
    );
    fireEvent.change(screen.getByTestId('dshare-lease-purpose'), {
      target: { value: 'look' }
    });
    fireEvent.click(screen.getByTestId('dshare-lease-submit'));
    await screen.findByTestId('dshare-lease-result');
    await waitFor(() => expect(client.refreshViews).toHaveBeenCalledTimes(1));
  });

  it('does not ask for views of a workflow-only or pending lease', async () => {
    for (const [d, l] of [
      [dataset(), lease()],
      [
        dataset({ policy: { ...dataset().policy, interactive: true } }),
        lease({ state: 'pending' })
      ]
    ] as const) {
      const client = fakeClient({ requestLease: async () => l });
      const { unmount } = render(
        <LeaseForm host={fakeHost(client)} dataset={d} onLeased={jest.fn()} />
      );
      fireEvent.change(screen.getByTestId('dshare-lease-purpose'), {
        target: { value: 'look' }
      });
      fireEvent.click(screen.getByTestId('dshare-lease-submit'));
      await screen.findByTestId('dshare-lease-result');
      expect(client.refreshViews).not.toHaveBeenCalled();
      unmount();
    }
  });

  it('refuses a duration beyond the policy without calling the server', async () => {
    const client = fakeClient();
    render(
      <LeaseForm
        host={fakeHost(client)}
        dataset={dataset()}
        onLeased={jest.fn()}
      />
    );
    fireEvent.change(screen.getByTestId('dshare-lease-duration'), {
      target: { value: '3' }
    });
    fireEvent.change(screen.getByTestId('dshare-lease-purpose'), {
      target: { value: 'x' }
    });
    fireEvent.click(screen.getByTestId('dshare-lease-submit'));
    expect(screen.getByTestId('dshare-form-error').textContent).toBe(
      'Duration must be at most 2 hours (the owner’s policy).'
    );
    fireEvent.change(screen.getByTestId('dshare-lease-duration'), {
      target: { value: '1' }
    });
    fireEvent.change(screen.getByTestId('dshare-lease-purpose'), {
      target: { value: '  ' }
    });
    fireEvent.click(screen.getByTestId('dshare-lease-submit'));
    expect(screen.getByTestId('dshare-form-error').textContent).toBe(
      'Purpose is required: the owner sees it on the ledger.'
    );
    expect(client.requestLease).not.toHaveBeenCalled();
  });

  it("passes the server's refusal to the notification", async () => {
    const err = new DShareError(403, 'POLICY_DENIED', 'UiO may not lease ds-1');
    const client = fakeClient({
      requestLease: jest.fn().mockRejectedValue(err)
    });
    const host = fakeHost(client);
    render(<LeaseForm host={host} dataset={dataset()} onLeased={jest.fn()} />);
    fireEvent.change(screen.getByTestId('dshare-lease-purpose'), {
      target: { value: 'x' }
    });
    fireEvent.click(screen.getByTestId('dshare-lease-submit'));
    await waitFor(() =>
      expect(host.notifyError).toHaveBeenCalledWith('Requesting a lease', err)
    );
    expect(screen.getByTestId('dshare-form-error').textContent).toBe(
      'The server refused the lease: POLICY_DENIED: UiO may not lease ds-1'
    );
    expect(screen.queryByTestId('dshare-lease-result')).toBeNull();
  });
});

describe('DatasetDetails', () => {
  const props = {
    datasetId: 'ds-1',
    onBack: jest.fn(),
    onChanged: jest.fn(),
    onEdit: jest.fn()
  };

  it('shows description, columns, skeleton, policy and history as text', async () => {
    const client = fakeClient({
      getDataset: async () => dataset({ description: XSS }),
      history: async () => ({
        items: [
          {
            tx_id: 't1',
            timestamp: '2026-01-01T00:00:00Z',
            org: 'UiS',
            actor: 'bob',
            action: 'CreateAsset'
          },
          {
            tx_id: 't2',
            timestamp: '2026-01-02T00:00:00Z',
            org: 'UiO',
            actor: '<b>eve</b>',
            action: 'RequestLease'
          }
        ]
      })
    });
    const { container } = render(
      <DatasetDetails
        {...props}
        host={fakeHost(client)}
        myLeases={[]}
        isOwnerAdmin={() => false}
      />
    );
    expect(
      (await screen.findByTestId('dshare-details-description')).textContent
    ).toBe(XSS);
    expect(container.querySelector('img, script, b')).toBeNull();
    expect(screen.getByTestId('dshare-columns').textContent).toContain(
      'wordstringpii'
    );
    const nodes = screen
      .getAllByTestId('dshare-skeleton-node')
      .map(n => n.getAttribute('data-path'));
    expect(nodes).toEqual(['data', 'data/a.csv', 'README']);
    expect(screen.getByTestId('dshare-policy').textContent).toContain(
      'Longest lease: 2 hours'
    );
    const history = screen
      .getAllByTestId('dshare-history-entry')
      .map(e => e.textContent);
    expect(history[1]).toContain('<b>eve</b> (UiO) RequestLease');
    expect(screen.queryByTestId('dshare-retire')).toBeNull();
  });

  it('adds my active lease to the workflow and releases it', async () => {
    const client = fakeClient();
    const host = fakeHost(client);
    render(
      <DatasetDetails
        {...props}
        host={host}
        myLeases={[lease()]}
        isOwnerAdmin={() => false}
      />
    );
    fireEvent.click(await screen.findByTestId('dshare-add-to-workflow'));
    expect(host.addToWorkflow).toHaveBeenCalledWith(
      lease({ expires_at: expect.any(String) }),
      'Word counts'
    );
    fireEvent.click(screen.getByTestId('dshare-release'));
    await waitFor(() =>
      expect(client.releaseLease).toHaveBeenCalledWith('lease-1')
    );
    expect(host.notifySuccess).toHaveBeenCalledWith(
      'Released your lease on Word counts.'
    );
  });

  it('retires only after the crypto-shredding confirmation', async () => {
    const client = fakeClient();
    const confirm = jest
      .fn()
      .mockResolvedValueOnce(false)
      .mockResolvedValueOnce(true);
    const host = fakeHost(client, { confirm });
    render(
      <DatasetDetails
        {...props}
        host={host}
        myLeases={[]}
        isOwnerAdmin={() => true}
      />
    );
    fireEvent.click(await screen.findByTestId('dshare-retire'));
    await waitFor(() =>
      expect(confirm).toHaveBeenCalledWith(
        'Retire Word counts?',
        RETIRE_EXPLANATION,
        'Retire'
      )
    );
    expect(client.retireDataset).not.toHaveBeenCalled();
    fireEvent.click(screen.getByTestId('dshare-retire'));
    await waitFor(() =>
      expect(client.retireDataset).toHaveBeenCalledWith('ds-1')
    );
    expect(RETIRE_EXPLANATION).toContain('crypto-shreds');
  });
});

describe('DatasetForm', () => {
  it('sends secret fields once and clears them from the form', async () => {
    const client = fakeClient();
    render(
      <DatasetForm
        host={fakeHost(client)}
        onDone={jest.fn()}
        onCancel={jest.fn()}
      />
    );
    fireEvent.change(screen.getByTestId('dshare-field-name'), {
      target: { value: 'Shares' }
    });
    fireEvent.change(screen.getByTestId('dshare-field-storageType'), {
      target: { value: 's3' }
    });
    const secret = screen.getByTestId(
      'dshare-field-storage.secret_access_key'
    ) as HTMLInputElement;
    expect(secret.type).toBe('password');
    fireEvent.change(screen.getByTestId('dshare-field-storage.bucket'), {
      target: { value: 'b' }
    });
    fireEvent.change(screen.getByTestId('dshare-field-storage.access_key_id'), {
      target: { value: 'AK' }
    });
    fireEvent.change(secret, { target: { value: 'generated-at-test-time' } });
    fireEvent.click(screen.getByTestId('dshare-dataset-submit'));
    await waitFor(() => expect(client.createDataset).toHaveBeenCalled());
    expect(client.createDataset.mock.calls[0][0].storage).toEqual({
      type: 's3',
      details: {
        bucket: 'b',
        access_key_id: 'AK',
        secret_access_key: 'generated-at-test-time'
      }
    });
    await waitFor(() => expect(secret.value).toBe(''));
    expect(window.localStorage.length).toBe(0);
  });

  it('names the missing field and sends nothing', () => {
    const client = fakeClient();
    render(
      <DatasetForm
        host={fakeHost(client)}
        onDone={jest.fn()}
        onCancel={jest.fn()}
      />
    );
    fireEvent.change(screen.getByTestId('dshare-field-name'), {
      target: { value: 'x' }
    });
    fireEvent.click(screen.getByTestId('dshare-dataset-submit'));
    expect(screen.getByTestId('dshare-form-error').textContent).toBe(
      'Directory on the broker host is required.'
    );
    expect(
      screen
        .getByTestId('dshare-field-storage.path')
        .getAttribute('aria-invalid')
    ).toBe('true');
    expect(client.createDataset).not.toHaveBeenCalled();
  });

  it("shows the server's refusal in the form and marks the field it names", async () => {
    const err = new DShareError(
      400,
      'INVALID_ARGUMENT',
      'storage.details.path: local storage needs an absolute directory path',
      'storage.details.path'
    );
    const client = fakeClient({
      createDataset: jest.fn().mockRejectedValue(err)
    });
    const host = fakeHost(client);
    const onDone = jest.fn();
    render(<DatasetForm host={host} onDone={onDone} onCancel={jest.fn()} />);
    fireEvent.change(screen.getByTestId('dshare-field-name'), {
      target: { value: 'x' }
    });
    fireEvent.change(screen.getByTestId('dshare-field-storage.path'), {
      target: { value: 'relative/dir' }
    });
    fireEvent.click(screen.getByTestId('dshare-dataset-submit'));
    await waitFor(() =>
      expect(screen.getByTestId('dshare-form-error').textContent).toBe(
        'INVALID_ARGUMENT: storage.details.path: local storage needs an ' +
          'absolute directory path (field: storage.details.path)'
      )
    );
    expect(host.notifyError).toHaveBeenCalledWith(
      'Registering the dataset',
      err
    );
    expect(
      screen
        .getByTestId('dshare-field-storage.path')
        .getAttribute('aria-invalid')
    ).toBe('true');
    expect(onDone).not.toHaveBeenCalled();
  });

  it.each([
    ['storage.details.account_key', 'storage.account_key'],
    ['policy.max_duration_s', 'maxDurationHours'],
    ['policy.allowed_orgs', 'allowedOrgs'],
    ['columns[1].type', 'columns'],
    ['name', 'name'],
    [undefined, '']
  ])('maps the server field %s to the form field %s', (server, form) => {
    expect(formField(server)).toBe(form);
  });
});

describe('RunsView', () => {
  it('lists runs with job states and shows a log as text', async () => {
    const client = fakeClient({
      listRuns: async () => ({
        items: [
          {
            id: 'r1',
            name: 'count',
            user: 'alice',
            org: 'UiO',
            lease_ids: [],
            spec_sha256: '',
            state: 'running',
            outcome: null,
            started_at: null,
            finished_at: null,
            jobs: [
              {
                name: 'job-1',
                state: 'succeeded',
                exit_code: 0,
                started_at: null,
                finished_at: null
              }
            ]
          }
        ]
      }),
      jobLogs: async () => '<script>x</script>done\n'
    });
    render(<RunsView host={fakeHost(client)} refreshToken={0} />);
    const job = await screen.findByTestId('dshare-job-item');
    expect(job.textContent).toContain('job-1: succeeded (exit 0)');
    fireEvent.click(screen.getByTestId('dshare-job-logs'));
    const pre = await screen.findByTestId('dshare-logs');
    expect(pre.textContent).toBe('<script>x</script>done\n');
    expect(pre.querySelector('script')).toBeNull();
    expect(client.jobLogs).toHaveBeenCalledWith('r1', 'job-1');
  });
});

describe('RunsView outputs', () => {
  it('shows what was released, what is held and why, and the owner reason', async () => {
    const client = fakeClient({
      listRuns: async () => ({
        items: [
          run({
            outputs: [
              output({ path: 'counts.txt', decision: 'released', held_by: [] }),
              output(),
              output({
                path: 'rows.csv',
                decision: 'denied',
                decisions: {
                  UiS: {
                    approve: false,
                    reason: 'raw rows of the register',
                    actor: 'carol',
                    at: '2026-01-01T00:00:00Z'
                  }
                }
              })
            ]
          })
        ]
      })
    });
    render(<RunsView host={fakeHost(client)} refreshToken={0} />);
    const items = await screen.findAllByTestId('dshare-output-item');
    expect(
      items.map(i => [
        i.getAttribute('data-path'),
        i.querySelector('[data-testid="dshare-output-status"]')?.textContent
      ])
    ).toEqual([
      ['counts.txt', 'released into your home'],
      [
        'out/copy.txt',
        'held for UiS to review (verbatim_input: contains 4096 bytes copied ' +
          'from a leased file)'
      ],
      ['rows.csv', 'denied by UiS: raw rows of the register']
    ]);
  });
});

describe('HeldOutputs', () => {
  const queue = () => ({ items: [run({ outputs: [output()] })] });

  it('releases a held file and reloads the queue', async () => {
    const client = fakeClient({
      heldOutputs: jest
        .fn()
        .mockResolvedValueOnce(queue())
        .mockResolvedValue({ items: [] }),
      decideOutput: jest.fn().mockResolvedValue(run())
    });
    const host = fakeHost(client);
    render(<HeldOutputs host={host} refreshToken={0} />);
    const why = await screen.findByTestId('dshare-held-why');
    expect(why.textContent).toBe(
      'verbatim_input: contains 4096 bytes copied from a leased file'
    );
    fireEvent.click(screen.getByTestId('dshare-output-approve'));
    await waitFor(() =>
      expect(client.decideOutput).toHaveBeenCalledWith(
        'R-1',
        'out/copy.txt',
        true,
        ''
      )
    );
    expect(await screen.findByTestId('dshare-empty')).toBeTruthy();
    expect(host.notifySuccess).toHaveBeenCalledWith(
      'Released out/copy.txt of alice’s run count.'
    );
  });

  it('denies only with a reason, and shows the server refusal', async () => {
    const err = new DShareError(
      409,
      'INVALID_STATE',
      "output 'out/copy.txt' of run 'R-1' is already denied"
    );
    const client = fakeClient({
      heldOutputs: async () => queue(),
      decideOutput: jest.fn().mockRejectedValue(err)
    });
    const host = fakeHost(client);
    render(<HeldOutputs host={host} refreshToken={0} />);
    fireEvent.click(await screen.findByTestId('dshare-output-deny'));
    const confirm = screen.getByTestId(
      'dshare-deny-confirm'
    ) as HTMLButtonElement;
    expect(confirm.disabled).toBe(true);
    fireEvent.change(screen.getByTestId('dshare-deny-reason'), {
      target: { value: '  raw rows  ' }
    });
    fireEvent.click(confirm);
    await waitFor(() =>
      expect(client.decideOutput).toHaveBeenCalledWith(
        'R-1',
        'out/copy.txt',
        false,
        'raw rows'
      )
    );
    await waitFor(() =>
      expect(host.notifyError).toHaveBeenCalledWith('Denying out/copy.txt', err)
    );
  });
});

describe('DataExplorer', () => {
  it('shows the Admin tab only to admins and lists pending requests there', async () => {
    const client = fakeClient({
      me: async () => ({
        user: 'bob',
        org: 'UiS',
        roles: ['user', 'admin'],
        scopes: []
      }),
      listLeases: async scope => ({
        items: scope === 'pending' ? [lease({ state: 'pending' })] : []
      })
    });
    render(<DataExplorer host={fakeHost(client)} refreshToken={0} />);
    fireEvent.click(await screen.findByTestId('dshare-tab-admin'));
    fireEvent.click(await screen.findByTestId('dshare-approve'));
    await waitFor(() =>
      expect(client.decideLease).toHaveBeenCalledWith('lease-1', 'approve')
    );
  });

  it('has no Admin tab for a data scientist', async () => {
    const client = fakeClient();
    render(<DataExplorer host={fakeHost(client)} refreshToken={0} />);
    await screen.findByTestId('dshare-me');
    expect(screen.queryByTestId('dshare-tab-admin')).toBeNull();
    expect(
      screen.getByTestId('dshare-tab-datasets').getAttribute('aria-selected')
    ).toBe('true');
  });
});
