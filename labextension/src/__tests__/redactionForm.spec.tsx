import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import React from 'react';

import { DatasetForm } from '../components/DatasetForm';
import { DShareError } from '../request';
import { dataset, fakeClient, fakeHost } from './fixtures';

const POLICY =
  'package dshare.redaction\n\nimport rego.v1\n\n' +
  'action := "hash" if {\n\tinput.lessee_org != input.owner_org\n' +
  '\t"pii" in input.column.tags\n}\n';

describe('DatasetForm redaction policy', () => {
  it('shows the stored policy and sends the edited one as written', async () => {
    const client = fakeClient({
      updateDataset: jest.fn().mockResolvedValue(dataset({ redaction: '' }))
    });
    render(
      <DatasetForm
        host={fakeHost(client)}
        existing={dataset({ redaction: POLICY })}
        onDone={jest.fn()}
        onCancel={jest.fn()}
      />
    );
    const area = screen.getByTestId(
      'dshare-field-redaction'
    ) as HTMLTextAreaElement;
    expect(area.value).toBe(POLICY);
    fireEvent.change(area, { target: { value: '' } });
    fireEvent.click(screen.getByTestId('dshare-dataset-submit'));
    await waitFor(() => expect(client.updateDataset).toHaveBeenCalled());
    expect(client.updateDataset.mock.calls[0][1].redaction).toBe('');
  });

  it("shows the broker's refusal with the line and marks the policy", async () => {
    const err = new DShareError(
      400,
      'INVALID_ARGUMENT',
      'redaction: line 5: this is unclosed; fix the Rego and save again',
      'redaction'
    );
    const client = fakeClient({
      updateDataset: jest.fn().mockRejectedValue(err)
    });
    const onDone = jest.fn();
    render(
      <DatasetForm
        host={fakeHost(client)}
        existing={dataset({ redaction: POLICY })}
        onDone={onDone}
        onCancel={jest.fn()}
      />
    );
    fireEvent.change(screen.getByTestId('dshare-field-redaction'), {
      target: { value: POLICY.replace(/}\n$/, '') }
    });
    fireEvent.click(screen.getByTestId('dshare-dataset-submit'));
    await waitFor(() =>
      expect(screen.getByTestId('dshare-form-error').textContent).toBe(
        'INVALID_ARGUMENT: redaction: line 5: this is unclosed; fix the Rego ' +
          'and save again (field: redaction)'
      )
    );
    expect(
      screen.getByTestId('dshare-field-redaction').getAttribute('aria-invalid')
    ).toBe('true');
    expect(onDone).not.toHaveBeenCalled();
  });
});
