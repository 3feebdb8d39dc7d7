import { EventEmitter } from 'node:events';
import { and, asc, eq, gt } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { batchEvents, type EventRecord } from '../db/schema.js';

export type BatchEventType = EventRecord['type'];

/**
 * The live side of a batch's event log: events are written to SQLite (so they can be
 * replayed) and then every stream watching that batch is woken to read what is new.
 */
export function createEventBus(db: Db) {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  return {
    /** Appends an event to the batch's log and wakes its watchers. */
    record(batchId: string, type: BatchEventType, data: Record<string, unknown>): void {
      db.insert(batchEvents).values({ batchId, type, data: JSON.stringify(data), createdAt: Date.now() }).run();
      emitter.emit(batchId);
    },
    /** The batch's events after `seq`, oldest first. */
    after(batchId: string, seq: number): EventRecord[] {
      return db
        .select()
        .from(batchEvents)
        .where(and(eq(batchEvents.batchId, batchId), gt(batchEvents.seq, seq)))
        .orderBy(asc(batchEvents.seq))
        .all();
    },
    /** Calls `onChange` whenever the batch records an event; returns the unsubscribe. */
    watch(batchId: string, onChange: () => void): () => void {
      emitter.on(batchId, onChange);
      return () => emitter.off(batchId, onChange);
    },
  };
}

export type EventBus = ReturnType<typeof createEventBus>;
