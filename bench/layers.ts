/** The benchmark layers a–g of shared/PLATFORM.md (N = 8), shared by every bench section and its peers. */
import type { ConvBNConfigInput } from '../codegen/config.js';

export const LAYERS: Record<string, { label: string; config: ConvBNConfigInput }> = {
  a: { label: '64→64 56² k3', config: { N: 8, Cin: 64, Cout: 64, H: 56, W: 56, kernel: 3, padding: 1 } },
  b: { label: '64→128 56² k3 s2', config: { N: 8, Cin: 64, Cout: 128, H: 56, W: 56, kernel: 3, stride: 2, padding: 1 } },
  c: { label: '1x1 256→64 56²', config: { N: 8, Cin: 256, Cout: 64, H: 56, W: 56, kernel: 1 } },
  d: { label: 'depthwise 256 28² k3', config: { N: 8, Cin: 256, Cout: 256, H: 28, W: 28, kernel: 3, padding: 1, groups: 256 } },
  e: { label: '128→128 g=32 56² k3', config: { N: 8, Cin: 128, Cout: 128, H: 56, W: 56, kernel: 3, padding: 1, groups: 32 } },
  f: { label: '64→64 56² k3 dil 2', config: { N: 8, Cin: 64, Cout: 64, H: 56, W: 56, kernel: 3, padding: 2, dilation: 2 } },
  g: { label: '3→64 224² k7 s2 p3', config: { N: 8, Cin: 3, Cout: 64, H: 224, W: 224, kernel: 7, stride: 2, padding: 3 } },
};
