// How the model's load progress and measured figures read: pure functions of the DTOs, tested
// in format.test.ts, so the status bar and the Models page stay declarative.
import type { EngineDto, LoadProgressDto, MeasurementDto, PlacementDto } from '../api';
import { formatBytes } from '../downloads/format';

/** The file or folder name at the end of a path. */
export function baseName(path: string): string {
  return path.split(/[\\/]/).filter(Boolean).pop() ?? path;
}

/** An engine as people write it. */
export function engineName(engine: EngineDto): string {
  switch (engine) {
    case 'llamacpp':
      return 'llama.cpp';
    case 'mistralrs':
      return 'mistral.rs';
    case 'remote':
      return 'a remote server';
  }
}

/** A plan's layout in a few words, for the Models page's table. */
export function placementLabel(p: PlacementDto): string {
  switch (p.kind) {
    case 'singleGpu':
      return 'one GPU';
    case 'tensorParallel':
      return p.nodes > 1
        ? `tensor parallel over ${p.gpusPerNode * p.nodes} GPUs on ${p.nodes} nodes`
        : `tensor parallel over ${p.gpusPerNode} GPUs`;
    case 'layerSplit':
      return p.cpuLayers === 0
        ? `${p.gpuLayers} layers across GPUs`
        : `${p.gpuLayers} layers on GPU, ${p.cpuLayers} on CPU`;
    case 'cpu':
      return 'CPU';
    case 'none':
      return 'does not fit';
  }
}

/** The status bar's words for a load in progress. */
export function loadingLabel(path: string, p: LoadProgressDto): string {
  const name = baseName(path);
  switch (p.stage) {
    case 'checking':
      return `Loading ${name}: checking the files…`;
    case 'converting':
      // Once per file: Q4_1/Q5 weights copied to Q8_0, which this CPU has fast kernels for.
      return p.layersTotal === 0
        ? `Loading ${name}: converting it for this CPU (once)…`
        : `Loading ${name}: converting it for this CPU (once), layer ${Math.min(p.layersDone + 1, p.layersTotal)} of ${p.layersTotal}…`;
    case 'layers':
      if (p.layersTotal === 0) return `Loading ${name}…`;
      return `Loading ${name}: ${p.quantizing ? 'reading and quantizing' : 'reading'} layer ${Math.min(p.layersDone + 1, p.layersTotal)} of ${p.layersTotal}…`;
    case 'finishing':
      return p.quantizing ? `Loading ${name}: saving the quantized copy for next time…` : `Loading ${name}: finishing…`;
    case 'done':
      return `Loading ${name}…`;
  }
}

/** Share of the layers read, 0–100; null while unknown. */
export function loadPercent(p: LoadProgressDto): number | null {
  if (p.layersTotal === 0) return null;
  return Math.round((100 * p.layersDone) / p.layersTotal);
}

/** `1.2 GiB (estimated 1.4 GiB)` */
export function memoryVersus(m: MeasurementDto): string {
  const gpus = m.gpuBytes.filter((b) => b > 0).map((b, i) => ` + ${formatBytes(b)} on GPU ${i}`);
  const estimate = m.estimatedBytes === null ? '' : ` (estimated ${formatBytes(m.estimatedBytes)})`;
  return `${formatBytes(m.residentBytes)}${gpus.join('')}${estimate}`;
}

/** `37.1 tok/s (estimated 40.0)`; `not measured` when the reply was too short to time. */
export function speedVersus(m: MeasurementDto): string {
  if (m.decodeTokensPerSecond === null) return 'not measured';
  const estimate = m.estimatedTokensPerSecond === null ? '' : ` (estimated ${m.estimatedTokensPerSecond.toFixed(1)})`;
  return `${m.decodeTokensPerSecond.toFixed(1)} tok/s${estimate}`;
}

/** The in-situ quantizations offered for an imported safetensors model, as the backend names them. */
export const ISQ_CHOICES: readonly { value: string; label: string }[] = [
  { value: 'q8_0', label: 'Q8_0 (near lossless, half of BF16)' },
  { value: 'q6k', label: 'Q6K' },
  { value: 'q5k', label: 'Q5K' },
  { value: 'q4k', label: 'Q4K (smallest)' },
  { value: 'fp8', label: 'FP8 (for GPUs with FP8)' },
  { value: '', label: 'As stored (no quantization)' },
];

/** The engines a GGUF file can run on, the default first. */
export const ENGINE_CHOICES: readonly { value: EngineDto; label: string }[] = [
  { value: 'llamacpp', label: 'llama.cpp (fastest, full context)' },
  { value: 'mistralrs', label: 'mistral.rs (context up to 8,192)' },
];

/**
 * Q8_0 by default: within 2 % of the unquantized perplexity (core/tests/convert.rs holds it
 * there) at half the memory of BF16, a quarter of F32.
 */
export const DEFAULT_ISQ = 'q8_0';
