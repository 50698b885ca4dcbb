/**
 * The restart queue (after ruff-vscode): restarts run one at a time, and any
 * number of requests made while one runs collapse into a single further run,
 * so a burst of setting changes restarts the server once more, not N times.
 */
export class RestartQueue {
  private current: Promise<void> | undefined;
  private queued: Promise<void> | undefined;

  constructor(private readonly task: () => Promise<void>) {}

  /** Resolves when a run that started after this call has finished. */
  request(): Promise<void> {
    if (this.queued) {
      return this.queued;
    }
    if (!this.current) {
      this.current = this.task().finally(() => {
        this.current = undefined;
      });
      return this.current;
    }
    this.queued = this.current
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return this.request();
      });
    return this.queued;
  }

  get busy(): boolean {
    return this.current !== undefined;
  }
}
