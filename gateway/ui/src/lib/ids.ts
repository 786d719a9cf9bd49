// Feed entry ids look like stream ids, `<ms>-<seq>`. They must be compared as a pair of numbers:
// as strings "999-0" would sort after "1000-0".

/** The (ms, seq) pair of an id, or null when it is not of the form `<digits>-<digits>`. */
export function parseEntryId(id: string): [number, number] | null {
  const match = /^(\d+)-(\d+)$/.exec(id);
  if (!match) return null;
  return [Number(match[1]), Number(match[2])];
}

/** Negative when `a` is older than `b`, 0 when equal, positive when newer. */
export function compareEntryIds(a: string, b: string): number {
  const pa = parseEntryId(a);
  const pb = parseEntryId(b);
  if (!pa || !pb) {
    // Not a stream id: keep a stable order rather than failing.
    return a < b ? -1 : a > b ? 1 : 0;
  }
  return pa[0] - pb[0] || pa[1] - pb[1];
}

/** The newer of two ids; `null` counts as older than anything. */
export function newerId(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return compareEntryIds(a, b) >= 0 ? a : b;
}

/** The millisecond timestamp part of an id, or null. */
export function entryIdMs(id: string): number | null {
  return parseEntryId(id)?.[0] ?? null;
}
