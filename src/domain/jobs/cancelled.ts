/**
 * The one error a cancel becomes: a task throws it when it sees its cancel flag, the worker
 * lane rejects with it when the thread reports a cancel, and the runner marks the job CANCELLED.
 */
export class Cancelled extends Error {
  constructor() {
    super('cancelled');
    this.name = 'Cancelled';
  }
}
