/**
 * Image decoding, encoding and pixel-layout conversion for the data layer.
 *
 * Everything here is plain TypeScript on byte/float arrays so datasets can be built and tested
 * without the tensor engine. Model-facing pixels are CHW float32 in [-1, 1] (what the VQGAN
 * encoder expects); file-facing pixels are 8-bit RGBA (what PNG/JPEG codecs speak).
 */
import pngjs from 'pngjs';
import jpeg from 'jpeg-js';
import { imageSize } from 'image-size';

const { PNG } = pngjs;

/** An 8-bit RGBA raster, row-major, 4 bytes per pixel. */
export interface RGBAImage {
  width: number;
  height: number;
  rgba: Uint8Array;
}

export type ImageFormat = 'png' | 'jpeg';

/** Raw file bytes. Buffer is listed separately because @types/node 20 Buffers don't type-check as Uint8Array under TS 5.9. */
export type Bytes = Uint8Array | Buffer;

/** A plain Uint8Array view of `bytes` (no copy). */
export function asUint8(bytes: Bytes): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Detect the format from magic bytes: file extensions lie (renamed files, `.png` JPEGs). */
export function detectFormat(bytes: Bytes): ImageFormat | undefined {
  if (bytes.length >= 8 && PNG_MAGIC.every((b, i) => bytes[i] === b)) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  return undefined;
}

/** Turn codec messages into something a user can act on. */
function explain(message: string): string {
  if (/waitng on finished stream|waiting on finished stream|unexpected end|out of range|offset is outside/i.test(message)) {
    return `truncated file (unexpected end of data: ${message})`;
  }
  return message;
}

/** A complete JPEG ends with the EOI marker FF D9 (some writers append padding after it). */
function hasJpegEnd(bytes: Bytes): boolean {
  const b = asUint8(bytes);
  for (let i = b.length - 2; i >= Math.max(0, b.length - 64); i--) if (b[i] === 0xff && b[i + 1] === 0xd9) return true;
  return false;
}

/** Upper limits on an image to decode, checked from its header before any pixel is decoded. */
export interface ImageLimits {
  /** Longest side in pixels (default 16384). */
  maxSide?: number;
  /** Decoded pixels, width × height (default 40 megapixels: 160 MB of RGBA). */
  maxPixels?: number;
}

export const DEFAULT_IMAGE_LIMITS: Required<ImageLimits> = { maxSide: 16384, maxPixels: 40e6 };

/**
 * The JPEG frame type from its start-of-frame marker: 'baseline'/'progressive' (Huffman-coded,
 * what the decoder reads), or the name of a variant it does not (arithmetic coding, lossless,
 * hierarchical). Undefined when no frame marker is found before the scan.
 */
export function jpegFrameType(bytes: Bytes): string | undefined {
  const b = asUint8(bytes);
  const names: Record<number, string> = {
    0xc0: 'baseline', 0xc1: 'baseline', 0xc2: 'progressive', 0xc3: 'lossless (SOF3)',
    0xc5: 'hierarchical (SOF5)', 0xc6: 'hierarchical progressive (SOF6)', 0xc7: 'hierarchical lossless (SOF7)',
    0xc9: 'arithmetic-coded (SOF9)', 0xca: 'arithmetic-coded progressive (SOF10)', 0xcb: 'arithmetic-coded lossless (SOF11)',
    0xcd: 'arithmetic-coded hierarchical (SOF13)', 0xce: 'arithmetic-coded hierarchical progressive (SOF14)', 0xcf: 'arithmetic-coded hierarchical lossless (SOF15)',
  };
  for (let i = 2; i + 4 <= b.length;) {
    if (b[i] !== 0xff) return undefined;
    const marker = b[i + 1];
    if (marker === 0xff) { i++; continue; } // fill byte
    if (marker in names) return names[marker];
    if (marker === 0xda) return undefined; // start of scan without a frame
    i += 2 + ((b[i + 2] << 8) | b[i + 3]);
  }
  return undefined;
}

/**
 * The EXIF orientation transform (1..8) applied to a decoded raster, so the picture stands as the
 * camera meant: 2 mirror, 3 rotate 180°, 4 flip, 5 transpose, 6 rotate 90° clockwise, 7 transverse,
 * 8 rotate 90° counter-clockwise.
 */
export function applyOrientation(image: RGBAImage, orientation: number): RGBAImage {
  if (!(orientation >= 2 && orientation <= 8)) return image;
  const { width: w, height: h } = image;
  const swap = orientation >= 5;
  const W = swap ? h : w, H = swap ? w : h;
  const src = new Uint32Array(image.rgba.slice().buffer);
  const dst = new Uint32Array(W * H);
  // (x, y) in the output ← source pixel (sx, sy)
  const from: Record<number, (x: number, y: number) => [number, number]> = {
    2: (x, y) => [w - 1 - x, y],
    3: (x, y) => [w - 1 - x, h - 1 - y],
    4: (x, y) => [x, h - 1 - y],
    5: (x, y) => [y, x],
    6: (x, y) => [y, h - 1 - x],
    7: (x, y) => [w - 1 - y, h - 1 - x],
    8: (x, y) => [w - 1 - y, x],
  };
  const f = from[orientation];
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const [sx, sy] = f(x, y);
    dst[y * W + x] = src[sy * w + sx];
  }
  return { width: W, height: H, rgba: new Uint8Array(dst.buffer) };
}

/** Width, height and EXIF orientation from the header alone, checked against `limits`. */
function checkHeader(bytes: Bytes, path: string, format: ImageFormat, limits: ImageLimits): { orientation: number } {
  const { maxSide, maxPixels } = { ...DEFAULT_IMAGE_LIMITS, ...limits };
  if (format === 'jpeg') {
    const frame = jpegFrameType(bytes);
    if (frame && frame !== 'baseline' && frame !== 'progressive') {
      throw new Error(`${path}: ${frame} JPEG is not supported (only baseline and progressive Huffman-coded JPEG): re-save it as an ordinary JPEG or a PNG`);
    }
  }
  let size: { width: number; height: number; orientation?: number };
  try {
    size = imageSize(asUint8(bytes));
  } catch (e) {
    throw new Error(`${path}: corrupt ${format.toUpperCase()}: cannot read its size from the header (${(e as Error).message})`);
  }
  const { width, height } = size;
  if (Math.max(width, height) > maxSide || width * height > maxPixels) {
    throw new Error(`${path}: ${width}×${height} pixels is larger than the limit (${maxSide} pixels a side, ${(maxPixels / 1e6).toFixed(0)} megapixels): shrink it first`);
  }
  return { orientation: size.orientation ?? 1 };
}

/**
 * Decode PNG or JPEG bytes to RGBA, upright (JPEG EXIF orientation applied). The size is checked
 * from the header against `limits` before decoding. `path` is used only for error messages, so
 * that a corrupt file in a dataset of thousands can be found.
 */
export function decodeImage(bytes: Bytes, path: string, limits: ImageLimits = {}): RGBAImage {
  if (bytes.length === 0) throw new Error(`${path}: empty file, expected a PNG or JPEG image`);
  const format = detectFormat(bytes);
  if (format === undefined) {
    const head = Array.from(asUint8(bytes).subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new Error(`${path}: not a PNG or JPEG image (unrecognised leading bytes ${head})`);
  }
  const { orientation } = checkHeader(bytes, path, format, limits);
  let image: RGBAImage;
  try {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (format === 'png') {
      const png = PNG.sync.read(buf);
      image = { width: png.width, height: png.height, rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength) };
    } else {
      const out = jpeg.decode(buf, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024 });
      image = { width: out.width, height: out.height, rgba: out.data };
    }
  } catch (err) {
    let why = explain((err as Error).message);
    if (format === 'jpeg' && !hasJpegEnd(bytes)) why = `truncated file (no end-of-image marker; decoder said: ${why})`;
    throw new Error(`${path}: corrupt ${format.toUpperCase()}: ${why}`);
  }
  if (!(image.width > 0 && image.height > 0) || image.rgba.length !== image.width * image.height * 4) {
    throw new Error(`${path}: corrupt ${format.toUpperCase()}: decoded ${image.width}x${image.height} with ${image.rgba.length} bytes`);
  }
  return applyOrientation(image, orientation);
}

/** Encode RGBA to PNG (lossless, so grids and samples are saved exactly as computed). */
export function encodePng(rgba: Uint8Array, width: number, height: number): Buffer {
  if (rgba.length !== width * height * 4) {
    throw new Error(`encodePng: ${rgba.length} bytes is not ${width}x${height}x4`);
  }
  const png = new PNG({ width, height });
  png.data = Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength);
  return PNG.sync.write(png);
}

/**
 * Composite over white and make opaque. Emoji and many PNGs are mostly transparent; their RGB
 * under alpha=0 is arbitrary (often black), so dropping alpha without this gives garbage.
 */
export function compositeOnWhite(image: RGBAImage): RGBAImage {
  const { width, height, rgba } = image;
  const out = new Uint8Array(rgba.length);
  for (let p = 0; p < rgba.length; p += 4) {
    const a = rgba[p + 3];
    if (a === 255) {
      out[p] = rgba[p]; out[p + 1] = rgba[p + 1]; out[p + 2] = rgba[p + 2];
    } else {
      const inv = 255 - a;
      out[p] = Math.round((rgba[p] * a + 255 * inv) / 255);
      out[p + 1] = Math.round((rgba[p + 1] * a + 255 * inv) / 255);
      out[p + 2] = Math.round((rgba[p + 2] * a + 255 * inv) / 255);
    }
    out[p + 3] = 255;
  }
  return { width, height, rgba: out };
}

/** Centre the image on a square canvas filled with `fill` (RGBA), so resizing keeps aspect ratio. */
export function padToSquare(image: RGBAImage, fill: readonly [number, number, number, number] = [255, 255, 255, 255]): RGBAImage {
  const { width, height, rgba } = image;
  if (width === height) return image;
  const side = Math.max(width, height);
  const out = new Uint8Array(side * side * 4);
  for (let p = 0; p < out.length; p += 4) {
    out[p] = fill[0]; out[p + 1] = fill[1]; out[p + 2] = fill[2]; out[p + 3] = fill[3];
  }
  const ox = (side - width) >> 1;
  const oy = (side - height) >> 1;
  for (let y = 0; y < height; y++) {
    out.set(rgba.subarray(y * width * 4, (y + 1) * width * 4), ((y + oy) * side + ox) * 4);
  }
  return { width: side, height: side, rgba: out };
}

/**
 * 1-D resampling weights from `n` source samples to `m`: exact area coverage when shrinking
 * (no aliasing on downscale), linear interpolation (pixel centres aligned) when enlarging.
 */
function resampleWeights(n: number, m: number): { idx: Int32Array; w: Float32Array; taps: number } {
  if (m <= n) {
    const scale = n / m;
    const taps = Math.ceil(scale) + 1;
    const idx = new Int32Array(m * taps);
    const w = new Float32Array(m * taps);
    for (let o = 0; o < m; o++) {
      const lo = o * scale;
      const hi = lo + scale;
      let k = 0;
      for (let s = Math.floor(lo); s < hi && s < n; s++) {
        const cover = Math.min(hi, s + 1) - Math.max(lo, s);
        if (cover <= 1e-9) continue;
        idx[o * taps + k] = s;
        w[o * taps + k] = cover / scale;
        k++;
      }
    }
    return { idx, w, taps };
  }
  const idx = new Int32Array(m * 2);
  const w = new Float32Array(m * 2);
  for (let o = 0; o < m; o++) {
    const x = Math.min(Math.max((o + 0.5) * (n / m) - 0.5, 0), n - 1);
    const x0 = Math.floor(x);
    const x1 = Math.min(x0 + 1, n - 1);
    const f = x - x0;
    idx[o * 2] = x0; w[o * 2] = 1 - f;
    idx[o * 2 + 1] = x1; w[o * 2 + 1] = f;
  }
  return { idx, w, taps: 2 };
}

/** Separable resample of an RGBA raster to `outW`×`outH` (area down, bilinear up). */
function resampleSmooth(image: RGBAImage, outW: number, outH: number): RGBAImage {
  const { width, height, rgba } = image;
  const H = resampleWeights(width, outW);
  const V = resampleWeights(height, outH);
  const tmp = new Float32Array(outW * height * 4);
  for (let y = 0; y < height; y++) {
    for (let o = 0; o < outW; o++) {
      let r = 0, g = 0, b = 0, a = 0;
      for (let k = 0; k < H.taps; k++) {
        const wk = H.w[o * H.taps + k];
        if (wk === 0) continue;
        const p = (y * width + H.idx[o * H.taps + k]) * 4;
        r += rgba[p] * wk; g += rgba[p + 1] * wk; b += rgba[p + 2] * wk; a += rgba[p + 3] * wk;
      }
      const q = (y * outW + o) * 4;
      tmp[q] = r; tmp[q + 1] = g; tmp[q + 2] = b; tmp[q + 3] = a;
    }
  }
  const out = new Uint8Array(outW * outH * 4);
  for (let o = 0; o < outH; o++) {
    for (let x = 0; x < outW; x++) {
      let r = 0, g = 0, b = 0, a = 0;
      for (let k = 0; k < V.taps; k++) {
        const wk = V.w[o * V.taps + k];
        if (wk === 0) continue;
        const p = (V.idx[o * V.taps + k] * outW + x) * 4;
        r += tmp[p] * wk; g += tmp[p + 1] * wk; b += tmp[p + 2] * wk; a += tmp[p + 3] * wk;
      }
      const q = (o * outW + x) * 4;
      out[q] = Math.round(r); out[q + 1] = Math.round(g); out[q + 2] = Math.round(b); out[q + 3] = Math.round(a);
    }
  }
  return { width: outW, height: outH, rgba: out };
}

/** Nearest-neighbour resample: keeps mask values exactly binary. */
function resampleNearest(image: RGBAImage, outW: number, outH: number): RGBAImage {
  const { width, height, rgba } = image;
  const out = new Uint8Array(outW * outH * 4);
  const src32 = new Uint32Array(rgba.buffer, rgba.byteOffset, rgba.length / 4);
  const dst32 = new Uint32Array(out.buffer);
  for (let y = 0; y < outH; y++) {
    const sy = Math.min(height - 1, Math.floor(((y + 0.5) * height) / outH));
    for (let x = 0; x < outW; x++) {
      const sx = Math.min(width - 1, Math.floor(((x + 0.5) * width) / outW));
      dst32[y * outW + x] = src32[sy * width + sx];
    }
  }
  return { width: outW, height: outH, rgba: out };
}

/**
 * The mean colour of the image's outermost rows and columns (opaque): the padding that continues a
 * picture's own background, black around MNIST digits, white around emoji.
 */
export function borderColour(image: RGBAImage): [number, number, number, number] {
  const { width: w, height: h, rgba } = image;
  const sum = [0, 0, 0];
  let n = 0;
  const add = (x: number, y: number) => {
    const p = (y * w + x) * 4, a = rgba[p + 3] / 255;
    for (let c = 0; c < 3; c++) sum[c] += rgba[p + c] * a + 255 * (1 - a); // as composited on white
    n++;
  };
  for (let x = 0; x < w; x++) { add(x, 0); if (h > 1) add(x, h - 1); }
  for (let y = 1; y < h - 1; y++) { add(0, y); if (w > 1) add(w - 1, y); }
  return [Math.round(sum[0] / n), Math.round(sum[1] / n), Math.round(sum[2] / n), 255];
}

export interface ResizeOptions {
  /** 'area' (default) for photos/art; 'nearest' for masks, which must stay binary. */
  mode?: 'area' | 'nearest';
  /** RGBA used for padding to square, or 'border' for the image's border colour; default opaque white (the emoji background). */
  fill?: readonly [number, number, number, number] | 'border';
}

/** Resample to exactly `width`×`height` (aspect ratio not kept): 'area' down / bilinear up, or 'nearest'. */
export function resample(image: RGBAImage, width: number, height: number, mode: 'area' | 'nearest' = 'area'): RGBAImage {
  if (image.width === width && image.height === height) return { ...image, rgba: image.rgba.slice() };
  if (mode === 'area') return resampleSmooth(image, width, height);
  // Uint32 views need 4-byte alignment; copy if a decoder handed us an odd offset.
  const img = image.rgba.byteOffset % 4 === 0 ? image : { ...image, rgba: image.rgba.slice() };
  return resampleNearest(img, width, height);
}

/**
 * Resize to `size`×`size` keeping aspect ratio: pad to a square with `fill`, then resample.
 * In 'area' mode the result is first composited on white (so it is opaque); 'nearest' copies
 * pixels verbatim, alpha included.
 */
export function resizeTo(image: RGBAImage, size: number, options: ResizeOptions = {}): RGBAImage {
  if (!Number.isInteger(size) || size <= 0) throw new Error(`resizeTo: size must be a positive integer, got ${size}`);
  const mode = options.mode ?? 'area';
  let img = mode === 'area' ? compositeOnWhite(image) : image;
  img = padToSquare(img, options.fill === 'border' ? borderColour(img) : options.fill);
  if (img.width === size && img.height === size && img !== image) return img;
  return resample(img, size, size, mode);
}

/**
 * RGBA → CHW float32 in [-1, 1], composited on white. One channel uses Rec.601 luma, the usual
 * grey conversion, so grey datasets built from colour files match what a person sees.
 */
export function toCHW(image: RGBAImage, channels: 1 | 3): Float32Array {
  const { width, height, rgba } = image;
  const n = width * height;
  const out = new Float32Array(channels * n);
  for (let i = 0; i < n; i++) {
    const p = i * 4;
    const a = rgba[p + 3] / 255;
    const r = rgba[p] * a + 255 * (1 - a);
    const g = rgba[p + 1] * a + 255 * (1 - a);
    const b = rgba[p + 2] * a + 255 * (1 - a);
    if (channels === 3) {
      out[i] = r / 127.5 - 1;
      out[n + i] = g / 127.5 - 1;
      out[2 * n + i] = b / 127.5 - 1;
    } else {
      out[i] = (0.299 * r + 0.587 * g + 0.114 * b) / 127.5 - 1;
    }
  }
  return out;
}

/** CHW float32 in [-1, 1] → opaque RGBA (values outside [-1, 1] are clipped, not wrapped). */
export function fromCHW(data: Float32Array, channels: 1 | 3, height: number, width: number): RGBAImage {
  const n = width * height;
  if (data.length !== channels * n) throw new Error(`fromCHW: ${data.length} values is not ${channels}x${height}x${width}`);
  const rgba = new Uint8Array(n * 4);
  const q = (v: number) => (v !== v ? 0 : Math.round(Math.min(255, Math.max(0, (v + 1) * 127.5))));
  for (let i = 0; i < n; i++) {
    const r = q(data[i]);
    rgba[i * 4] = r;
    rgba[i * 4 + 1] = channels === 3 ? q(data[n + i]) : r;
    rgba[i * 4 + 2] = channels === 3 ? q(data[2 * n + i]) : r;
    rgba[i * 4 + 3] = 255;
  }
  return { width, height, rgba };
}

export interface GridOptions {
  /** Images per row (torchvision convention); default 8. */
  nrow?: number;
  /** Border in pixels between and around tiles; default 2. */
  pad?: number;
  /** Border grey level 0..255; default 128, visible against both black MNIST and white emoji. */
  padValue?: number;
}

/**
 * Tile CHW images (a list, or one B*C*H*W array) into one RGBA image for a person to look at:
 * sample sheets, reconstructions next to inputs, editing results.
 */
export function makeGrid(
  images: readonly Float32Array[] | Float32Array,
  shape: { channels: 1 | 3; height: number; width: number },
  options: GridOptions = {},
): RGBAImage {
  const { channels, height: h, width: w } = shape;
  const per = channels * h * w;
  const list: Float32Array[] = [];
  if (images instanceof Float32Array) {
    if (images.length % per !== 0) throw new Error(`makeGrid: ${images.length} values is not a multiple of ${channels}x${h}x${w}`);
    for (let o = 0; o < images.length; o += per) list.push(images.subarray(o, o + per));
  } else {
    list.push(...images);
  }
  if (list.length === 0) throw new Error('makeGrid: no images');
  const nrow = Math.max(1, Math.min(options.nrow ?? 8, list.length));
  const pad = options.pad ?? 2;
  const padValue = options.padValue ?? 128;
  const rows = Math.ceil(list.length / nrow);
  const W = nrow * (w + pad) + pad;
  const H = rows * (h + pad) + pad;
  const rgba = new Uint8Array(W * H * 4);
  for (let p = 0; p < rgba.length; p += 4) {
    rgba[p] = padValue; rgba[p + 1] = padValue; rgba[p + 2] = padValue; rgba[p + 3] = 255;
  }
  list.forEach((img, k) => {
    const tile = fromCHW(img, channels, h, w);
    const x0 = pad + (k % nrow) * (w + pad);
    const y0 = pad + Math.floor(k / nrow) * (h + pad);
    for (let y = 0; y < h; y++) rgba.set(tile.rgba.subarray(y * w * 4, (y + 1) * w * 4), ((y0 + y) * W + x0) * 4);
  });
  return { width: W, height: H, rgba };
}
