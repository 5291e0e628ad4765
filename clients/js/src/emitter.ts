/** A small typed event emitter (no dependency on Node's or the DOM's). */
export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  private readonly handlers = new Map<keyof Events, Set<(value: never) => void>>();

  /** Call `handler` for every `event`; returns a function that removes it. */
  on<K extends keyof Events>(event: K, handler: (value: Events[K]) => void): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler as (value: never) => void);
    return () => this.off(event, handler);
  }

  off<K extends keyof Events>(event: K, handler: (value: Events[K]) => void): void {
    this.handlers.get(event)?.delete(handler as (value: never) => void);
  }

  protected emit<K extends keyof Events>(event: K, value: Events[K]): void {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        (handler as (value: Events[K]) => void)(value);
      } catch (e) {
        // An application handler's bug must not break the connection's bookkeeping.
        setTimeout(() => {
          throw e;
        }, 0);
      }
    }
  }
}
