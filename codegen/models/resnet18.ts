/**
 * The ConvBN layers of torchvision's ResNet-18 (every conv is followed by a
 * BatchNorm2d, conv bias off), as configs for a given input size and batch.
 */
import type { ConvBNConfigInput } from '../config.js';

export interface NamedLayer {
  readonly name: string;
  readonly config: ConvBNConfigInput;
}

export function resnet18Layers(batch = 1, inputSize = 224): NamedLayer[] {
  const layers: NamedLayer[] = [];
  const add = (name: string, Cin: number, Cout: number, size: number, kernel: number, stride: number, padding: number) =>
    layers.push({ name, config: { N: batch, Cin, Cout, H: size, W: size, kernel, stride, padding, bias: false } });
  add('conv1', 3, 64, inputSize, 7, 2, 3);
  // conv1 (stride 2) and the 3x3 stride-2 max pool quarter the resolution.
  let size = Math.floor((Math.floor((inputSize + 6 - 7) / 2) + 1 + 2 - 3) / 2) + 1;
  let channels = 64;
  for (const [stage, width] of [[1, 64], [2, 128], [3, 256], [4, 512]] as const) {
    for (let block = 0; block < 2; block++) {
      const stride = stage > 1 && block === 0 ? 2 : 1;
      const prefix = `layer${stage}.${block}`;
      add(`${prefix}.conv1`, channels, width, size, 3, stride, 1);
      const out = Math.floor((size + 2 - 3) / stride) + 1;
      add(`${prefix}.conv2`, width, width, out, 3, 1, 1);
      if (stride !== 1 || channels !== width) add(`${prefix}.downsample`, channels, width, size, 1, stride, 0);
      channels = width;
      size = out;
    }
  }
  return layers;
}
