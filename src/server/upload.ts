/**
 * Uploaded images, checked before any pixel is decoded: the format from magic bytes and the
 * width × height from the header (PNG: IHDR; JPEG: the first SOFn frame header), so a small file
 * that would decode to a huge image (a "decompression bomb") is refused for what it claims. Then a
 * real decode (data/image.ts), whose errors name the upload.
 */
import { asUint8, decodeImage, detectFormat, type RGBAImage } from '../data/index.js';

export class UploadError extends Error {}

export interface ImageLimits {
  /** Largest width or height. */
  maxSide: number;
  /** Largest width × height. */
  maxPixels: number;
}

/** Width and height from a PNG or JPEG header; undefined when the header cannot be read. */
export function headerSize(bytes: Uint8Array): { width: number; height: number } | undefined {
  const b = asUint8(bytes);
  const format = detectFormat(b);
  const be16 = (i: number) => (b[i] << 8) | b[i + 1];
  if (format === 'png') {
    if (b.length < 24 || String.fromCharCode(...b.subarray(12, 16)) !== 'IHDR') return undefined;
    const be32 = (i: number) => ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
    return { width: be32(16), height: be32(20) };
  }
  if (format === 'jpeg') {
    // markers FF xx with a 2-byte length, from just after SOI; SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC)
    for (let i = 2; i + 9 < b.length; ) {
      if (b[i] !== 0xff) return undefined;
      const marker = b[i + 1];
      if (marker === 0xff) { i++; continue; }
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) return { height: be16(i + 5), width: be16(i + 7) };
      i += 2 + be16(i + 2);
    }
  }
  return undefined;
}

/** Decodes an uploaded PNG or JPEG within the limits; UploadError (a 4xx) otherwise. */
export function decodeUpload(bytes: Uint8Array, what: string, limits: ImageLimits): RGBAImage {
  if (bytes.length === 0) throw new UploadError(`${what}: empty upload, expected a PNG or JPEG image`);
  if (!detectFormat(bytes)) throw new UploadError(`${what}: not a PNG or JPEG image`);
  const size = headerSize(bytes);
  if (!size) throw new UploadError(`${what}: corrupt image header`);
  const { width, height } = size;
  if (width > limits.maxSide || height > limits.maxSide || width * height > limits.maxPixels) {
    throw new UploadError(`${what}: ${width}×${height} is too large (at most ${limits.maxSide} pixels a side and ${limits.maxPixels} pixels in all)`);
  }
  try {
    return decodeImage(bytes, what);
  } catch (e) {
    throw new UploadError((e as Error).message);
  }
}
