import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import React from 'react';

import { DatasetDetails } from '../components/DatasetDetails';
import { MOCK_LABEL, SYNTHESIZE_EXPLANATION } from '../components/MockPreview';
import { RunsView } from '../components/RunsView';
import { keepMockRanges } from '../mock';
import { DShareError } from '../request';
import { dataset, fakeClient, fakeHost, run } from './fixtures';

const XSS = '<img src=x onerror="window.__pwned=3">';

const props = {
  datasetId: 'ds-1',
  myLeases: [],
  isOwnerAdmin: () => false,
  onBack: jest.fn(),
  onChanged: jest.fn(),
  onEdit: jest.fn()
};

describe('MockPreview in the dataset details', () => {
  it('shows the mock rows, labelled as synthetic, as text, without a lease', async () => {
    const client = fakeClient({
      getDataset: async () =>
        dataset({
          columns: [
            { name: 'type', type: 'string', tags: [] },
            { name: 'amount', type: 'number', tags: [] },
            { name: 'flag', type: 'boolean', tags: [] }
          ]
        }),
      mockPreview: async () => ({
        dataset_id: 'ds-1',
        mock: true,
        label: MOCK_LABEL,
        seed: 'a'.repeat(64),
        file: 'data/a.csv',
        columns: [
          { name: 'type', type: 'string', tags: [] },
          { name: 'amount', type: 'number', tags: [] },
          { name: 'flag', type: 'boolean', tags: [] }
        ],
        rows: [
          ['PAYMENT', 12.5, true],
          [XSS, null, false]
        ]
      })
    });
    const { container } = render(
      <DatasetDetails {...props} host={fakeHost(client)} />
    );
    const table = await screen.findByTestId('dshare-mock-table');
    expect(client.mockPreview).toHaveBeenCalledWith('ds-1', 10);
    expect(screen.getByTestId('dshare-mock-label').textContent).toBe(
      'Mock data — synthetic, not the real rows'
    );
    expect(table.getAttribute('aria-label')).toBe(MOCK_LABEL);
    const heads = Array.from(table.querySelectorAll('th')).map(
      th => th.textContent
    );
    expect(heads).toEqual(['type', 'amount', 'flag']);
    const rows = screen
      .getAllByTestId('dshare-mock-row')
      .map(r => Array.from(r.querySelectorAll('td')).map(td => td.textContent));
    expect(rows).toEqual([
      ['PAYMENT', '12.5', 'true'],
      [XSS, '', 'false']
    ]);
    expect(container.querySelector('img, script')).toBeNull();
    expect(screen.getByTestId('dshare-mock-preview').textContent).toContain(
      '2 mock rows of data/a.csv'
    );
  });

  it("shows the server's refusal in place of the rows", async () => {
    const client = fakeClient({
      mockPreview: async () => {
        throw new DShareError(
          409,
          'INVALID_STATE',
          "dataset 'ds-1' is retired; a retired dataset has no mock"
        );
      }
    });
    render(<DatasetDetails {...props} host={fakeHost(client)} />);
    const error = await screen.findByTestId('dshare-inline-error');
    expect(error.textContent).toContain(
      "INVALID_STATE: dataset 'ds-1' is retired; a retired dataset has no mock"
    );
    expect(screen.queryByTestId('dshare-mock-table')).toBeNull();
    expect(screen.getByTestId('dshare-mock-label').textContent).toBe(
      MOCK_LABEL
    );
  });

  it('asks for no mock of a dataset without columns', async () => {
    const client = fakeClient({
      getDataset: async () => dataset({ columns: [] })
    });
    render(<DatasetDetails {...props} host={fakeHost(client)} />);
    await screen.findByTestId('dshare-details-description');
    expect(screen.queryByTestId('dshare-mock-preview')).toBeNull();
    expect(client.mockPreview).not.toHaveBeenCalled();
  });
});

describe('Mock runs in My runs', () => {
  it('labels a mock run and leaves real runs unlabelled', async () => {
    const client = fakeClient({
      listRuns: async () => ({
        items: [
          run({ id: 'M-1', name: 'try-it', mock: true, outcome: 'succeeded' }),
          run({ id: 'R-1', name: 'real' })
        ]
      })
    });
    render(<RunsView host={fakeHost(client)} refreshToken={0} />);
    const items = await screen.findAllByTestId('dshare-run-item');
    expect(items[0].textContent).toContain('· MOCK run on mock data');
    expect(items[1].textContent).not.toContain('MOCK');
    expect(screen.getAllByTestId('dshare-run-mock')).toHaveLength(1);
  });
});

describe('keepMockRanges', () => {
  it('keeps the stored ranges of columns the form sends again, and no others', () => {
    const stored = [
      { name: 'amount', type: 'number', tags: [], mock: { min: 5, max: 9 } },
      { name: 'gone', type: 'string', tags: [], mock: { values: ['A'] } }
    ];
    const sent = [
      { name: 'amount', type: 'number', tags: ['x'] },
      { name: 'new', type: 'string', tags: [] }
    ];
    expect(keepMockRanges(sent, stored)).toEqual([
      { name: 'amount', type: 'number', tags: ['x'], mock: { min: 5, max: 9 } },
      { name: 'new', type: 'string', tags: [] }
    ]);
  });
});

describe('Making the mock from the data', () => {
  it('is offered to owner admins only, after a confirmation that says what is published', async () => {
    const client = fakeClient();
    const confirm = jest
      .fn()
      .mockResolvedValueOnce(false)
      .mockResolvedValueOnce(true);
    const host = fakeHost(client, { confirm });
    const { unmount } = render(
      <DatasetDetails {...props} host={host} isOwnerAdmin={() => true} />
    );
    const button = await screen.findByTestId('dshare-mock-synthesize');
    fireEvent.click(button);
    await waitFor(() => expect(confirm).toHaveBeenCalledTimes(1));
    expect(confirm.mock.calls[0][1]).toBe(SYNTHESIZE_EXPLANATION);
    expect(client.synthesizeMock).not.toHaveBeenCalled();
    fireEvent.click(button);
    await waitFor(() =>
      expect(client.synthesizeMock).toHaveBeenCalledWith('ds-1')
    );
    await waitFor(() =>
      expect(host.notifySuccess).toHaveBeenCalledWith(
        'The mock of Word counts now follows its data.'
      )
    );
    unmount();
    render(<DatasetDetails {...props} host={fakeHost(fakeClient())} />);
    await screen.findByTestId('dshare-mock-preview');
    expect(screen.queryByTestId('dshare-mock-synthesize')).toBeNull();
  });
});
