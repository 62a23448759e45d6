// TEMPORARY visual harness (not part of the change): a fake backend over mockIPC.
import { mockIPC } from '@tauri-apps/api/mocks';
const GiB = 2 ** 30;
const params = new URLSearchParams(location.search);
let status: any = { model: { state: 'none' }, starterModelAvailable: true, dataDir: '/tmp/data' };
let jobs: any[] = [
  { id: 1, repo: 'bartowski/Meta-Llama-3.1-8B-Instruct-GGUF', revision: 'main', variant: 'llama-3.1-8b-instruct:q4_k_m', state: 'running', bytesDone: 1.2 * GiB, bytesTotal: 4.6 * GiB, bytesPerSecond: 12.3 * 2 ** 20, etaSeconds: 200, files: [{ path: 'Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf', bytesDone: 1.2 * GiB, bytesTotal: 4.6 * GiB, bytesPerSecond: 12.3 * 2 ** 20, etaSeconds: 200, state: 'downloading' }], error: null, modelId: null },
  { id: 2, repo: 'meta-llama/Llama-3.1-8B-Instruct', revision: 'main', variant: 'llama-3.1-8b-instruct:bf16', state: 'failed', bytesDone: 0, bytesTotal: 0, bytesPerSecond: 0, etaSeconds: null, files: [], error: { code: 'gated', message: 'meta-llama/Llama-3.1-8B-Instruct is gated: accept its licence at https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct with your Hugging Face account, then add an access token (`altiplano models token set`, or Models → Hugging Face token)' }, modelId: null },
  { id: 3, repo: 'acme/multi', revision: 'main', variant: null, state: 'paused', bytesDone: 3 * GiB, bytesTotal: 10 * GiB, bytesPerSecond: 0, etaSeconds: null, files: [{ path: 'model-00001-of-00002.safetensors', bytesDone: 3 * GiB, bytesTotal: 5 * GiB, bytesPerSecond: 0, etaSeconds: null, state: 'waiting' }, { path: 'model-00002-of-00002.safetensors', bytesDone: 0, bytesTotal: 5 * GiB, bytesPerSecond: 0, etaSeconds: null, state: 'waiting' }], error: null, modelId: null },
  { id: 4, repo: 'acme/<img src=x onerror=alert(1)>', revision: 'main', variant: null, state: 'failed', bytesDone: 0, bytesTotal: 0, bytesPerSecond: 0, etaSeconds: null, files: [], error: { code: 'notFound', message: 'not found: <b>acme/nope</b>' }, modelId: null },
];
let models: any[] = [
  { id: 10, name: 'SmolLM2-135M-Instruct.Q4_1', format: 'gguf', path: '/c/tiny.gguf', source: 'hub', variant: null, sizeBytes: 98362432 },
  { id: 11, name: 'Llama-3.1-8B-Instruct', format: 'safetensors', path: '/c/llama', source: 'import', variant: null, sizeBytes: 16 * GiB },
];
let hasToken = params.has('token');
let channels: any[] = [];
const snapshot = () => ({ jobs, models, hasToken, tokenSource: hasToken ? 'keyring' : null, endpoint: 'https://huggingface.co', endpointFromEnvironment: params.has('env'), cacheDir: '/home/me/.cache/huggingface/hub' });
let index = 0;
const push = () => channels.forEach((c) => (window as any).__TAURI_INTERNALS__.runCallback(c.id, { message: structuredClone(snapshot()), index: index++ }));
setInterval(() => { const j = jobs[0]; if (j.state === 'running' && j.bytesDone < j.bytesTotal) { j.bytesDone = Math.min(j.bytesTotal, j.bytesDone + 0.4 * GiB); j.files[0].bytesDone = j.bytesDone; if (j.bytesDone >= j.bytesTotal) { j.state = 'completed'; j.files[0].state = 'done'; } push(); } }, 500);
const candidates = ['BF16', 'Q4_K_M'].map((quant) => ({ model: 'llama-3.1-8b-instruct', modelName: 'Llama 3.1 8B Instruct', quant, backend: 'cpu', placement: 'CPU', fit: 'cpu', contextTokens: 8192, maxContextTokens: 8192, meetsRequestedContext: true, tokensPerSecondEstimate: 5, weightsBytes: 4.6 * GiB, explanation: 'x', nodeSettings: [] }));
mockIPC(async (cmd: string, args: any) => {
  switch (cmd) {
    case 'get_status': return status;
    case 'list_conversations': return [];
    case 'plan_models': return { hardware: { cpuName: 'CPU', cores: 2, threads: 2, cpuFeatures: [], ramBytes: 8 * GiB, ramAvailableBytes: 4 * GiB, diskFreeBytes: 100 * GiB, gpus: [] }, recommended: candidates[1], candidates, reasonIfNone: null };
    case 'watch_downloads': channels.push(args.onUpdate); setTimeout(push, 50); return new Promise(() => {});
    case 'list_downloads': return snapshot();
    case 'start_download': { const j = { id: 100 + jobs.length, repo: args.target, revision: args.revision ?? 'main', variant: null, state: 'queued', bytesDone: 0, bytesTotal: 0, bytesPerSecond: 0, etaSeconds: null, files: args.file ? [{ path: args.file, bytesDone: 0, bytesTotal: 0, bytesPerSecond: 0, etaSeconds: null, state: 'waiting' }] : [], error: null, modelId: null }; if (args.target === 'bad') throw { code: 'invalid', message: '"bad" is not a model repo id; use the form org/name' }; jobs = [...jobs, j]; push(); return j; }
    case 'forget_download': jobs = jobs.filter((j) => j.id !== args.id); push(); return null;
    case 'set_hf_token': hasToken = true; return null;
    case 'clear_hf_token': hasToken = false; return null;
    case 'remove_model': models = models.filter((m) => m.id !== args.id); return null;
    case 'load_local_model': { const m = models.find((m) => m.id === args.id); status = { ...status, model: { state: 'loading', path: m.path } }; await new Promise((r) => setTimeout(r, 800)); status = { ...status, model: { state: 'ready', model: { path: m.path, name: m.name, architecture: 'llama', contextLength: 8192, fileBytes: 1 } } }; return status.model.model; }
    default: return null;
  }
});
(window as any).__harness = { push };
await import('./main');
