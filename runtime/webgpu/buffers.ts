/**
 * GPU buffers for one engine: a free list per (size, usage) so steps reuse
 * memory, and counters of what is in use, so modes can be compared by the
 * bytes they hold and the peak they reach.
 */
export interface BufferCounters {
  /** Buffers handed out and not yet released. */
  liveBuffers: number;
  liveBytes: number;
  /** Buffers that exist on the device (live + pooled). */
  allocatedBuffers: number;
  allocatedBytes: number;
}

export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  private readonly sizes = new WeakMap<GPUBuffer, number>();
  /** Buffers handed out and not yet released: a double release would corrupt the counters. */
  private readonly inUse = new WeakSet<GPUBuffer>();
  private live = 0;
  private liveBytes = 0;
  private allocated = 0;
  private allocatedBytes = 0;
  /** Peak of liveBytes since the last resetPeak(). */
  private peak = 0;
  /** After close(), released buffers are destroyed instead of pooled (a call that was in flight at engine.destroy()). */
  private closed = false;

  constructor(private readonly device: GPUDevice) {}

  acquire(bytes: number, usage: GPUBufferUsageFlags, label?: string): GPUBuffer {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const key = `${size}:${usage}`;
    let buffer = this.free.get(key)?.pop();
    if (!buffer) {
      buffer = this.device.createBuffer({ size, usage, label });
      this.sizes.set(buffer, size);
      this.allocated++;
      this.allocatedBytes += size;
    }
    this.inUse.add(buffer);
    this.live++;
    this.liveBytes += size;
    this.peak = Math.max(this.peak, this.liveBytes);
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    const size = this.sizes.get(buffer);
    if (size === undefined) throw new Error('released a buffer this pool did not hand out');
    if (!this.inUse.delete(buffer)) throw new Error('released a buffer twice');
    this.live--;
    this.liveBytes -= size;
    if (this.closed) {
      this.allocated--;
      this.allocatedBytes -= size;
      buffer.destroy();
      return;
    }
    const key = `${size}:${buffer.usage}`;
    const list = this.free.get(key) ?? [];
    list.push(buffer);
    this.free.set(key, list);
  }

  /** Destroys pooled (unused) buffers. */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        this.allocated--;
        this.allocatedBytes -= this.sizes.get(b) ?? 0;
        b.destroy();
      }
    }
    this.free.clear();
  }

  /** Destroys pooled buffers and every buffer released from now on. */
  close(): void {
    this.trim();
    this.closed = true;
  }

  resetPeak(): void {
    this.peak = this.liveBytes;
  }

  peakBytes(): number {
    return this.peak;
  }

  counters(): BufferCounters {
    return { liveBuffers: this.live, liveBytes: this.liveBytes, allocatedBuffers: this.allocated, allocatedBytes: this.allocatedBytes };
  }
}

/** writeBuffer refuses views on SharedArrayBuffer (e.g. shared wasm memory) in Dawn: copy those. */
export function uploadable(data: Float32Array): Float32Array {
  return data.buffer instanceof ArrayBuffer ? data : new Float32Array(data);
}
