/** A live connection to the daemon's socket, as the slot accounting sees it. */
export interface SlotHolder {
  id: number;
  /** The peer's real uid; undefined while not identified or when it cannot be. */
  uid: number | undefined;
}

/**
 * The connections to close so that no uid holds more than `perUser` slots: the newest of each uid
 * beyond its share (holders are given oldest first). Unidentified connections are never closed here:
 * the global cap and the request deadline bound them.
 */
export function overShare(holders: readonly SlotHolder[], perUser: number): number[] {
  const counts = new Map<number, number>();
  const excess: number[] = [];
  for (const holder of holders) {
    if (holder.uid === undefined) continue;
    const count = (counts.get(holder.uid) ?? 0) + 1;
    counts.set(holder.uid, count);
    if (count > perUser) excess.push(holder.id);
  }
  return excess;
}
