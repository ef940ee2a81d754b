import { IColumn } from './types';

/** The columns an owner submits, each with the mock ranges the same-named column of the
 * stored dataset has: a form that does not show ranges must not erase them. */
export function keepMockRanges(
  submitted: IColumn[],
  stored: IColumn[]
): IColumn[] {
  const ranges = new Map(
    stored.filter(c => c.mock).map(c => [c.name, c.mock] as const)
  );
  return submitted.map(c =>
    c.mock || !ranges.has(c.name) ? c : { ...c, mock: ranges.get(c.name) }
  );
}
