import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import React from 'react';

import { CodeApprovals } from '../components/CodeApprovals';
import { MyApprovals } from '../components/MyApprovals';
import { DShareError } from '../request';
import { ICodeApproval } from '../types';
import { fakeClient, fakeHost } from './fixtures';

const XSS =
  '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';

function approval(patch: Partial<ICodeApproval> = {}): ICodeApproval {
  return {
    id: 'CA-1',
    owner_org: 'UiS',
    dataset_ids: ['ds-1'],
    org: 'UiO',
    user: 'alice',
    code_sha256: 'cd'.repeat(32),
    state: 'pending',
    requested_at: '2026-01-01T00:00:00.000000Z',
    decided_at: null,
    decided_by: null,
    reason: null,
    files: [
      { path: 'count.py', sha256: 'ab'.repeat(32), content: 'print(2)\n' }
    ],
    spec: 'jobs:\n  - python count.py\n',
    previous: { id: 'CA-0', decided_at: '2025-12-31T00:00:00.000000Z' },
    diff: '--- a/count.py\n+++ b/count.py\n@@ -1 +1 @@\n-print(1)\n+print(2)\n',
    ...patch
  };
}

describe('CodeApprovals', () => {
  it('shows the spec, the files and the diff, and approves', async () => {
    const client = fakeClient({
      listApprovals: jest
        .fn()
        .mockResolvedValueOnce({ items: [approval()] })
        .mockResolvedValue({ items: [] }),
      decideApproval: jest
        .fn()
        .mockResolvedValue(approval({ state: 'approved' }))
    });
    const host = fakeHost(client);
    render(<CodeApprovals host={host} refreshToken={0} />);
    const diff = await screen.findByTestId('dshare-code-diff');
    expect(diff.textContent).toBe(
      '--- a/count.py\n+++ b/count.py\n@@ -1 +1 @@\n-print(1)\n+print(2)\n'
    );
    expect(client.listApprovals).toHaveBeenCalledWith('review');
    expect(screen.getByTestId('dshare-code-spec').textContent).toBe(
      'jobs:\n  - python count.py\n'
    );
    expect(screen.getByTestId('dshare-code-file').textContent).toContain(
      'print(2)'
    );
    expect(screen.getByText(/compared with approval CA-0/)).toBeTruthy();
    fireEvent.click(screen.getByTestId('dshare-code-approve'));
    await waitFor(() =>
      expect(client.decideApproval).toHaveBeenCalledWith('CA-1', 'approve', '')
    );
    expect(await screen.findByTestId('dshare-empty')).toBeTruthy();
    expect(host.notifySuccess).toHaveBeenCalledWith(
      'Approved the code of alice (UiO) for ds-1.'
    );
  });

  it('denies only with a reason and shows the server refusal', async () => {
    const err = new DShareError(
      403,
      'POLICY_DENIED',
      "'alice' made code approval request 'CA-1' and may not decide on it; another administrator of the organization must"
    );
    const client = fakeClient({
      listApprovals: async () => ({ items: [approval()] }),
      decideApproval: jest.fn().mockRejectedValue(err)
    });
    const host = fakeHost(client);
    render(<CodeApprovals host={host} refreshToken={0} />);
    fireEvent.click(await screen.findByTestId('dshare-code-deny'));
    const confirm = screen.getByTestId(
      'dshare-code-deny-confirm'
    ) as HTMLButtonElement;
    expect(confirm.disabled).toBe(true);
    fireEvent.change(screen.getByTestId('dshare-code-deny-reason'), {
      target: { value: '  reads raw rows  ' }
    });
    fireEvent.click(confirm);
    await waitFor(() =>
      expect(client.decideApproval).toHaveBeenCalledWith(
        'CA-1',
        'deny',
        'reads raw rows'
      )
    );
    await waitFor(() =>
      expect(host.notifyError).toHaveBeenCalledWith('Denying the code', err)
    );
  });

  it('renders file contents and diffs as text, never as markup', async () => {
    const client = fakeClient({
      listApprovals: async () => ({
        items: [
          approval({
            files: [{ path: 'x.py', sha256: 'ab'.repeat(32), content: XSS }],
            diff: XSS,
            spec: XSS
          })
        ]
      })
    });
    const { container } = render(
      <CodeApprovals host={fakeHost(client)} refreshToken={0} />
    );
    const diff = await screen.findByTestId('dshare-code-diff');
    expect(diff.textContent).toBe(XSS);
    expect(container.querySelector('img')).toBeNull();
    expect(container.querySelector('script')).toBeNull();
  });

  it('says when a file cannot be shown', async () => {
    const client = fakeClient({
      listApprovals: async () => ({
        items: [
          approval({
            files: [
              { path: 'model.bin', sha256: 'ef'.repeat(32), content: null }
            ]
          })
        ]
      })
    });
    render(<CodeApprovals host={fakeHost(client)} refreshToken={0} />);
    const file = await screen.findByTestId('dshare-code-file');
    expect(file.textContent).toContain(
      '(binary or too large to show: compare its SHA-256)'
    );
  });
});

describe('MyApprovals', () => {
  it('requests approval of a workflow file and lists the reply', async () => {
    const client = fakeClient({
      listApprovals: jest
        .fn()
        .mockResolvedValueOnce({ items: [] })
        .mockResolvedValue({ items: [approval()] }),
      requestApproval: jest.fn().mockResolvedValue({
        items: [approval()],
        skipped: [],
        code_sha256: 'cd'.repeat(32)
      })
    });
    const host = fakeHost(client);
    render(<MyApprovals host={host} refreshToken={0} />);
    fireEvent.change(screen.getByTestId('dshare-approval-path'), {
      target: { value: ' count.yaml ' }
    });
    fireEvent.click(screen.getByTestId('dshare-request-approval'));
    await waitFor(() =>
      expect(client.requestApproval).toHaveBeenCalledWith('count.yaml')
    );
    expect(host.notifySuccess).toHaveBeenCalledWith(
      'Asked UiS to approve the code of count.yaml.'
    );
    const item = await screen.findByTestId('dshare-my-approval');
    expect(item.getAttribute('data-state')).toBe('pending');
    expect(item.textContent).toContain('waiting for UiS');
  });

  it('shows the reason of a denial', async () => {
    const client = fakeClient({
      listApprovals: async () => ({
        items: [approval({ state: 'denied', reason: 'reads the raw rows' })]
      })
    });
    render(<MyApprovals host={fakeHost(client)} refreshToken={0} />);
    const reason = await screen.findByTestId('dshare-approval-reason');
    expect(reason.textContent).toBe('Reason: reads the raw rows');
    expect(screen.getByTestId('dshare-my-approval').textContent).toContain(
      'denied by UiS'
    );
  });

  it('shows what the server refused', async () => {
    const err = new DShareError(
      409,
      'INVALID_STATE',
      'no dataset this workflow reads requires approved code; run it as it is',
      'spec'
    );
    const client = fakeClient({
      requestApproval: jest.fn().mockRejectedValue(err)
    });
    const host = fakeHost(client);
    render(<MyApprovals host={host} refreshToken={0} />);
    fireEvent.click(screen.getByTestId('dshare-request-approval'));
    await waitFor(() =>
      expect(host.notifyError).toHaveBeenCalledWith(
        'Requesting approval of workflow.yaml',
        err
      )
    );
  });
});
