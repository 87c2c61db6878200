"""Collection readers, checked against the counts in each PROVENANCE.txt under ../shared/data."""
import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyterrier_gaia as gaia
from pyterrier_gaia.datasets import MalformedFileError

# (spec folder, format, docs, topics, qrels lines, judged queries), as stated in each PROVENANCE.txt
PROVENANCE_COUNTS = [
    ("vaswani", "trec", 11429, 93, 2083, 93),
    ("cranfield", "cranfield", 1400, 225, 1837, 225),
    ("cacm", "cacm", 3204, 64, 796, 52),
    ("medline", "medline", 1033, 30, 696, 30),
]
EMPTY_RECORDS = {"cranfield": {"471", "995"}}   # records with no text at all in the distributed file


@pytest.mark.parametrize("folder, fmt, docs, topics, qrels, judged", PROVENANCE_COUNTS)
def test_counts_match_provenance(shared_data, folder, fmt, docs, topics, qrels, judged):
    provenance = (shared_data / folder / "PROVENANCE.txt").read_text()
    assert f"{docs:,} doc" in provenance          # the figures above are the file's own
    ds = gaia.datasets.get(f"{fmt}:{shared_data / folder}")
    corpus = list(ds.get_corpus_iter())
    assert len(corpus) == docs
    assert len({d["docno"] for d in corpus}) == docs
    assert {d["docno"] for d in corpus if not d["text"]} == EMPTY_RECORDS.get(folder, set())
    assert len(ds.get_topics()) == topics
    frame = ds.get_qrels()
    assert len(frame) == qrels
    assert frame["qid"].nunique() == judged
    assert set(frame["qid"]) <= set(ds.get_topics()["qid"])
    assert set(frame["docno"]) <= {d["docno"] for d in corpus}
    assert ds.provenance == provenance


def test_embedded_vaswani_equals_the_distributed_files(shared_data, vaswani):
    shared = gaia.datasets.get(f"trec:{shared_data / 'vaswani'}")
    assert list(vaswani.get_corpus_iter()) == list(shared.get_corpus_iter())
    pd.testing.assert_frame_equal(vaswani.get_topics(), shared.get_topics())
    pd.testing.assert_frame_equal(vaswani.get_qrels(), shared.get_qrels())
    assert "Vaswani" in vaswani.provenance


def test_vaswani_looks_like_a_pyterrier_dataset(vaswani):
    import pyterrier as pt
    assert isinstance(vaswani, pt.datasets.Dataset)
    assert list(vaswani.get_topics().columns) == ["qid", "query"]
    assert list(vaswani.get_qrels().columns) == ["qid", "docno", "label"]
    first = next(iter(vaswani.get_corpus_iter()))
    assert first["docno"] == "1" and first["text"].startswith("compact memories have flexible capacities")
    assert vaswani.get_topics().iloc[0]["query"].startswith("MEASUREMENT OF DIELECTRIC CONSTANT")


def test_cranfield_queries_are_numbered_by_position(shared_data):
    topics = gaia.datasets.get(f"cranfield:{shared_data / 'cranfield'}").get_topics()
    assert list(topics["qid"]) == [str(i) for i in range(1, 226)]
    # the file's third query is '.I 004': position 3 is what the judgments call query 3
    assert topics.iloc[2]["query"].startswith("what problems of heat conduction in composite slabs")


def test_cranfield_keeps_its_graded_and_negative_labels(shared_data):
    labels = gaia.datasets.get(f"cranfield:{shared_data / 'cranfield'}").get_qrels()["label"]
    assert set(labels) == {-1, 1, 2, 3, 4}


def test_cacm_skips_the_sentinel_query_and_normalises_ids(shared_data):
    ds = gaia.datasets.get(f"cacm:{shared_data / 'cacm'}")
    assert "0" not in set(ds.get_topics()["qid"])
    assert ds.get_qrels().iloc[0].to_dict() == {"qid": "1", "docno": "1410", "label": 1}


def test_beir_folder(tmp_path):
    (tmp_path / "qrels").mkdir()
    with open(tmp_path / "corpus.jsonl", "w") as f:
        f.write(json.dumps({"_id": "d1", "title": "Green IR", "text": "energy of search"}) + "\n")
        f.write(json.dumps({"_id": "d2", "text": "carbon"}) + "\n")
    with open(tmp_path / "queries.jsonl", "w") as f:
        f.write(json.dumps({"_id": "q1", "text": "search energy"}) + "\n")
        f.write(json.dumps({"_id": "q2", "text": "not judged"}) + "\n")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\n")
    ds = gaia.datasets.get(f"beir:{tmp_path}")
    assert list(ds.get_corpus_iter()) == [{"docno": "d1", "text": "Green IR energy of search"},
                                          {"docno": "d2", "text": "carbon"}]
    assert ds.get_topics().to_dict("records") == [{"qid": "q1", "query": "search energy"}]
    assert ds.get_qrels().to_dict("records") == [{"qid": "q1", "docno": "d1", "label": 2}]


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown dataset 'msmarco'.*vaswani.*cranfield:PATH.*beir:PATH"):
        gaia.datasets.get("msmarco")
    with pytest.raises(ValueError, match="give the folder"):
        gaia.datasets.get("cacm:")


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="cran.all.1400"):
        gaia.datasets.get(f"cranfield:{tmp_path}").get_corpus_iter()


def test_malformed_smart_file_names_file_and_line(tmp_path):
    for name in ("MED.QRY", "MED.REL"):
        (tmp_path / name).write_text("")
    (tmp_path / "MED.ALL").write_text(".I 1\n.W\nfine text\nstray\n.I\n")
    ds = gaia.datasets.get(f"medline:{tmp_path}")
    with pytest.raises(MalformedFileError, match=re.escape(f"{tmp_path / 'MED.ALL'}, line 5")):
        list(ds.get_corpus_iter())


def test_malformed_trec_files_name_file_and_line(tmp_path):
    docs = tmp_path / "docs.trec.gz"
    with gzip.open(docs, "wt") as f:
        f.write("<DOC>\n<DOCNO>1</DOCNO>\nok\n</DOC>\n<DOC>\nno number\n</DOC>\n")
    with pytest.raises(MalformedFileError, match=r"docs.trec.gz, line 7: .*no <DOCNO>"):
        list(gaia.datasets.trec.read_trec_docs(docs))
    qrels = tmp_path / "qrels"
    qrels.write_text("1 0 5 1\n1 0 6\n")
    with pytest.raises(MalformedFileError, match=r"qrels, line 2"):
        gaia.datasets.trec.read_trec_qrels(qrels)


def test_non_utf8_bytes_are_replaced_not_fatal(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "docs.trec").write_bytes(b"<DOC>\r\n<DOCNO>7</DOCNO>\r\ncaf\xe9 \xff latin\r\n</DOC>\r\n")
    (tmp_path / "query-text.trec").write_bytes(b"<top>\n<num>1</num><title>\ncaf\xe9\n</title>\n</top>\n")
    (tmp_path / "qrels").write_text("1 0 7 1\n")
    ds = gaia.datasets.get(f"trec:{tmp_path}")
    assert list(ds.get_corpus_iter()) == [{"docno": "7", "text": "caf\ufffd \ufffd latin"}]
    assert ds.get_topics()["query"].tolist() == ["caf\ufffd"]


# sha256 of the JSON of (corpus, topics, qrels) as read before the readers were hardened (issue 16):
# the hardened readers must read the distributed files exactly as before
READ_DIGESTS = {
    "vaswani": ("f40195d48dfbb6625e8b52fa6e4a699eef2c536914065d70fe470683f151097a",
                "40645369c5f590fb1cb06f7b3e64fc7bca0656e1e80f2c1ec75dc75eaed89da5",
                "eee271f9d53510644be36372cfa593e99e1857816e0f3e271c397dc449df12be"),
    "cranfield": ("c7451d71f810b875b91b09a7aff717958161c9a2bd47b631e7f5c834af966848",
                  "f80f2f908a3b19f8dfecdaa4ee40915af93462f875a5c2e0bc385cac07d8575d",
                  "8c861e1fc6d764e7dcfb0bbbfadde40248197761057be1f1ae389643c014ccf9"),
    "cacm": ("ecd33a7ca7569cc956d6717e9c0fe510598cd928bc036db4898a42f9fb1edb55",
             "09f62cca6806306569fc0fa6bb3010a621713b23da302ea01ac53881afbac987",
             "c183531a2805974dc59a6461724e3c3000775bb09a9ed640215f6878704e1edb"),
    "medline": ("9de3c4f3481b9e80485aab66c90da581107fb88ec28b9f3b4edbf17e2ae1f7fb",
                "e3c740bb061039382d8f02e04bd17d0f965c357e48cd970adf5440c97dea831e",
                "6ac3fa034adf3ebd1f7708e9810074e86ca5ef34c2265b1347e8dfa5a7d99a1c"),
}


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("folder, fmt", [(f, fmt) for f, fmt, *_ in PROVENANCE_COUNTS])
def test_distributed_files_read_exactly_as_before(shared_data, vaswani, folder, fmt):
    for ds in [gaia.datasets.get(f"{fmt}:{shared_data / folder}")] + ([vaswani] if folder == "vaswani" else []):
        read = (list(ds.get_corpus_iter()), ds.get_topics().to_dict("records"), ds.get_qrels().to_dict("records"))
        assert tuple(_digest(part) for part in read) == READ_DIGESTS[folder]


def _copy(shared_data, folder, tmp_path, **replaced: bytes):
    """The collection's folder copied to tmp_path, with some files' bytes replaced."""
    for path in (shared_data / folder).iterdir():
        if path.is_file():
            (tmp_path / path.name).write_bytes(replaced.get(path.name.replace(".", "_"), path.read_bytes()))
    return tmp_path


def _cut_at(data: bytes, marker: bytes, occurrence: int, after: bytes = b"") -> bytes:
    """``data`` cut just after ``after`` following the ``occurrence``-th ``marker`` (0 = the first)."""
    at = -1
    for _ in range(occurrence + 1):
        at = data.index(marker, at + 1)
    return data[:data.index(after, at) + len(after)] if after else data[:at]


def _record_696(data: bytes, after: bytes) -> int:
    """The offset just after ``after`` inside Cranfield's record 696."""
    start = data.index(b"\n.I 696\n") + 1
    return data.index(after, start) + len(after)


CRAN_CUTS = {   # where the file is cut, and which line the error names: the cut line or the record's .I line
    "mid-line": (lambda d: _record_696(d, b".W\n") + 10, "cut", "the last line has no line break"),
    "after the .I line": (lambda d: _record_696(d, b"696\n"), ".I", "record 696 has no '.T', '.A', '.B', '.W' field"),
    "inside the title": (lambda d: _record_696(d, b"exhausting\n"), ".I", "record 696 has no '.A', '.B', '.W' field"),
    "after the .W marker": (lambda d: _record_696(d, b".W\n"), "cut", "the file ends with an empty '.W' field"),
}


@pytest.mark.parametrize("cut", CRAN_CUTS)
def test_cranfield_cut_short_inside_a_record_names_file_and_line(shared_data, tmp_path, cut):
    offset, named, message = CRAN_CUTS[cut]
    data = (shared_data / "cranfield" / "cran.all.1400").read_bytes()
    cut_data = data[:offset(data)]
    cut_line = cut_data.count(b"\n") + (not cut_data.endswith(b"\n"))
    record_line = data[:data.index(b"\n.I 696\n") + 1].count(b"\n") + 1
    line = cut_line if named == "cut" else record_line
    ds = gaia.datasets.get(f"cranfield:{_copy(shared_data, 'cranfield', tmp_path, cran_all_1400=cut_data)}")
    with pytest.raises(MalformedFileError, match=re.escape(f"{tmp_path / 'cran.all.1400'}, line {line}: {message}")):
        list(ds.get_corpus_iter())


def test_cranfield_cut_between_records_cannot_be_told(shared_data, tmp_path):
    """The documented limit: a SMART file cut exactly at a record boundary is a shorter, valid file."""
    data = (shared_data / "cranfield" / "cran.all.1400").read_bytes()
    folder = _copy(shared_data, "cranfield", tmp_path, cran_all_1400=_cut_at(data, b"\n.I 696\n", 0) + b"\n")
    assert len(list(gaia.datasets.get(f"cranfield:{folder}").get_corpus_iter())) == 695


def test_cacm_query_file_without_its_sentinel_is_cut_short(shared_data, tmp_path):
    data = (shared_data / "cacm" / "query.text").read_bytes()
    folder = _copy(shared_data, "cacm", tmp_path, query_text=_cut_at(data, b".I 64\n", 0))
    with pytest.raises(MalformedFileError, match=r"query.text, line \d+: the file does not end with its '.I 0'"):
        gaia.datasets.get(f"cacm:{folder}").get_topics()


@pytest.mark.parametrize("name, text, message", [
    ("MED.ALL", ".I 1\n.W\nfine\n.Z\nnot a field\n", r"MED.ALL, line 4: unknown field '.Z' \(this format has .I .W\)"),
    ("MED.ALL", ".I 1\n.W\nfine\n.I 2\n.W\nagain\n.I 1\n.W\nthird\n", r"MED.ALL, line 7: record id '1' repeats the one at line 1"),
    ("MED.ALL", "\n\n", r"MED.ALL, line 1: no '.I' records"),
    ("MED.QRY", ".I 1\n.W\nq\n.I 01\n.W\nr\n", r"MED.QRY, line 4: qid '1' repeats the one at line 1"),
    ("MED.QRY", ".I one\n.W\nq\n", r"MED.QRY, line 1: query id 'one' is not a number"),
    ("MED.QRY", ".I 1\n.W\n\n.I 2\n.W\nq\n", r"MED.QRY, line 1: query 1 has no '.W' text"),
    ("MED.REL", "1 0 5 1\n1 0 6 1\n1 0 5 2\n", r"MED.REL, line 3: qid '1', docno '5' is judged again \(first at line 1\)"),
    ("MED.REL", "1 0 5 inf\n", r"MED.REL, line 1: label 'inf' is not a finite number"),
])
def test_inconsistent_smart_and_qrels_files_name_file_and_line(tmp_path, name, text, message):
    files = {"MED.ALL": ".I 1\n.W\nfine\n", "MED.QRY": ".I 1\n.W\nq\n", "MED.REL": "1 0 1 1\n", name: text}
    for file_name, content in files.items():
        (tmp_path / file_name).write_text(content)
    ds = gaia.datasets.get(f"medline:{tmp_path}")
    with pytest.raises(MalformedFileError, match=message):
        list(ds.get_corpus_iter()), ds.get_topics(), ds.get_qrels()


def _trec_folder(tmp_path, docs, topics="<top>\n<num>1</num><title>\nq\n</title>\n</top>\n", more_docs=None):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.trec").write_text(docs)
    if more_docs is not None:
        (tmp_path / "corpus" / "b.trec").write_text(more_docs)
    (tmp_path / "query-text.trec").write_text(topics)
    (tmp_path / "qrels").write_text("1 0 1 1\n")
    return gaia.datasets.get(f"trec:{tmp_path}")


ONE_DOC = "<DOC>\n<DOCNO>1</DOCNO>\ntext\n</DOC>\n"


@pytest.mark.parametrize("docs, more_docs, message", [
    (ONE_DOC + "<DOC>\n<DOCNO>2</DOCNO>\ncut he", None, r"a.trec, line 5: record is not closed by </DOC>"),
    (ONE_DOC + "<DO", None, r"a.trec, line 5: text outside any <DOC> record"),
    (ONE_DOC + "<DOC>\n<DOCNO></DOCNO>\n</DOC>\n", None, r"a.trec, line 6: empty or missing docno \(''\)"),
    (ONE_DOC + "<DOC>\n<DOCNO>2</DOCNO><DOCNO>3</DOCNO>\n</DOC>\n", None, r"a.trec, line 6: a second <DOCNO>"),
    (ONE_DOC + "<DOC>\n<DOCNO>1</DOCNO>\n</DOC>\n", None, r"a.trec, line 6: docno '1' repeats the one at line 2"),
    (ONE_DOC, ONE_DOC, r"b.trec, line 2: docno '1' repeats the one at .*a.trec, line 2"),
    ("</DOC>\n", None, r"a.trec, line 1: </DOC> closes no open <DOC>"),
])
def test_malformed_trec_documents_name_file_and_line(tmp_path, docs, more_docs, message):
    with pytest.raises(MalformedFileError, match=message):
        list(_trec_folder(tmp_path, docs, more_docs=more_docs).get_corpus_iter())


TOPIC = "<top>\n<num>1</num><title>\nfirst\n</title>\n</top>\n"


@pytest.mark.parametrize("topics, message", [
    (TOPIC + "<top>\n<num>2</num><title>\nunclosed\n", r"line 6: topic is not closed by </top>"),
    (TOPIC + "<top>\n<num>2</num><title>\n<top>\n", r"line 8: <top> opened inside the topic started at line 6"),
    (TOPIC + TOPIC, r"line 6: qid '1' repeats the one at line 1"),
    (TOPIC + "stray\n", r"line 5: text outside any <top> topic"),
    ("<top>\n<num>3</num><title>\n</title>\n</top>\n", r"line 1: topic 3 has an empty <title>"),
    ("</top>\n", r"line 1: </top> closes no open <top> topic"),
])
def test_malformed_trec_topics_name_file_and_line(tmp_path, topics, message):
    with pytest.raises(MalformedFileError, match="query-text.trec, " + message):
        _trec_folder(tmp_path, ONE_DOC, topics=topics).get_topics()


def test_vaswani_cut_short_names_file_and_line(shared_data, tmp_path):
    docs = (shared_data / "vaswani" / "corpus" / "doc-text.trec").read_bytes()
    topics = (shared_data / "vaswani" / "query-text.trec").read_bytes()
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "doc-text.trec").write_bytes(docs[:len(docs) // 2])
    (tmp_path / "query-text.trec").write_bytes(topics[:len(topics) // 2])
    (tmp_path / "qrels").write_bytes((shared_data / "vaswani" / "qrels").read_bytes())
    ds = gaia.datasets.get(f"trec:{tmp_path}")
    with pytest.raises(MalformedFileError, match=r"doc-text.trec, line \d+: record is not closed by </DOC>"):
        list(ds.get_corpus_iter())
    with pytest.raises(MalformedFileError, match=r"query-text.trec, line \d+: topic is not closed by </top>"):
        ds.get_topics()


@pytest.mark.parametrize("content, message", [
    (lambda data: data[:len(data) // 2], r"line \d+: corrupt or truncated gzip data"),
    (lambda data: b"not gzip at all", r"line 1: corrupt or truncated gzip data"),
])
def test_gzip_errors_name_the_file(tmp_path, content, message):
    data = gzip.compress(b"".join(b"<DOC>\n<DOCNO>%d</DOCNO>\n%s\n</DOC>\n" % (i, os.urandom(40).hex().encode())
                                  for i in range(200)))
    path = tmp_path / "docs.trec.gz"
    path.write_bytes(content(data))
    with pytest.raises(MalformedFileError, match=re.escape(str(path)) + ", " + message):
        list(gaia.datasets.trec.read_trec_docs(path))


def test_read_errors_name_the_file(tmp_path):
    (tmp_path / "MED.ALL").mkdir()      # a folder where a file is expected: the error names it
    with pytest.raises(OSError, match=re.escape(str(tmp_path / "MED.ALL"))):
        list(gaia.datasets.smart.read_smart(tmp_path / "MED.ALL", "W"))


def test_cr_only_line_endings_are_lines(tmp_path):
    path = tmp_path / "MED.ALL"
    path.write_bytes(b".I 1\r.W\rold mac\rfile\r")
    assert list(gaia.datasets.smart.read_smart(path, "W")) == [("1", {"W": "old mac file"}, 1)]


@pytest.mark.parametrize("corpus, queries, qrels, message", [
    ('{"_id": null, "text": "x"}', None, None, r"corpus.jsonl, line 1: empty or missing docno \(None\)"),
    ('{"_id": NaN, "text": "x"}', None, None, r"corpus.jsonl, line 1: empty or missing docno \(nan\)"),
    ('{"_id": "", "text": "x"}', None, None, r"corpus.jsonl, line 1: empty or missing docno"),
    ('{"_id": 7}\n{"_id": "7"}', None, None, r"corpus.jsonl, line 2: docno '7' repeats the one at line 1"),
    ('["_id"]', None, None, r"corpus.jsonl, line 1: expected a JSON object with an '_id' field"),
    ('{"_id": "d", "title": 5}', None, None, r"corpus.jsonl, line 1: field 'title' is 5, not text"),
    ('{"_id": "d", "text": "cut', None, None, r"corpus.jsonl, line 1: not valid JSON"),
    (None, '{"_id": "q", "text": "a"}\n{"_id": "q", "text": "b"}', None, r"queries.jsonl, line 2: qid 'q' repeats"),
    (None, '{"_id": "q", "text": " "}', None, r"queries.jsonl, line 1: query 'q' has no text"),
    (None, None, "q\td\t1\nq\td\t2\n", r"test.tsv, line 2: qid 'q', docno 'd' is judged again"),
    (None, None, "q\t\t1\n", r"test.tsv, line 1: empty qid or docno"),
])
def test_malformed_beir_files_name_file_and_line(tmp_path, corpus, queries, qrels, message):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(corpus or '{"_id": "d", "text": "x"}')
    (tmp_path / "queries.jsonl").write_text(queries or '{"_id": "q", "text": "a"}')
    (tmp_path / "qrels" / "test.tsv").write_text(qrels or "q\td\t1\n")
    ds = gaia.datasets.get(f"beir:{tmp_path}")
    with pytest.raises(MalformedFileError, match=message):
        list(ds.get_corpus_iter()), ds.get_topics(), ds.get_qrels()


# --- Property-based: mangled files are read whole and well-formed, or refused with an error naming them ---

# (collection, format, file, the part it feeds, a regex for the bytes that open a record, records kept)
SAMPLES = {
    "cranfield docs": ("cranfield", "cranfield", "cran.all.1400", "corpus", rb"^\.I ", 6),
    "cranfield topics": ("cranfield", "cranfield", "cran.qry", "topics", rb"^\.I ", 4),
    "cranfield qrels": ("cranfield", "cranfield", "cranqrel", "qrels", rb"^", 12),
    "cacm docs": ("cacm", "cacm", "cacm.all", "corpus", rb"^\.I ", 5),
    "cacm topics": ("cacm", "cacm", "query.text", "topics", rb"^\.I ", 4),
    "cacm qrels": ("cacm", "cacm", "qrels.text", "qrels", rb"^", 12),
    "medline docs": ("medline", "medline", "MED.ALL", "corpus", rb"^\.I ", 4),
    "medline topics": ("medline", "medline", "MED.QRY", "topics", rb"^\.I ", 4),
    "medline qrels": ("medline", "medline", "MED.REL", "qrels", rb"^", 12),
    "trec docs": ("vaswani", "trec", "corpus/doc-text.trec", "corpus", rb"^<DOC>", 6),
    "trec topics": ("vaswani", "trec", "query-text.trec", "topics", rb"^<top>", 4),
    "trec qrels": ("vaswani", "trec", "qrels", "qrels", rb"^", 12),
    "beir docs": ("beir", "beir", "corpus.jsonl", "corpus", rb"^", 5),
    "beir topics": ("beir", "beir", "queries.jsonl", "topics", rb"^", 4),
    "beir qrels": ("beir", "beir", "qrels/test.tsv", "qrels", rb"^", 12),
}
SENTINELS = {"query.text": b".I 0\n"}      # CACM's query file must end with its sentinel record
# the formats with no closing mark: a cut at a line break inside a record's last field cannot be seen
CUT_MAY_SHORTEN_LAST_TEXT = {"cranfield", "cacm", "medline"}
TOKENS = [".I", ".I 1", ".I 0", ".W", ".T", ".X", ".Z", "<DOC>", "</DOC>", "<DOCNO>", "</DOCNO>", "<top>",
          "</top>", "<num>", "<title>", '{"_id": ', '"text": ', "}", "\t", "\n", "\r", " ", "\x00", "NaN"]


def _head(data: bytes, opens: bytes, records: int) -> bytes:
    """The first ``records`` records (or lines) of a file."""
    starts = [m.start() for m in re.finditer(opens, data, re.MULTILINE)]
    return data[:starts[records]] if len(starts) > records else data


def _beir_source(shared_data, folder):
    vaswani = gaia.datasets.get(f"trec:{shared_data / 'vaswani'}")
    docs = [{"_id": d["docno"], "title": "t", "text": d["text"]} for d, _ in zip(vaswani.get_corpus_iter(), range(5))]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = vaswani.get_topics().head(4)
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q.qid, "text": q.query}) + "\n"
                                                  for q in queries.itertuples()))
    qrels = vaswani.get_qrels().head(12)
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{j.qid}\t{j.docno}\t{j.label}\n" for j in qrels.itertuples()))
    return folder


@pytest.fixture(scope="module")
def samples(shared_data, tmp_path_factory):
    """{sample: (a small copy of its collection, every file cut to a few records; the sample file's bytes)}."""
    small = {}
    for name, (collection, _, file_name, _, opens, records) in SAMPLES.items():
        if collection not in small:
            small[collection] = tmp_path_factory.mktemp(collection)
        source = (_beir_source(shared_data, tmp_path_factory.mktemp("beir")) if collection == "beir"
                  else shared_data / collection)
        path = small[collection] / file_name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(_head((source / file_name).read_bytes(), opens, records) + SENTINELS.get(file_name, b""))
    return {name: (small[spec[0]], (small[spec[0]] / spec[2]).read_bytes()) for name, spec in SAMPLES.items()}


def _read(sample, folder, data: bytes):
    """Read the part a sample's file feeds, with the file holding ``data``: (records, None) or (None, error)."""
    _, fmt, file_name, part, *_ = SAMPLES[sample]
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(folder, tmp, dirs_exist_ok=True)
        path = Path(tmp) / file_name
        path.write_bytes(data)
        try:
            ds = gaia.datasets.get(f"{fmt}:{tmp}")
            if part == "corpus":
                return [(d["docno"], d["text"]) for d in ds.get_corpus_iter()], None
            frame = ds.get_topics() if part == "topics" else ds.get_qrels()
            return list(frame.itertuples(index=False, name=None)), None
        except Exception as error:      # noqa: BLE001 -- the property is about which errors escape
            assert isinstance(error, (ValueError, OSError)), f"{type(error).__name__}: {error}"
            assert str(path) in str(error), f"the error does not name {path}: {error}"
            return None, error


def _assert_well_formed(sample, records):
    """Non-empty unique string ids, string text (non-empty for queries), integer labels."""
    part = SAMPLES[sample][3]
    id_width = 2 if part == "qrels" else 1
    ids = [record[:id_width] for record in records]
    assert len(set(ids)) == len(ids), "repeated ids"
    for record in records:
        assert all(isinstance(value, str) and value.strip() for value in record[:id_width])
        label_or_text = record[id_width]
        if part == "qrels":
            assert isinstance(label_or_text, int)
        else:
            assert isinstance(label_or_text, str) and (part == "corpus" or label_or_text.strip())


@st.composite
def _mangled(draw, data: bytes) -> bytes:
    """``data`` with a junk line inserted, a line dropped or replaced, or junk spliced in anywhere."""
    lines = data.splitlines(keepends=True)
    at = draw(st.integers(0, len(lines)))
    junk = draw(st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=8)), max_size=6).map("".join)).encode()
    how = draw(st.sampled_from(["insert line", "drop line", "replace line", "splice"]))
    if how == "insert line":
        lines.insert(at, junk + b"\n")
    elif how == "drop line" and at < len(lines):
        del lines[at]
    elif how == "replace line" and at < len(lines):
        lines[at] = junk + lines[at][-1:]
    else:
        start = draw(st.integers(0, len(data)))
        return data[:start] + junk + data[start + draw(st.integers(0, 20)):]
    return b"".join(lines)


@pytest.mark.parametrize("sample", SAMPLES)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mangled_files_are_read_well_formed_or_refused_naming_the_file(samples, sample, data):
    folder, original = samples[sample]
    records, _ = _read(sample, folder, data.draw(_mangled(original)))
    if records is not None:
        _assert_well_formed(sample, records)


@pytest.mark.parametrize("sample", [s for s in SAMPLES if SAMPLES[s][3] != "qrels"])
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_files_cut_at_any_byte_lose_nothing_that_could_be_seen(samples, sample, data):
    """A cut file is refused, or reads as a prefix of the whole one; only in the formats with no
    closing mark (SMART) may the last record's text be shorter (the documented limit)."""
    folder, original = samples[sample]
    whole, error = _read(sample, folder, original)
    assert error is None and whole
    cut, _ = _read(sample, folder, original[:data.draw(st.integers(0, len(original) - 1))])
    if cut is None:
        return
    assert cut[:-1] == whole[:len(cut) - 1]
    if cut and cut[-1] != whole[len(cut) - 1]:
        assert SAMPLES[sample][0] in CUT_MAY_SHORTEN_LAST_TEXT
        assert cut[-1][0] == whole[len(cut) - 1][0] and whole[len(cut) - 1][1].startswith(cut[-1][1])


@settings(max_examples=50, deadline=None)
@given(cut=st.floats(0, 1, exclude_max=True))
def test_gzip_cut_at_any_byte_is_refused_or_a_prefix(cut):
    whole = b"".join(b"<DOC>\n<DOCNO>%d</DOCNO>\n%s\n</DOC>\n" % (i, b"word %d " % i * 30) for i in range(40))
    compressed = gzip.compress(whole)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "docs.trec.gz"
        path.write_bytes(compressed[:int(cut * len(compressed))])
        docs = []
        with pytest.raises(MalformedFileError, match=re.escape(str(path))):
            docs.extend(gaia.datasets.trec.read_trec_docs(path))
        assert [d["docno"] for d in docs] == [str(i) for i in range(len(docs))]
