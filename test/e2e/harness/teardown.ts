/** Remembers how to stop each piece as it starts, so a failing beforeAll still cleans up. */
export class Teardown {
  private readonly steps: (() => Promise<void>)[] = [];

  /** Registers `stop(thing)` to run at teardown (last registered, first run) and returns `thing`. */
  defer<T>(thing: T, stop: (thing: T) => Promise<void>): T {
    this.steps.push(() => stop(thing));
    return thing;
  }

  /** Runs every step even when some fail, then throws them all together. */
  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, 'e2e teardown failed');
  }
}
