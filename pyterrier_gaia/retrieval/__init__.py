"""First-stage retrieval: Lucene BM25 through pyserini, in-process."""
