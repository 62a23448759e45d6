// The downloads panel's shared state: the latest snapshot from the backend (jobs, models on disk,
// Hugging Face access) and the "Download a model" form, which both the form and the catalog grid
// fill. Components call the methods; each returns the failure (or null) for the caller to show
// where the user acted.
import * as api from '../api';
import type { ApiError, DownloadsDto } from '../api';

export class DownloadsState {
  /** The latest state; null until the first update arrives. */
  snapshot = $state<DownloadsDto | null>(null);
  /** Why live updates stopped, when they did. */
  watchError = $state<ApiError | null>(null);
  /** The form's fields. */
  target = $state('');
  file = $state('');
  revision = $state('');

  private watching = false;

  /**
   * Starts live updates, once. The subscription lives as long as the app: the backend cannot
   * tell when the UI stops listening, so one per visit of the Models page would pile up.
   */
  watch(): void {
    if (this.watching) return;
    this.watching = true;
    this.watchError = null;
    const watch = api.watchDownloads((downloads) => (this.snapshot = downloads));
    watch.done
      .catch((e) => (this.watchError = api.asApiError(e)))
      .finally(() => {
        // The next visit of the Models page subscribes again.
        watch.stop();
        this.watching = false;
      });
  }

  /** Why offline mode is on, or null when it is off (or not known yet). */
  get offline() {
    return this.snapshot?.offline ?? null;
  }

  /**
   * Fetches the state once. Needed after the changes that do not move a download (token,
   * endpoint, import, removal), which the live updates do not announce.
   */
  async refresh(): Promise<void> {
    this.snapshot = await api.listDownloads();
  }

  /** Starts what the form names; the form keeps its text if that fails. */
  async submitForm(): Promise<ApiError | null> {
    const error = await this.start(this.target, this.file, this.revision);
    if (!error) {
      this.target = '';
      this.file = '';
      this.revision = '';
    }
    return error;
  }

  /** Starts a download of a catalog variant id or a Hub repo (with an optional file). */
  start(target: string, file: string | null, revision: string | null): Promise<ApiError | null> {
    const blank = (s: string | null) => (s === null || s.trim() === '' ? null : s.trim());
    return attempt(() => api.startDownload(target.trim(), blank(file), blank(revision)));
  }

  pause(id: number): Promise<ApiError | null> {
    return attempt(() => api.pauseDownload(id));
  }

  resume(id: number): Promise<ApiError | null> {
    return attempt(() => api.resumeDownload(id));
  }

  cancel(id: number): Promise<ApiError | null> {
    return attempt(() => api.cancelDownload(id));
  }

  forget(id: number): Promise<ApiError | null> {
    return attempt(() => api.forgetDownload(id));
  }

  /** Puts a failed job's target back into the form, for the user to correct. */
  editTarget(target: string, file: string | null, revision: string): void {
    this.target = target;
    this.file = file ?? '';
    this.revision = revision === 'main' ? '' : revision;
  }

  /** Saves the token in the OS keyring; the caller forgets it right after. */
  async saveToken(token: string): Promise<ApiError | null> {
    return this.andRefresh(await attempt(() => api.setHfToken(token)));
  }

  async clearToken(): Promise<ApiError | null> {
    return this.andRefresh(await attempt(() => api.clearHfToken()));
  }

  async saveEndpoint(endpoint: string): Promise<ApiError | null> {
    return this.andRefresh(await attempt(() => api.setDownloadEndpoint(endpoint.trim())));
  }

  /** Offline mode on or off; the snapshot follows at once. */
  async setOffline(on: boolean): Promise<ApiError | null> {
    return this.andRefresh(await attempt(() => api.setOffline(on)));
  }

  async importModel(folder: boolean): Promise<ApiError | null> {
    return this.andRefresh(await attempt(() => api.importModel(folder)));
  }

  async removeModel(id: number): Promise<ApiError | null> {
    return this.andRefresh(await attempt(() => api.removeModel(id)));
  }

  private async andRefresh(error: ApiError | null): Promise<ApiError | null> {
    try {
      await this.refresh();
    } catch (e) {
      return error ?? api.asApiError(e);
    }
    return error;
  }
}

/** Runs a command; its failure as an ApiError, or null. */
async function attempt(command: () => Promise<unknown>): Promise<ApiError | null> {
  try {
    await command();
    return null;
  } catch (e) {
    return api.asApiError(e);
  }
}

export const downloads = new DownloadsState();
