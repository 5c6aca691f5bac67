/**
 * Which schedules a master fires: the live masters sorted by key form slots 0..n-1; a schedule
 * belongs to slot `id mod n`. Schedule ids are a sequence, so `mod` spreads them evenly (it is
 * the hash). Every master computes the same assignment from the same live list; while lists
 * differ (membership just changed) two masters may both claim a schedule for a moment — the
 * database CAS on next_fire_time and the unique (schedule_id, fire_time) key keep that harmless.
 */
export interface SlotAssignment {
  slot: number;
  slotCount: number;
}

/** This master's slot, or null when it is not in the live list (not registered yet, or fenced). */
export function slotOf(nodeKey: string, liveMasters: readonly string[]): SlotAssignment | null {
  const sorted = [...new Set(liveMasters)].sort();
  const slot = sorted.indexOf(nodeKey);
  return slot < 0 ? null : { slot, slotCount: sorted.length };
}

export function ownsSchedule(a: SlotAssignment, scheduleId: number): boolean {
  return scheduleId % a.slotCount === a.slot;
}

export function sameAssignment(a: SlotAssignment | null, b: SlotAssignment | null): boolean {
  return a === b || (a !== null && b !== null && a.slot === b.slot && a.slotCount === b.slotCount);
}
