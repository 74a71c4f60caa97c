/**
 * A first-fit allocator over the wasm memory, run from JS (the AssemblyScript
 * side uses --runtime stub and never allocates). Blocks are 64-byte aligned
 * and carry 64 bytes of slack, so a SIMD kernel may read a vector past the
 * end of a tensor. The memory grows on demand up to its maximum.
 */

const ALIGN = 64;
const SLACK = 64;
const PAGE = 65536;

interface FreeBlock { start: number; size: number }

export class WasmHeap {
  readonly memory: WebAssembly.Memory;
  private readonly maxBytes: number;
  private top: number;
  private free: FreeBlock[] = [];
  private readonly sizes = new Map<number, number>();
  /** Bytes handed out now (block sizes, slack included). */
  used = 0;

  constructor(memory: WebAssembly.Memory, base: number, maxPages: number) {
    this.memory = memory;
    this.top = roundUp(Math.max(base, ALIGN), ALIGN);
    this.maxBytes = maxPages * PAGE;
  }

  /** Pointer to `bytes` bytes (at least one vector's worth of slack past the end). */
  alloc(bytes: number): number {
    const size = roundUp(Math.max(bytes, 0) + SLACK, ALIGN);
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i];
      if (b.size >= size) {
        const ptr = b.start;
        if (b.size === size) this.free.splice(i, 1);
        else { b.start += size; b.size -= size; }
        return this.track(ptr, size);
      }
    }
    // Extend the top (merging a free block that ends at the top).
    let ptr = this.top;
    const last = this.free[this.free.length - 1];
    if (last && last.start + last.size === this.top) {
      ptr = last.start;
      this.free.pop();
    }
    const end = ptr + size;
    if (end > this.maxBytes) {
      if (ptr !== this.top) this.free.push({ start: ptr, size: this.top - ptr });
      throw new RangeError(`convbn wasm: out of memory (need ${end} bytes of at most ${this.maxBytes})`);
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    this.top = end;
    return this.track(ptr, size);
  }

  freeBlock(ptr: number): void {
    const size = this.sizes.get(ptr);
    if (size === undefined) return;
    this.sizes.delete(ptr);
    this.used -= size;
    // Insert sorted by address, coalescing neighbours.
    let i = 0;
    while (i < this.free.length && this.free[i].start < ptr) i++;
    this.free.splice(i, 0, { start: ptr, size });
    if (i + 1 < this.free.length && ptr + size === this.free[i + 1].start) {
      this.free[i].size += this.free[i + 1].size;
      this.free.splice(i + 1, 1);
    }
    if (i > 0 && this.free[i - 1].start + this.free[i - 1].size === ptr) {
      this.free[i - 1].size += this.free[i].size;
      this.free.splice(i, 1);
    }
    const last = this.free[this.free.length - 1];
    if (last && last.start + last.size === this.top) {
      this.top = last.start;
      this.free.pop();
    }
  }

  /** A view of `length` floats at `ptr` (re-read after every possible grow). */
  f32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, length);
  }

  /**
   * A copy of `length` floats at `ptr` in a new array the caller owns. In Node the array's memory comes
   * from Buffer.allocUnsafeSlow (not zero-filled first: every float is written here at once), which
   * saves a 6 MB output about a third of its copy time; elsewhere a plain Float32Array.
   */
  copyOut(ptr: number, length: number): Float32Array {
    const out = allocFloat32(length);
    out.set(this.f32(ptr, length));
    return out;
  }

  i32(ptr: number, length: number): Int32Array {
    return new Int32Array(this.memory.buffer, ptr, length);
  }

  /** Size of the wasm memory in bytes. */
  get capacity(): number {
    return this.memory.buffer.byteLength;
  }

  private track(ptr: number, size: number): number {
    this.sizes.set(ptr, size);
    this.used += size;
    return ptr;
  }
}

type UnsafeAllocator = { allocUnsafeSlow(size: number): { buffer: ArrayBufferLike; byteOffset: number } };
const nodeBuffer = (globalThis as { Buffer?: UnsafeAllocator }).Buffer;

function allocFloat32(length: number): Float32Array {
  if (nodeBuffer && length > 0) {
    const bytes = nodeBuffer.allocUnsafeSlow(length * 4);
    return new Float32Array(bytes.buffer as ArrayBuffer, bytes.byteOffset, length);
  }
  return new Float32Array(length);
}

function roundUp(v: number, a: number): number {
  return Math.ceil(v / a) * a;
}
