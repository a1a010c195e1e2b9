import type { Connection } from '../../src/db/index.js';
import { createSegmentDefinition, type SegmentDefinition } from '../../src/domain/definitions.js';

/** A published definition that streaming evaluates (and batch), as the streaming tests make them. */
export function createStreamingDefinition(
  conn: Connection,
  sandboxId: number,
  name: string,
  value: string,
  now: number,
): Promise<SegmentDefinition> {
  return createSegmentDefinition(
    conn,
    sandboxId,
    {
      name,
      expression: { format: 'PQL_TEXT', value },
      evaluationInfo: { batch: true, streaming: true, edge: false },
      lifecycleState: 'PUBLISHED',
    },
    now,
  );
}
