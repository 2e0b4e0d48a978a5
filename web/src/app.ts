/**
 * The editor page: settings, sampling, and editing a picture by painting the part the chain should
 * repaint. Requests go to the server's API (src/server/app.ts) and answer with server-sent events —
 * `progress` after every scale (with that scale's decoded images), then `result` or `error`.
 *
 * The mask is painted on a canvas over the picture (pointer events: mouse, pen and touch); the canvas
 * shows the picture fitted into a square, as the model sees it. The mask is sent as a PNG of the
 * picture's own region of the canvas (white = keep, black = repaint), which the server stretches to
 * the picture's size: the padding around a non-square picture is never repainted.
 *
 * A segmentation-conditional model gets a label map: an R×R canvas (R the label-map model's size)
 * painted with the model's labels, label l in the pure colour of RGB channel l (background red,
 * stroke green, outline blue), which is how the server reads a map (sample/segmentation.ts); it is
 * sent as a PNG with samples and edits. An uploaded picture is read by the server (/api/label-map),
 * which answers the colour-coded map it holds, so painting can go on over it. "Over the picture" lays
 * the map, half transparent, on the picture (the square canvas it is shown on), so a map
 * for a guided edit can be painted on the shape it should follow.
 */
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

type Conditioning =
  | { kind: 'none'; description: string }
  | { kind: 'class'; classes: number; names?: string[]; nullable: boolean; description: string }
  | { kind: 'text'; length: number; nullable: boolean; description: string }
  | { kind: 'segmentation'; labels: string[]; resolution: number; nullable: boolean; description: string };
interface ModelInfo {
  name: string; K: number; T: number; conditioning: Conditioning; resolution: number; channels: number; masks: string[];
  /** What guidance pushes against (a weaker chain: on at `default`), or null. */
  guidance: { reference: 'weaker chain' | 'null condition'; default: number } | null;
}
interface Served { models: ModelInfo[]; limits: { maxCount: number } }
interface Progress { t: number; repeat: number; done: number; total: number; images: string[] }
interface Result { images: string[]; input?: string; mask?: string; sidecar: Record<string, unknown> }

const SIZE = 320; // canvas pixels
const imageCanvas = $<HTMLCanvasElement>('image-canvas');
const maskCanvas = $<HTMLCanvasElement>('mask-canvas');
const imageCtx = imageCanvas.getContext('2d')!;
const maskCtx = maskCanvas.getContext('2d')!;
const REPAINT = 'rgba(240, 62, 62, 0.55)';

let model: ModelInfo | undefined;
let picture: Blob | undefined; // the picture being edited, as uploaded or picked
let running: AbortController | undefined;
let tool: 'paint' | 'erase' = 'paint';
let region = { x: 0, y: 0, w: SIZE, h: SIZE }; // the picture's part of the canvas
const mapCanvas = $<HTMLCanvasElement>('map-canvas');
const mapCtx = mapCanvas.getContext('2d')!;
let labels = new Uint8Array(mapCanvas.width * mapCanvas.height); // the label map, one label per pixel
let label = 0; // the label the brush paints

// ---------- errors and status ----------

function showError(message: string): void {
  $('error-text').textContent = message;
  $('error').hidden = false;
}
$('error-close').addEventListener('click', () => ($('error').hidden = true));

async function json<T>(url: string): Promise<T> {
  const r = await fetch(url);
  const body = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
  if (!r.ok) throw new Error(body.error ?? `${r.status} ${r.statusText}`);
  return body as T;
}

async function pollHealth(): Promise<void> {
  const el = $('health');
  try {
    const h = await json<{ running: number; queued: number; workers: number }>('/api/health');
    el.className = `health ${h.running >= h.workers ? 'busy' : 'ok'}`;
    el.title = `server up: ${h.running} running, ${h.queued} waiting`;
    el.textContent = h.running >= h.workers ? '● busy' : '● ready';
  } catch {
    el.className = 'health down';
    el.textContent = '● server unreachable';
  }
}

// ---------- settings ----------

function settings(): Record<string, string> {
  const s: Record<string, string> = {
    model: model?.name ?? '',
    temperature: $<HTMLInputElement>('temperature').value,
    topP: $<HTMLInputElement>('topp').value,
    count: $<HTMLInputElement>('count').value,
  };
  const seed = $<HTMLInputElement>('seed').value.trim();
  if (seed) s.seed = seed;
  const k = Number($<HTMLInputElement>('topk').value);
  if (k > 0) s.topK = String(k);
  const c = model?.conditioning;
  if (c?.kind === 'class') s.class = $<HTMLSelectElement>('class').value;
  if (c?.kind === 'text') s.prompt = $<HTMLInputElement>('prompt').value.trim();
  if (model?.guidance) s.guidance = $<HTMLInputElement>('guidance').value;
  return s;
}

function bindOutput(input: string, out: string, digits = 2): void {
  const i = $<HTMLInputElement>(input), o = $<HTMLOutputElement>(out);
  const show = () => (o.value = Number(i.value).toFixed(digits));
  i.addEventListener('input', show);
  show();
}

// ---------- the picture and its mask ----------

async function setPicture(blob: Blob): Promise<void> {
  const bitmap = await createImageBitmap(blob).catch(() => {
    throw new Error('that file is not an image this browser can read (PNG or JPEG expected)');
  });
  picture = blob;
  const side = Math.max(bitmap.width, bitmap.height), scale = SIZE / side;
  const w = Math.round(bitmap.width * scale), h = Math.round(bitmap.height * scale);
  region = { x: Math.floor((SIZE - w) / 2), y: Math.floor((SIZE - h) / 2), w, h };
  imageCtx.imageSmoothingEnabled = side > SIZE;
  imageCtx.fillStyle = '#fff';
  imageCtx.fillRect(0, 0, SIZE, SIZE);
  imageCtx.drawImage(bitmap, region.x, region.y, w, h);
  maskCtx.clearRect(0, 0, SIZE, SIZE);
  $<HTMLSelectElement>('named-mask').value = '';
  overlayPicture();
}

function namedMask(name: string): void {
  // the server's named masks (src/sample/mask.ts) over the picture's region: the name says what is repainted
  const { x, y, w, h } = region;
  maskCtx.clearRect(0, 0, SIZE, SIZE);
  maskCtx.fillStyle = REPAINT;
  const hw = Math.floor(w / 2), hh = Math.floor(h / 2), qw = Math.floor(w / 4), qh = Math.floor(h / 4);
  if (name === 'upper-half') maskCtx.fillRect(x, y, w, hh);
  else if (name === 'lower-half') maskCtx.fillRect(x, y + hh, w, h - hh);
  else if (name === 'left-half') maskCtx.fillRect(x, y, hw, h);
  else if (name === 'center') maskCtx.fillRect(x + qw, y + qh, hw, hh);
  else if (name === 'border') {
    maskCtx.fillRect(x, y, w, h);
    maskCtx.clearRect(x + qw, y + qh, hw, hh);
  }
}

/** The painted mask over the picture's region as a PNG: white = keep, black = repaint. */
function maskPng(): Promise<Blob> {
  const { x, y, w, h } = region;
  const src = maskCtx.getImageData(x, y, w, h);
  const out = new ImageData(w, h);
  for (let i = 0; i < src.data.length; i += 4) {
    const v = src.data[i + 3] > 0 ? 0 : 255;
    out.data.set([v, v, v, 255], i);
  }
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  c.getContext('2d')!.putImageData(out, 0, 0);
  return new Promise((resolve, reject) => c.toBlob((b) => (b ? resolve(b) : reject(new Error('could not encode the mask'))), 'image/png'));
}

function maskIsEmpty(): boolean {
  const d = maskCtx.getImageData(region.x, region.y, region.w, region.h).data;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return false;
  return true;
}

function invertMask(): void {
  const d = maskCtx.getImageData(0, 0, SIZE, SIZE);
  for (let i = 0; i < d.data.length; i += 4) {
    const on = d.data[i + 3] > 0;
    d.data.set(on ? [0, 0, 0, 0] : [240, 62, 62, 140], i);
  }
  maskCtx.putImageData(d, 0, 0);
}

interface Point { x: number; y: number }

/**
 * Pointer painting on a canvas (mouse, pen and touch): `stroke(from, to)` in canvas pixels for the
 * press and every move while pressed; `start` when a press begins.
 */
function brush(canvas: HTMLCanvasElement, stroke: (from: Point, to: Point) => void, start?: () => void): void {
  let last: Point | undefined;
  const at = (e: PointerEvent) => {
    const r = canvas.getBoundingClientRect();
    return { x: ((e.clientX - r.left) / r.width) * canvas.width, y: ((e.clientY - r.top) / r.height) * canvas.height };
  };
  canvas.addEventListener('pointerdown', (e) => {
    canvas.setPointerCapture(e.pointerId);
    start?.();
    last = at(e);
    stroke(last, last);
    e.preventDefault();
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!last) return;
    const p = at(e);
    stroke(last, p);
    last = p;
  });
  const end = () => (last = undefined);
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
}

function setupMaskBrush(): void {
  brush(maskCanvas, (from, to) => {
    maskCtx.globalCompositeOperation = tool === 'paint' ? 'source-over' : 'destination-out';
    maskCtx.strokeStyle = tool === 'paint' ? 'rgb(240, 62, 62)' : '#000';
    maskCtx.globalAlpha = tool === 'paint' ? 0.55 : 1;
    maskCtx.lineWidth = Number($<HTMLInputElement>('brush').value);
    maskCtx.lineCap = maskCtx.lineJoin = 'round';
    maskCtx.beginPath();
    maskCtx.moveTo(from.x, from.y);
    maskCtx.lineTo(to.x + 0.01, to.y);
    maskCtx.stroke();
    maskCtx.globalAlpha = 1;
    maskCtx.globalCompositeOperation = 'source-over';
  }, () => ($<HTMLSelectElement>('named-mask').value = ''));
}

// ---------- the label map ----------

/** The colour of label l: the pure colour of RGB channel l. */
const labelColour = (l: number) => [0, 1, 2].map((k) => (k === l ? 255 : 0));

function drawMap(): void {
  const d = new ImageData(mapCanvas.width, mapCanvas.height);
  labels.forEach((l, p) => d.data.set([...labelColour(l), 255], 4 * p));
  mapCtx.putImageData(d, 0, 0);
}

/** With "over the picture" on, the picture shows through the (half-transparent) map. */
function overlayPicture(): void {
  const wrap = mapCanvas.parentElement!, on = $<HTMLInputElement>('map-over-picture').checked;
  wrap.classList.toggle('over', on);
  wrap.style.backgroundImage = on ? `url(${imageCanvas.toDataURL()})` : '';
}

/** A new R×R map, all background. */
function resetMap(R: number): void {
  mapCanvas.width = mapCanvas.height = R;
  labels = new Uint8Array(R * R);
  drawMap();
}

/** Paints `label` on every pixel within the brush radius of the segment from → to (no blending: labels stay pure). */
function paintLabels(from: Point, to: Point): void {
  const R = mapCanvas.width, r = Number($<HTMLInputElement>('map-brush').value) / 2;
  const steps = Math.ceil(Math.hypot(to.x - from.x, to.y - from.y) * 2) + 1;
  for (let i = 0; i <= steps; i++) {
    const cx = from.x + ((to.x - from.x) * i) / steps, cy = from.y + ((to.y - from.y) * i) / steps;
    for (let y = Math.max(0, Math.floor(cy - r)); y <= Math.min(R - 1, Math.floor(cy + r)); y++) {
      for (let x = Math.max(0, Math.floor(cx - r)); x <= Math.min(R - 1, Math.floor(cx + r)); x++) {
        const inside = (x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= r * r || (x === Math.floor(cx) && y === Math.floor(cy));
        if (inside) labels[y * R + x] = label;
      }
    }
  }
  drawMap();
  $<HTMLInputElement>('map-none').checked = false;
}

function setupPalette(names: string[]): void {
  const box = $('palette');
  box.replaceChildren();
  label = Math.min(1, names.length - 1); // the stroke, where there is one
  names.forEach((name, l) => {
    const b = Object.assign(document.createElement('button'), { type: 'button', textContent: name, title: `paint ${name}` });
    b.dataset.label = String(l);
    b.style.setProperty('--swatch', `rgb(${labelColour(l).join(', ')})`);
    b.classList.toggle('on', l === label);
    b.addEventListener('click', () => {
      label = l;
      box.querySelectorAll('button').forEach((x) => x.classList.toggle('on', x === b));
    });
    box.append(b);
  });
}

function mapPng(): Promise<Blob> {
  return new Promise((resolve, reject) => mapCanvas.toBlob((b) => (b ? resolve(b) : reject(new Error('could not encode the label map'))), 'image/png'));
}

/** An uploaded picture → the label map the server reads in it (colour-coded, R×R), onto the canvas. */
async function uploadMap(file: Blob): Promise<void> {
  const form = new FormData();
  form.append('model', model!.name);
  form.append('segmentation', file, 'map.png');
  const r = await fetch('/api/label-map', { method: 'POST', body: form });
  if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error ?? `${r.status} ${r.statusText}`);
  const bitmap = await createImageBitmap(await r.blob(), { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  mapCtx.drawImage(bitmap, 0, 0);
  const d = mapCtx.getImageData(0, 0, mapCanvas.width, mapCanvas.height).data;
  labels = labels.map((_, p) => [0, 1, 2].find((k) => d[4 * p + k] > 127) ?? 0);
  drawMap();
  $<HTMLInputElement>('map-none').checked = false;
}

/** A segmentation model's map for a request: the painted map as a PNG, or 'null' (the null map). */
async function addMap(form: FormData, s: Record<string, string>): Promise<void> {
  if (model?.conditioning.kind !== 'segmentation') return;
  if (model.conditioning.nullable && $<HTMLInputElement>('map-none').checked) form.append('segmentation', (s.segmentation = 'null'));
  else {
    form.append('segmentation', await mapPng(), 'map.png');
    s.segmentation = 'painted';
  }
}

// ---------- requests ----------

/** Reads a server-sent-event stream; calls on(event, data) per event. */
async function readEvents(r: Response, on: (event: string, data: any) => void): Promise<void> {
  const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
      const data = /^data: (.*)$/m.exec(block)?.[1];
      on(event, data ? JSON.parse(data) : undefined);
    }
  }
}

function img(src: string, label: string, cls = ''): HTMLElement {
  const f = document.createElement('figure');
  const i = document.createElement('img');
  i.src = src;
  i.alt = label;
  i.className = `px ${cls}`;
  f.append(i, Object.assign(document.createElement('figcaption'), { textContent: label }));
  return f;
}

function setBusy(busy: boolean): void {
  for (const id of ['sample', 'edit']) $<HTMLButtonElement>(id).disabled = busy;
  $<HTMLButtonElement>('cancel').disabled = !busy;
}

function progress(fraction: number, text: string): void {
  $('progress-bar').style.width = `${Math.round(100 * fraction)}%`;
  $('progress-text').textContent = text;
}

function showResult(r: Result, request: Record<string, string>, kind: 'sample' | 'edit'): void {
  const compare = $('compare'), results = $('results');
  compare.replaceChildren();
  results.replaceChildren();
  if (r.input) compare.append(img(r.input, 'input'));
  if (r.mask) compare.append(img(r.mask, 'mask (white = kept)'));
  const choose = (i: number) => {
    results.querySelectorAll('img').forEach((el, j) => el.classList.toggle('on', i === j));
    const a = $<HTMLAnchorElement>('download-image');
    a.href = r.images[i];
    a.download = `imagebart-${kind}-${String(r.sidecar.seed)}-${i}.png`;
    a.hidden = false;
    compare.querySelector('[data-role=chosen]')?.remove();
    if (kind === 'edit') {
      const chosen = img(r.images[i], `result ${i + 1}`);
      chosen.dataset.role = 'chosen';
      compare.append(chosen);
    }
  };
  const iou = (r.sidecar.segmentation as { meanIoU: number[]; mean: number } | undefined);
  r.images.forEach((src, i) => {
    const f = img(src, `${kind} ${i + 1}${iou?.meanIoU[i] !== undefined ? ` · IoU ${iou.meanIoU[i].toFixed(2)}` : ''}`);
    f.querySelector('img')!.dataset.role = 'result';
    f.addEventListener('click', () => choose(i));
    results.append(f);
  });
  choose(0);
  const fidelity = $('fidelity');
  fidelity.hidden = !iou?.meanIoU.length;
  if (iou?.meanIoU.length) fidelity.textContent = `mean IoU with the label map: ${iou.mean.toFixed(3)} (${iou.meanIoU.length} image${iou.meanIoU.length > 1 ? 's' : ''}; 1 = every region as painted)`;
  const s = $<HTMLAnchorElement>('download-settings');
  s.href = URL.createObjectURL(new Blob([JSON.stringify({ request: request, ...r.sidecar }, null, 2)], { type: 'application/json' }));
  s.download = `imagebart-${kind}-${String(r.sidecar.seed)}.json`;
  s.hidden = false;
  if (!$<HTMLInputElement>('seed').value) $<HTMLInputElement>('seed').placeholder = `random (last: ${String(r.sidecar.seed)})`;
}

async function run(kind: 'sample' | 'edit', init: RequestInit, request: Record<string, string>): Promise<void> {
  $('error').hidden = true;
  running = new AbortController();
  setBusy(true);
  progress(0, 'waiting for the model…');
  const steps = $('steps');
  steps.replaceChildren();
  try {
    const r = await fetch(`/api/${kind}`, { ...init, method: 'POST', signal: running.signal });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      throw new Error(body.error ?? `${r.status} ${r.statusText}`);
    }
    let result: Result | undefined;
    await readEvents(r, (event, data) => {
      if (event === 'queued') progress(0, data.position > 0 ? `queued behind ${data.position} request(s)…` : 'starting…');
      else if (event === 'progress') {
        const p = data as Progress;
        progress(p.done / p.total, `scale ${p.t} of ${model?.T ?? '?'}${kind === 'edit' ? `, repeat ${p.repeat + 1}` : ''} done (${p.done}/${p.total})`);
        steps.append(img(p.images[0], `t=${p.t - 1}${kind === 'edit' ? ` ·${p.repeat + 1}` : ''}`));
      } else if (event === 'result') result = data as Result;
      else if (event === 'error') throw new Error(data.error);
    });
    if (!result) throw new Error('the server closed the stream without a result');
    progress(1, `done in ${Number(result.sidecar.seconds).toFixed(1)} s`);
    showResult(result, request, kind);
  } catch (e) {
    if ((e as Error).name === 'AbortError') progress(0, 'cancelled');
    else {
      progress(0, 'failed');
      showError((e as Error).message);
    }
  } finally {
    running = undefined;
    setBusy(false);
    void pollHealth();
  }
}

async function sampleClicked(): Promise<void> {
  const s = settings();
  if (model?.conditioning.kind !== 'segmentation') return run('sample', { headers: { 'content-type': 'application/json' }, body: JSON.stringify(s) }, s);
  const form = new FormData(); // a label map is a file: a multipart request
  for (const [k, v] of Object.entries(s)) form.append(k, v);
  await addMap(form, s);
  await run('sample', { body: form }, s);
}

async function editClicked(): Promise<void> {
  if (!picture) return showError('pick an example or upload a picture first');
  const s = settings();
  const form = new FormData();
  for (const [k, v] of Object.entries(s)) form.append(k, v);
  const repeats = $<HTMLInputElement>('repeats').value;
  if (repeats) form.append('repeats', (s.repeats = repeats));
  if ($<HTMLInputElement>('composite').checked) form.append('composite', (s.composite = 'true'));
  const named = $<HTMLSelectElement>('named-mask').value;
  if (named) form.append('maskName', (s.mask = named));
  else {
    if (maskIsEmpty()) return showError('paint the part to repaint first (or choose a named mask)');
    form.append('mask', await maskPng(), 'mask.png');
    s.mask = 'painted';
  }
  form.append('image', picture, 'image.png');
  await addMap(form, s);
  await run('edit', { body: form }, s);
}

// ---------- the model ----------

/** Shows a model's conditioning controls, named masks and examples. */
async function chooseModel(m: ModelInfo): Promise<void> {
  model = m;
  const c = m.conditioning;
  $('model-info').textContent = `T = ${m.T} scales · ${m.K} codes · ${m.resolution}×${m.resolution} ${m.channels === 1 ? 'grey' : 'RGB'}${c.kind === 'none' ? ' · unconditional' : ` · conditioned on ${c.description}`}`;
  const named = $<HTMLSelectElement>('named-mask');
  named.replaceChildren(new Option('painted', ''), ...m.masks.map((k) => new Option(k, k)));
  const select = $<HTMLSelectElement>('class');
  select.replaceChildren();
  $('class-label').hidden = c.kind !== 'class';
  if (c.kind === 'class') {
    for (let k = 0; k < c.classes; k++) select.append(new Option(c.names ? `${k}: ${c.names[k]}` : String(k), String(k)));
    if (c.nullable) select.append(new Option('none (unconditional)', 'null'));
  }
  $('prompt-label').hidden = c.kind !== 'text';
  $('guidance-label').hidden = !m.guidance;
  if (m.guidance) {
    const g = $<HTMLInputElement>('guidance');
    g.value = String(m.guidance.reference === 'weaker chain' ? m.guidance.default : 1.5);
    g.dispatchEvent(new Event('input'));
    $('guidance-hint').textContent = m.guidance.reference === 'weaker chain'
      ? '(1 = off; higher moves away from the errors of a weaker model)' : '(1 = off; higher follows the class, prompt or map more closely)';
  }
  $('map-panel').hidden = c.kind !== 'segmentation';
  if (c.kind === 'segmentation') {
    resetMap(c.resolution);
    setupPalette(c.labels);
    $('map-none-label').hidden = !c.nullable;
    $<HTMLInputElement>('map-none').checked = false;
  }
  const { examples } = await json<{ examples: string[] }>(`/api/examples/${encodeURIComponent(m.name)}`);
  const box = $('examples');
  box.replaceChildren();
  for (const name of examples) {
    const el = Object.assign(document.createElement('img'), { src: `/api/examples/${encodeURIComponent(m.name)}/${encodeURIComponent(name)}`, alt: name, title: name });
    el.addEventListener('click', async () => {
      box.querySelectorAll('img').forEach((x) => x.classList.toggle('on', x === el));
      await setPicture(await (await fetch(el.src)).blob()).catch((err) => showError((err as Error).message));
    });
    box.append(el);
  }
  (box.firstElementChild as HTMLElement | null)?.click();
}

// ---------- start ----------

async function start(): Promise<void> {
  bindOutput('temperature', 'temperature-out');
  bindOutput('topp', 'topp-out');
  bindOutput('guidance', 'guidance-out');
  bindOutput('brush', 'brush-out', 0);
  bindOutput('map-brush', 'map-brush-out', 0);
  setupMaskBrush();
  brush(mapCanvas, paintLabels);
  $('map-fill').addEventListener('click', () => { labels.fill(0); drawMap(); $<HTMLInputElement>('map-none').checked = false; });
  $('map-over-picture').addEventListener('change', overlayPicture);
  $<HTMLInputElement>('map-upload').addEventListener('change', async (e) => {
    const input = e.target as HTMLInputElement, f = input.files?.[0];
    if (f) await uploadMap(f).catch((err) => showError((err as Error).message));
    input.value = '';
  });
  $('tool-paint').addEventListener('click', () => { tool = 'paint'; $('tool-paint').classList.add('on'); $('tool-erase').classList.remove('on'); });
  $('tool-erase').addEventListener('click', () => { tool = 'erase'; $('tool-erase').classList.add('on'); $('tool-paint').classList.remove('on'); });
  $('mask-clear').addEventListener('click', () => { maskCtx.clearRect(0, 0, SIZE, SIZE); $<HTMLSelectElement>('named-mask').value = ''; });
  $('mask-invert').addEventListener('click', () => { invertMask(); $<HTMLSelectElement>('named-mask').value = ''; });
  $('named-mask').addEventListener('change', () => namedMask($<HTMLSelectElement>('named-mask').value));
  $('seed-dice').addEventListener('click', () => {
    const w = crypto.getRandomValues(new Uint32Array(2));
    $<HTMLInputElement>('seed').value = ((BigInt(w[0]) << 32n) | BigInt(w[1])).toString();
  });
  $('sample').addEventListener('click', () => void sampleClicked());
  $('edit').addEventListener('click', () => void editClicked());
  $('cancel').addEventListener('click', () => running?.abort());
  $<HTMLInputElement>('upload').addEventListener('change', async (e) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (f) await setPicture(f).catch((err) => showError((err as Error).message));
    document.querySelectorAll('#examples img').forEach((el) => el.classList.remove('on'));
  });

  let served: Served;
  try {
    served = await json<Served>('/api/models');
  } catch (e) {
    showError(`cannot reach the server: ${(e as Error).message}`);
    return;
  }
  $<HTMLInputElement>('count').max = String(served.limits.maxCount);
  const choice = $<HTMLSelectElement>('model');
  for (const m of served.models) choice.append(new Option(`${m.name} (${m.conditioning.kind === 'none' ? 'unconditional' : m.conditioning.kind})`, m.name));
  const wanted = new URLSearchParams(location.search).get('model');
  choice.value = served.models.some((m) => m.name === wanted) ? wanted! : served.models[0].name;
  choice.addEventListener('change', () => void chooseModel(served.models.find((m) => m.name === choice.value)!));
  await chooseModel(served.models.find((m) => m.name === choice.value)!);
  void pollHealth();
  setInterval(() => void pollHealth(), 3000);
}

void start();
