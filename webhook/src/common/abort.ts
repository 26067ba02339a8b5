/**
 * Every way trustgate stops waiting: a deadline (below), a race of a promise against an
 * abort (raceAbort), and a sleep an abort cuts short.
 *
 * A Deadline is one signal for "stop now": the request's own time budget or the caller's AbortSignal,
 * whichever comes first. The budget is total time from the start, so a peer that keeps a
 * connection busy with a byte now and then is still cut off.
 */
export interface Deadline {
  readonly signal: AbortSignal;
  /** Why the signal fired, in words for an error message. */
  reason(): string;
  /** Stops the timer and detaches from the caller's signal. */
  dispose(): void;
}

export function startDeadline(timeoutMs: number, caller?: AbortSignal): Deadline {
  const controller = new AbortController();
  let why = '';
  const fire = (text: string) => {
    if (controller.signal.aborted) return;
    why = text;
    controller.abort(new Error(text));
  };
  const onCallerAbort = () => fire(`aborted by the caller${describeReason(caller?.reason)}`);
  const timer = setTimeout(() => fire(`no complete answer within ${timeoutMs} ms`), timeoutMs);
  // A pending deadline must not keep the process alive on its own.
  timer.unref();
  if (caller?.aborted) onCallerAbort();
  else caller?.addEventListener('abort', onCallerAbort, { once: true });
  return {
    signal: controller.signal,
    reason: () => why,
    dispose: () => {
      clearTimeout(timer);
      caller?.removeEventListener('abort', onCallerAbort);
    },
  };
}

function describeReason(reason: unknown): string {
  if (reason === undefined) return '';
  const text = reason instanceof Error ? reason.message : String(reason);
  return text ? ` (${text})` : '';
}

/**
 * `promise`, unless `signal` aborts first: then rejects with `onAbort()`. The promise
 * itself is not cancelled (whoever owns it decides); its rejection passes through as is.
 */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal, onAbort: () => Error): Promise<T> {
  if (signal.aborted) return Promise.reject(onAbort());
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(onAbort());
    signal.addEventListener('abort', abort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', abort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(e);
      },
    );
  });
}

/** Resolves after `ms`, or at once when `signal` aborts; never rejects. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}
