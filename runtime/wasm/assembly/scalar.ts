// @ts-nocheck  (AssemblyScript source: compiled by asc, not by tsc)
/** Scalar generic paths (every config, bounds checked): forward, dgrad and wgrad. */
import { at, pi, pu } from './common';
import { SC } from './slots';

// ---------------------------------------------------------------------------
// Scalar generic paths on unpacked NCHW / OIHW data: every config, bounds checked.
// ---------------------------------------------------------------------------

/** Task (n, oc). A = x, B = weights (OIHW). */
export function conv_scalar(p: usize, task: i32, tid: i32): void {
  const Cin = pi(p, SC.CIN), Cout = pi(p, SC.COUT), H = pi(p, SC.H), W = pi(p, SC.W);
  const kH = pi(p, SC.KH), kW = pi(p, SC.KW), sH = pi(p, SC.SH), sW = pi(p, SC.SW);
  const pT = pi(p, SC.PT), pL = pi(p, SC.PL), dH = pi(p, SC.DH), dW = pi(p, SC.DW), G = pi(p, SC.G);
  const Ho = pi(p, SC.HO), Wo = pi(p, SC.WO);
  const x = pu(p, SC.A), w = pu(p, SC.B), out = pu(p, SC.OUT), bias = pu(p, SC.BIAS), out2 = pu(p, SC.OUT2);
  const n = task / Cout, oc = task % Cout;
  const Cig = Cin / G, Cog = Cout / G, g = oc / Cog;
  const b: f32 = bias != 0 ? load<f32>(at(bias, oc)) : 0;
  let m2: f32 = 0, s2: f32 = 0, b2: f32 = 0;
  if (out2 != 0) {
    m2 = load<f32>(at(pu(p, SC.M2), oc)); s2 = load<f32>(at(pu(p, SC.S2), oc)); b2 = load<f32>(at(pu(p, SC.B2), oc));
  }
  for (let oh = 0; oh < Ho; oh++) {
    for (let ow = 0; ow < Wo; ow++) {
      let acc: f32 = 0;
      for (let ci = 0; ci < Cig; ci++) {
        const ic = g * Cig + ci;
        for (let kh = 0; kh < kH; kh++) {
          const ih = oh * sH - pT + kh * dH;
          if (ih < 0 || ih >= H) continue;
          for (let kw = 0; kw < kW; kw++) {
            const iw = ow * sW - pL + kw * dW;
            if (iw < 0 || iw >= W) continue;
            acc += load<f32>(at(x, ((n * Cin + ic) * H + ih) * W + iw)) *
              load<f32>(at(w, ((oc * Cig + ci) * kH + kh) * kW + kw));
          }
        }
      }
      const v = acc + b;
      const off = ((n * Cout + oc) * Ho + oh) * Wo + ow;
      store<f32>(at(out, off), v);
      if (out2 != 0) store<f32>(at(out2, off), (v - m2) * s2 + b2);
    }
  }
}

/** Task (n, ic): gx = sum over the taps that read it. A = dz, B = weights (OIHW), OUT = gx. */
export function dgrad_scalar(p: usize, task: i32, tid: i32): void {
  const Cin = pi(p, SC.CIN), Cout = pi(p, SC.COUT), H = pi(p, SC.H), W = pi(p, SC.W);
  const kH = pi(p, SC.KH), kW = pi(p, SC.KW), sH = pi(p, SC.SH), sW = pi(p, SC.SW);
  const pT = pi(p, SC.PT), pL = pi(p, SC.PL), dH = pi(p, SC.DH), dW = pi(p, SC.DW), G = pi(p, SC.G);
  const Ho = pi(p, SC.HO), Wo = pi(p, SC.WO);
  const dz = pu(p, SC.A), w = pu(p, SC.B), gx = pu(p, SC.OUT);
  const n = task / Cin, ic = task % Cin;
  const Cig = Cin / G, Cog = Cout / G, g = ic / Cig, ci = ic % Cig;
  for (let ih = 0; ih < H; ih++) {
    for (let iw = 0; iw < W; iw++) {
      let acc: f32 = 0;
      for (let co = 0; co < Cog; co++) {
        const oc = g * Cog + co;
        for (let kh = 0; kh < kH; kh++) {
          const th = ih + pT - kh * dH;
          if (th < 0 || th % sH != 0) continue;
          const oh = th / sH;
          if (oh >= Ho) continue;
          for (let kw = 0; kw < kW; kw++) {
            const tw = iw + pL - kw * dW;
            if (tw < 0 || tw % sW != 0) continue;
            const ow = tw / sW;
            if (ow >= Wo) continue;
            acc += load<f32>(at(dz, ((n * Cout + oc) * Ho + oh) * Wo + ow)) *
              load<f32>(at(w, ((oc * Cig + ci) * kH + kh) * kW + kw));
          }
        }
      }
      store<f32>(at(gx, ((n * Cin + ic) * H + ih) * W + iw), acc);
    }
  }
}

/** Task oc: gw[oc][ci][kh][kw] = sum over n, pixels of dz * x (f64 accumulation). A = x, B = dz, OUT = gw. */
export function wgrad_scalar(p: usize, task: i32, tid: i32): void {
  const N = pi(p, SC.N), Cin = pi(p, SC.CIN), Cout = pi(p, SC.COUT), H = pi(p, SC.H), W = pi(p, SC.W);
  const kH = pi(p, SC.KH), kW = pi(p, SC.KW), sH = pi(p, SC.SH), sW = pi(p, SC.SW);
  const pT = pi(p, SC.PT), pL = pi(p, SC.PL), dH = pi(p, SC.DH), dW = pi(p, SC.DW), G = pi(p, SC.G);
  const Ho = pi(p, SC.HO), Wo = pi(p, SC.WO);
  const x = pu(p, SC.A), dz = pu(p, SC.B), gw = pu(p, SC.OUT);
  const oc = task;
  const Cig = Cin / G, Cog = Cout / G, g = oc / Cog;
  for (let ci = 0; ci < Cig; ci++) {
    const ic = g * Cig + ci;
    for (let kh = 0; kh < kH; kh++) {
      for (let kw = 0; kw < kW; kw++) {
        let acc: f64 = 0;
        for (let n = 0; n < N; n++) {
          for (let oh = 0; oh < Ho; oh++) {
            const ih = oh * sH - pT + kh * dH;
            if (ih < 0 || ih >= H) continue;
            for (let ow = 0; ow < Wo; ow++) {
              const iw = ow * sW - pL + kw * dW;
              if (iw < 0 || iw >= W) continue;
              acc += <f64>load<f32>(at(dz, ((n * Cout + oc) * Ho + oh) * Wo + ow)) *
                <f64>load<f32>(at(x, ((n * Cin + ic) * H + ih) * W + iw));
            }
          }
        }
        store<f32>(at(gw, ((oc * Cig + ci) * kH + kh) * kW + kw), <f32>acc);
      }
    }
  }
}
