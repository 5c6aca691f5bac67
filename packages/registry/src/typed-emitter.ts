import { EventEmitter } from 'node:events';

/**
 * A typed facade over `EventEmitter`: `Events` maps each event name to its argument tuple, so
 * `on('status', (status, previous) => …)` is checked by the compiler. A listener that throws
 * does not break the emitter or the other listeners: the error goes to `onListenerError`.
 */
export class TypedEmitter<Events extends { [K in keyof Events]: unknown[] }> {
  private readonly emitter = new EventEmitter();

  constructor(private readonly onListenerError: (err: unknown, event: string) => void = () => {}) {
    this.emitter.setMaxListeners(0);
  }

  on<K extends keyof Events & string>(event: K, listener: (...args: Events[K]) => void): () => void {
    this.emitter.on(event, listener as (...args: unknown[]) => void);
    return () => this.off(event, listener);
  }

  once<K extends keyof Events & string>(event: K, listener: (...args: Events[K]) => void): () => void {
    this.emitter.once(event, listener as (...args: unknown[]) => void);
    return () => this.off(event, listener);
  }

  off<K extends keyof Events & string>(event: K, listener: (...args: Events[K]) => void): void {
    this.emitter.off(event, listener as (...args: unknown[]) => void);
  }

  protected emit<K extends keyof Events & string>(event: K, ...args: Events[K]): void {
    for (const listener of this.emitter.listeners(event)) {
      try {
        (listener as (...a: Events[K]) => void)(...args);
      } catch (err) {
        this.onListenerError(err, event);
      }
    }
  }
}
