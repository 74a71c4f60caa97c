/**
 * What a caller sees when the GPU device goes away mid-call. The engine
 * replaces the device (or falls back to WASM) on the next call, so the error
 * only says that this call's results are gone.
 */
export class DeviceLostError extends Error {
  /** The call that was in flight: 'forward', 'backward', ... */
  readonly during: string;
  /** Dawn's or the browser's reason, or what the runtime observed. */
  readonly reason: string;

  constructor(during: string, reason: string) {
    super(`the WebGPU device was lost during ${during} (${reason}); this call's results are gone. ` +
      'The next call runs on a new device (or on WebAssembly if no adapter comes back), ' +
      'with parameters restored from the host copy');
    this.name = 'DeviceLostError';
    this.during = during;
    this.reason = reason;
  }
}

/**
 * mapAsync rejects with AbortError when its device is lost (or destroyed)
 * while the map is pending; the runtime never unmaps or destroys a buffer
 * with a map in flight, so here that rejection means the device went away.
 */
export function isAbort(error: unknown): boolean {
  return error instanceof Error && error.name === 'AbortError';
}
