/**
 * Simulated time for token tests: a clock and a setTimeout-like scheduler that only move when the test says so,
 * so hours of token lifetime run in milliseconds and no test sleeps for real time.
 */
import type { Scheduler } from '../../sidecar/token/caching-token-source.ts';

interface Timer {
  readonly id: number;
  readonly atMs: number;
  readonly callback: () => void;
}

/** Lets pending promise chains (and I/O callbacks already queued) run; no timers involved. */
export async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export class FakeTime {
  #nowMs: number;
  #seq = 0;
  #timers: Timer[] = [];

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.#nowMs = startMs;
  }

  readonly nowMs = (): number => this.#nowMs;

  readonly scheduler: Scheduler = {
    setTimeout: (callback, delayMs) => {
      const timer = { id: ++this.#seq, atMs: this.#nowMs + Math.max(0, delayMs), callback };
      this.#timers.push(timer);
      return timer.id;
    },
    clearTimeout: (handle) => {
      this.#timers = this.#timers.filter((t) => t.id !== handle);
    },
  };

  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** Moves time forward, firing due timers in order and letting their promise chains settle after each. */
  async advance(ms: number): Promise<void> {
    const target = this.#nowMs + ms;
    for (;;) {
      const due = this.#timers.filter((t) => t.atMs <= target).sort((a, b) => a.atMs - b.atMs || a.id - b.id)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#nowMs = Math.max(this.#nowMs, due.atMs);
      due.callback();
      await settle();
    }
    this.#nowMs = target;
    await settle();
  }
}
