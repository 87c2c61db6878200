"""PyTerrier re-rankers over the encoder protocol of :mod:`pyterrier_gaia.encoders.base` (never a
concrete encoder class): :mod:`.reranker`, :mod:`.early_exit` (with :mod:`.exit_heads`) and
:mod:`.diffusion` (with :mod:`.budget_space`, :mod:`.green_potential`, :mod:`.langevin`,
:mod:`.query_signals`); :mod:`.factories` adds ``reranker()`` to the encoders (``gaia.BiEncoder``,
``gaia.CrossEncoder``); :mod:`.fusion`, :mod:`.measures` and :mod:`.columns` are what they share."""
