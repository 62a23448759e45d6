// How code or pages were found for a question, in words: the Code and Documents tabs show it.
import type { RetrievalDto } from './api';

/** `Hybrid search: keywords and all-MiniLM-L6-v2 embeddings`, or `Keywords only (why)`. */
export function retrievalLabel(r: RetrievalDto): string {
  return r.kind === 'hybrid' ? `Hybrid search: keywords and ${r.model} embeddings` : `Keywords only (${r.reason})`;
}
