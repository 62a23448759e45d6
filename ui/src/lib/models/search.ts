// How the "Search models" list words each embedding model: what it is for, the languages it
// knows, and where it stands (in use, on disk, downloading, chosen but missing). Pure
// functions of the DTOs, tested in search.test.ts.
import type { DownloadJobDto, PurposeDto, SearchModelDto } from '../api';
import { jobStateLabel, percent } from '../downloads/format';

const PURPOSE: Record<PurposeDto, string> = { documents: 'documents', code: 'code' };

const LANGUAGE: Record<string, string> = {
  en: 'English',
  de: 'German',
  fr: 'French',
  it: 'Italian',
  pt: 'Portuguese',
  hi: 'Hindi',
  es: 'Spanish',
  th: 'Thai',
};

/** `documents and code`. */
export function purposesLabel(purposes: PurposeDto[]): string {
  return purposes.map((p) => PURPOSE[p]).join(' and ');
}

/** `English only`, or `all eight of Llama 3.1's languages`, or the names. */
export function languagesLabel(languages: string[]): string {
  if (languages.length === 1 && languages[0] === 'en') return 'English only';
  if (Object.keys(LANGUAGE).every((l) => languages.includes(l))) return "Llama 3.1's eight languages";
  return languages.map((l) => LANGUAGE[l] ?? l).join(', ');
}

/** The download of this model still under way, if any. */
export function activeJob(model: SearchModelDto, jobs: DownloadJobDto[]): DownloadJobDto | null {
  return jobs.find((j) => j.variant === model.id && ['queued', 'running', 'paused'].includes(j.state)) ?? null;
}

/** Where a model stands, in a few words. */
export function searchModelState(model: SearchModelDto, jobs: DownloadJobDto[]): string {
  if (model.usedFor.length > 0) return `Used for ${purposesLabel(model.usedFor)}`;
  if (model.onDisk) return 'On disk';
  const job = activeJob(model, jobs);
  if (job) {
    const p = job.state === 'running' ? percent(job.bytesDone, job.bytesTotal) : null;
    return p === null ? jobStateLabel(job.state) : `${jobStateLabel(job.state)} ${p}%`;
  }
  return 'Not downloaded';
}

/** Chosen for something it cannot serve yet (not on disk): what stands in, or null. */
export function standInNote(model: SearchModelDto): string | null {
  const missing = model.chosenFor.filter((p) => !model.usedFor.includes(p));
  if (missing.length === 0 || model.onDisk) return null;
  return `Chosen for ${purposesLabel(missing)}; the starter model searches until it is downloaded.`;
}

/** The purposes it could be switched to now (on disk and not used for them yet). */
export function usablePurposes(model: SearchModelDto): PurposeDto[] {
  if (!model.onDisk) return [];
  return (['documents', 'code'] as PurposeDto[]).filter((p) => !model.usedFor.includes(p));
}
