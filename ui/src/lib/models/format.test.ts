import { describe, expect, it } from 'vitest';
import type { LoadProgressDto, MeasurementDto } from '../api';
import { baseName, engineName, loadingLabel, loadPercent, memoryVersus, placementLabel, speedVersus } from './format';

const progress = (p: Partial<LoadProgressDto>): LoadProgressDto => ({
  stage: 'layers',
  layersDone: 0,
  layersTotal: 32,
  quantizing: false,
  ...p,
});

const measurement = (m: Partial<MeasurementDto>): MeasurementDto => ({
  modelKey: 'llama-3.1-8b-instruct:q4_k_m',
  name: 'Meta-Llama-3.1-8B-Instruct-Q4_K_M',
  isq: null,
  engine: 'llamacpp',
  residentBytes: 5 * 2 ** 30,
  gpuBytes: [],
  decodeTokensPerSecond: 9.25,
  loadSeconds: 4.2,
  estimatedBytes: 5.5 * 2 ** 30,
  estimatedTokensPerSecond: 10,
  measuredAt: 0,
  ...m,
});

describe('loading words', () => {
  it('names the file and the layer being read, counting from one', () => {
    expect(loadingLabel('/m/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf', progress({ layersDone: 11 }))).toBe(
      'Loading Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf: reading layer 12 of 32…',
    );
    expect(loadingLabel('C:\\models\\hf\\', progress({ layersDone: 32, quantizing: true }))).toBe(
      'Loading hf: reading and quantizing layer 32 of 32…',
    );
  });

  it('says what happens before and after the layers', () => {
    expect(loadingLabel('/m/a.gguf', progress({ stage: 'checking', layersTotal: 0 }))).toBe('Loading a.gguf: checking the files…');
    expect(loadingLabel('/m/hf', progress({ stage: 'finishing', quantizing: true }))).toMatch(/saving the quantized copy/);
    expect(loadingLabel('/m/a.gguf', progress({ layersTotal: 0 }))).toBe('Loading a.gguf…');
    expect(loadingLabel('/m/s.Q4_1.gguf', progress({ stage: 'converting', layersDone: 3, layersTotal: 30 }))).toBe(
      'Loading s.Q4_1.gguf: converting it for this CPU (once), layer 4 of 30…',
    );
  });

  it('gives a percentage only when the layer count is known', () => {
    expect(loadPercent(progress({ layersDone: 8 }))).toBe(25);
    expect(loadPercent(progress({ layersTotal: 0 }))).toBeNull();
    expect(baseName('/a/b/')).toBe('b');
  });
});

describe('measured figures', () => {
  it('set the measurement beside the estimate', () => {
    expect(memoryVersus(measurement({}))).toBe('5.0 GiB (estimated 5.5 GiB)');
    expect(speedVersus(measurement({}))).toBe('9.3 tok/s (estimated 10.0)');
  });

  it('add GPU memory and cope without estimates or a timed reply', () => {
    const m = measurement({ gpuBytes: [2 ** 30], estimatedBytes: null, estimatedTokensPerSecond: null, decodeTokensPerSecond: null });
    expect(memoryVersus(m)).toBe('5.0 GiB + 1.0 GiB on GPU 0');
    expect(speedVersus(m)).toBe('not measured');
    expect(speedVersus(measurement({ estimatedTokensPerSecond: null }))).toBe('9.3 tok/s');
  });
});

describe('engine names', () => {
  it('spells each engine as its authors do', () => {
    expect(engineName('llamacpp')).toBe('llama.cpp');
    expect(engineName('remote')).toBe('a remote server');
    expect(engineName('mistralrs')).toBe('mistral.rs');
  });
});

describe('placement words', () => {
  it('says where a variant runs, in the few words the table has room for', () => {
    expect(placementLabel({ kind: 'singleGpu' })).toBe('one GPU');
    expect(placementLabel({ kind: 'tensorParallel', gpusPerNode: 4, nodes: 1 })).toBe('tensor parallel over 4 GPUs');
    expect(placementLabel({ kind: 'tensorParallel', gpusPerNode: 8, nodes: 2 })).toBe('tensor parallel over 16 GPUs on 2 nodes');
    expect(placementLabel({ kind: 'layerSplit', gpuLayers: 126, cpuLayers: 0 })).toBe('126 layers across GPUs');
    expect(placementLabel({ kind: 'layerSplit', gpuLayers: 60, cpuLayers: 20 })).toBe('60 layers on GPU, 20 on CPU');
    expect(placementLabel({ kind: 'cpu' })).toBe('CPU');
    expect(placementLabel({ kind: 'none' })).toBe('does not fit');
  });
});
