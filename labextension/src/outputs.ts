import { IOutput } from './types';

/** Why a file is where it is, in one line: what a scientist reads in My runs. */
export function outputStatus(o: IOutput): string {
  const decided = Object.entries(o.decisions ?? {});
  if (o.decision === 'released') {
    const approvals = decided.filter(([, d]) => d.approve);
    return approvals.length
      ? `released into your home, approved by ${approvals.map(([org]) => org).join(', ')}`
      : 'released into your home';
  }
  if (o.decision === 'denied') {
    const denials = decided.filter(([, d]) => !d.approve);
    return (
      'denied' + denials.map(([org, d]) => ` by ${org}: ${d.reason}`).join(';')
    );
  }
  const waiting = (o.held_by ?? []).filter(
    org => !o.decisions || !(org in o.decisions)
  );
  const why = failedChecks(o);
  return (
    `held for ${waiting.join(', ') || 'the owners'} to review` +
    (why ? ` (${why})` : '')
  );
}

/** The messages of the checks that held a file, joined; '' when none failed. */
export function failedChecks(o: IOutput): string {
  return (o.checks ?? [])
    .filter(c => !c.passed)
    .map(c => (c.message ? `${c.name}: ${c.message}` : c.name))
    .join('; ');
}

export function shortDigest(sha256: string): string {
  return sha256 ? sha256.slice(0, 12) : '';
}
