import { describe, expect, it } from 'vitest';
import type { DownloadJobDto, SearchModelDto } from '../api';
import { languagesLabel, purposesLabel, searchModelState, standInNote, usablePurposes } from './search';

const model = (m: Partial<SearchModelDto>): SearchModelDto => ({
  id: 'multilingual-e5-small',
  name: 'multilingual-e5-small',
  languages: ['en', 'de', 'fr', 'it', 'pt', 'hi', 'es', 'th'],
  goodFor: ['documents'],
  dims: 384,
  parameters: 117_653_760,
  downloadBytes: 470_615_040,
  starter: false,
  onDisk: false,
  usedFor: [],
  chosenFor: [],
  licenceUrl: 'https://huggingface.co/intfloat/multilingual-e5-small',
  ...m,
});

const job = (j: Partial<DownloadJobDto>): DownloadJobDto => ({
  id: 1,
  repo: 'intfloat/multilingual-e5-small',
  revision: 'main',
  variant: 'multilingual-e5-small',
  state: 'running',
  bytesDone: 0,
  bytesTotal: 0,
  bytesPerSecond: null,
  etaSeconds: null,
  files: [],
  error: null,
  modelId: null,
  ...j,
});

describe('search model words', () => {
  it('names purposes and languages as a person would', () => {
    expect(purposesLabel(['documents', 'code'])).toBe('documents and code');
    expect(languagesLabel(['en'])).toBe('English only');
    expect(languagesLabel(model({}).languages)).toBe("Llama 3.1's eight languages");
    expect(languagesLabel(['en', 'de', 'xx'])).toBe('English, German, xx');
  });

  it('says where a model stands: in use, on disk, downloading, or not there', () => {
    expect(searchModelState(model({ onDisk: true, usedFor: ['documents', 'code'] }), [])).toBe('Used for documents and code');
    expect(searchModelState(model({ onDisk: true }), [])).toBe('On disk');
    expect(searchModelState(model({}), [job({ bytesDone: 47, bytesTotal: 100 })])).toBe('Downloading 47%');
    expect(searchModelState(model({}), [job({ state: 'paused' })])).toBe('Paused');
    expect(searchModelState(model({}), [job({ state: 'completed' }), job({ variant: 'gte-small' })])).toBe('Not downloaded');
  });

  it('explains a choice the starter stands in for, and offers only what can be switched now', () => {
    expect(standInNote(model({ chosenFor: ['documents'] }))).toBe(
      'Chosen for documents; the starter model searches until it is downloaded.',
    );
    expect(standInNote(model({ chosenFor: ['documents'], usedFor: ['documents'], onDisk: true }))).toBeNull();
    expect(usablePurposes(model({}))).toEqual([]);
    expect(usablePurposes(model({ onDisk: true, usedFor: ['code'] }))).toEqual(['documents']);
  });
});
