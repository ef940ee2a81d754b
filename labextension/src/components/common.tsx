import React from 'react';

import { errorText } from '../notify';

/** Shown while a request is under way. */
export function Loading(props: { label?: string }): JSX.Element {
  return (
    <div
      className="jp-dshare-loading"
      role="status"
      aria-live="polite"
      data-testid="dshare-loading"
    >
      {props.label ?? 'Loading…'}
    </div>
  );
}

/** Shown when a list came back empty; says what to do next. */
export function Empty(props: { children: React.ReactNode }): JSX.Element {
  return (
    <div className="jp-dshare-empty" data-testid="dshare-empty">
      {props.children}
    </div>
  );
}

/** An inline error next to what failed (the notification carries it too). */
export function InlineError(props: { error: unknown }): JSX.Element | null {
  if (!props.error) {
    return null;
  }
  return (
    <div
      className="jp-dshare-error"
      role="alert"
      data-testid="dshare-inline-error"
    >
      {errorText(props.error)}
    </div>
  );
}

export function Tags(props: { tags: string[] }): JSX.Element {
  return (
    <span className="jp-dshare-tags" data-testid="dshare-dataset-tags">
      {props.tags.map(t => (
        <span key={t} className="jp-dshare-tag">
          {t}
        </span>
      ))}
    </span>
  );
}

/** A ticking clock so countdowns update without refetching. */
export function useNow(intervalMs = 1000): number {
  const [now, setNow] = React.useState(() => Date.now());
  React.useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(id);
  }, [intervalMs]);
  return now;
}
