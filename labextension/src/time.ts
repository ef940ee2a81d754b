/**
 * Time helpers. Countdown text is derived from the ledger's expires_at and the
 * browser clock only for display: the ledger alone decides expiry.
 */

/** "2d 3h", "3h 04m", "4m 05s", "expired". */
export function formatCountdown(
  expiresAt: string | null,
  nowMs: number
): string {
  if (!expiresAt) {
    return '';
  }
  const end = Date.parse(expiresAt);
  if (Number.isNaN(end)) {
    return '';
  }
  let s = Math.floor((end - nowMs) / 1000);
  if (s <= 0) {
    return 'expired';
  }
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (d > 0) {
    return `${d}d ${h}h`;
  }
  if (h > 0) {
    return `${h}h ${pad(m)}m`;
  }
  return `${m}m ${pad(s)}s`;
}

/** "1 day 2 hours", "30 minutes": a policy's maximum duration, for people. */
export function formatDuration(seconds: number): string {
  const parts: string[] = [];
  const units: [number, string][] = [
    [86400, 'day'],
    [3600, 'hour'],
    [60, 'minute'],
    [1, 'second']
  ];
  let rest = Math.max(0, Math.floor(seconds));
  for (const [size, name] of units) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      parts.push(`${n} ${name}${n === 1 ? '' : 's'}`);
      rest -= n * size;
    }
    if (parts.length === 2) {
      break;
    }
  }
  return parts.length ? parts.join(' ') : '0 seconds';
}

/** A ledger timestamp in the reader's locale; the raw text if it does not parse. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : new Date(t).toLocaleString();
}
