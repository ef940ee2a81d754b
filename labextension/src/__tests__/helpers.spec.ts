import { outputStatus } from '../outputs';
import { buildTree, formatBytes } from '../skeleton';
import { emptyForm, formToDatasetIn } from '../storage';
import { formatCountdown, formatDuration } from '../time';

describe('time', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('formats countdowns from the ledger expiry', () => {
    expect(formatCountdown('2026-01-01T00:04:05Z', now)).toBe('4m 05s');
    expect(formatCountdown('2026-01-01T03:04:00Z', now)).toBe('3h 04m');
    expect(formatCountdown('2026-01-03T03:00:00Z', now)).toBe('2d 3h');
    expect(formatCountdown('2025-12-31T23:59:59Z', now)).toBe('expired');
    expect(formatCountdown(null, now)).toBe('');
    expect(formatCountdown('not a date', now)).toBe('');
  });
  it('formats policy durations', () => {
    expect(formatDuration(7200)).toBe('2 hours');
    expect(formatDuration(90061)).toBe('1 day 1 hour');
    expect(formatDuration(0)).toBe('0 seconds');
  });
});

describe('skeleton tree', () => {
  it('nests paths, creates implied folders, sums sizes, folders first', () => {
    const root = buildTree([
      { path: 'z.txt', size: 1 },
      { path: 'a/b/c.csv', size: 10 },
      { path: 'a/d.csv', size: 5 },
      { path: 'e/', size: 0 }
    ]);
    expect(root.size).toBe(16);
    expect(root.children.map(c => c.name)).toEqual(['a', 'e', 'z.txt']);
    const a = root.children[0];
    expect(a.size).toBe(15);
    expect(a.children.map(c => `${c.name}:${c.isDir}`)).toEqual([
      'b:true',
      'd.csv:false'
    ]);
    expect(formatBytes(2048)).toBe('2.0 KiB');
  });
});

describe('dataset form', () => {
  const filled = {
    ...emptyForm('azurefile'),
    name: ' Word counts ',
    tags: 'text, nlp,',
    columns: 'word:string:pii|text\ncount:int',
    skeleton: 'data/\ndata/a.csv 2048',
    maxDurationHours: '2',
    storage: { account_name: 'acct', share_name: 'share', account_key: 'k3y' }
  };

  it('builds the DatasetIn the broker expects', () => {
    expect(formToDatasetIn(filled)).toEqual({
      name: 'Word counts',
      description: '',
      tags: ['text', 'nlp'],
      columns: [
        { name: 'word', type: 'string', tags: ['pii', 'text'] },
        { name: 'count', type: 'int', tags: [] }
      ],
      skeleton: [
        { path: 'data/', size: 0 },
        { path: 'data/a.csv', size: 2048 }
      ],
      policy: {
        max_duration_s: 7200,
        exclusive: false,
        max_concurrent: null,
        allowed_orgs: [],
        approval_required: false,
        code_approval_required: false,
        interactive: false
      },
      redaction: '',
      storage: {
        type: 'azurefile',
        details: {
          account_name: 'acct',
          share_name: 'share',
          account_key: 'k3y'
        }
      }
    });
  });

  it('sends a concurrency limit as a number and "0 = no limit" as null', () => {
    expect(
      formToDatasetIn({ ...filled, maxConcurrent: '3' }).policy?.max_concurrent
    ).toBe(3);
    expect(
      formToDatasetIn({ ...filled, maxConcurrent: '' }).policy?.max_concurrent
    ).toBeNull();
  });

  it('leaves storage out of an update that does not replace it', () => {
    expect(formToDatasetIn(filled, false).storage).toBeUndefined();
  });

  it.each([
    [{ name: '' }, 'name', 'Name is required.'],
    [
      { maxDurationHours: '0' },
      'maxDurationHours',
      'Maximum lease duration must be a positive number of hours.'
    ],
    [
      { maxConcurrent: '1.5' },
      'maxConcurrent',
      'Maximum concurrent leases must be a whole number (0 = no limit).'
    ],
    [
      { columns: 'word' },
      'columns',
      'Columns line 1: write "name:type" or "name:type:tag1|tag2", got "word".'
    ],
    [
      { skeleton: 'a b c' },
      'skeleton',
      'Skeleton line 1: write "path size_in_bytes" (or "dir/"), got "a b c".'
    ],
    [
      { storage: { account_name: 'a', share_name: 's' } },
      'storage.account_key',
      'Storage account key is required.'
    ],
    [{ storageType: 'ftp' }, 'storageType', 'Unknown storage type "ftp".']
  ])('refuses %j naming the field', (patch, field, message) => {
    let caught: any;
    try {
      formToDatasetIn({ ...filled, ...patch });
    } catch (e) {
      caught = e;
    }
    expect(caught?.field).toBe(field);
    expect(caught?.message).toBe(message);
  });
});

describe('output status', () => {
  const base = {
    path: 'a.txt',
    sha256: 'ab'.repeat(32),
    size: 1
  };
  const decision = (approve: boolean, reason: string) => ({
    approve,
    reason,
    actor: 'carol',
    at: '2026-01-01T00:00:00Z'
  });
  it('says who still has to review a held file and which check held it', () => {
    expect(
      outputStatus({
        ...base,
        decision: 'held',
        held_by: ['UiB', 'UiS'],
        checks: [
          { name: 'max_size', passed: true, message: '' },
          { name: 'verbatim_input', passed: false, message: 'row 3 copied' }
        ],
        decisions: { UiB: decision(true, 'fine') }
      })
    ).toBe('held for UiS to review (verbatim_input: row 3 copied)');
  });
  it("gives the owner's reason for a denial", () => {
    expect(
      outputStatus({
        ...base,
        decision: 'denied',
        held_by: ['UiS'],
        decisions: { UiS: decision(false, 'raw rows') }
      })
    ).toBe('denied by UiS: raw rows');
  });
  it('says who approved a released file, or nothing when the gate let it pass', () => {
    expect(outputStatus({ ...base, decision: 'released' })).toBe(
      'released into your home'
    );
    expect(
      outputStatus({
        ...base,
        decision: 'released',
        held_by: ['UiS'],
        decisions: { UiS: decision(true, '') }
      })
    ).toBe('released into your home, approved by UiS');
  });
});
