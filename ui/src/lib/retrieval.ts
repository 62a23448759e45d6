// How code or pages were found for a question, in words: the Code and Documents tabs show it.
import type { RetrievalDto } from './api';

/** `Hybrid search: keywords and all-MiniLM-L6-v2 embeddings`, or `Keywords only (why)`. */
export function retrievalLabel(r: RetrievalDto): string {
  if (r.kind === 'hybrid') return `Hybrid search: keywords and ${r.model} embeddings`;
  const why = r.reason.why === 'noModel' ? 'no embedding model is installed' : `the embedding model failed: ${r.reason.error}`;
  return `Keywords only (${why})`;
}
