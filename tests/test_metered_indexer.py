"""gaia.Metered(indexer).index(docs): the indexer's own result, one record counting the documents read."""
import pandas as pd
import pyterrier as pt
import pytest

import pyterrier_gaia as gaia
from pyterrier_gaia.cost.counts import report


class _ListIndexer(pt.Indexer):
    """Keeps the docnos it is given; fails on a document without one."""

    def index(self, docs):
        self.docnos = []
        for doc in docs:
            self.docnos.append(doc["docno"])
            report(postings=len(doc["text"].split()))
        return self.docnos


DOCS = [{"docno": "a", "text": "light scattering"}, {"docno": "b", "text": "radio waves in the ionosphere"}]


@pytest.mark.parametrize("docs", [DOCS, iter(DOCS), pd.DataFrame(DOCS)], ids=["list", "iterator", "frame"])
def test_one_record_with_the_documents_read(docs):
    indexer = _ListIndexer()
    metered = gaia.Metered(indexer, name="list index", sensors="model")
    assert metered.index(docs) == ["a", "b"] == indexer.docnos
    record, = metered.ledger.records
    assert (record["stage"], record["docs"], record["queries"], record["qid"]) == ("list index", 2, 0, None)
    assert record["counts"] == {"postings": 7} and record["joules"] > 0 and record["error"] is None


def test_a_failing_index_call_is_recorded_and_raises():
    metered = gaia.Metered(_ListIndexer(), sensors="model")
    with pytest.raises(KeyError, match="docno"):
        metered.index([{"text": "no docno"}])
    record, = metered.ledger.records
    assert record["error"].startswith("KeyError") and record["docs"] == 0


def test_only_an_indexer_can_be_metered_as_one():
    with pytest.raises(TypeError, match=r"Metered\(identity\)\.index: the stage is a .*not a pt.Indexer"):
        gaia.Metered(pt.Transformer.identity(), name="identity").index(DOCS)
