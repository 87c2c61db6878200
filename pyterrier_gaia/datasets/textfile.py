"""Reading the text files of test collections: plain or gzipped, any line ending, any bytes."""
import gzip
from pathlib import Path
from typing import Iterator, Tuple


class MalformedFileError(ValueError):
    """A collection file that does not follow its format; the message names the file and line."""

    def __init__(self, path, line_no: int, problem: str):
        super().__init__(f"{path}, line {line_no}: {problem}")
        self.path, self.line_no = str(path), line_no


def numbered_lines(path) -> Iterator[Tuple[int, str]]:
    """Yield (line number from 1, line without its ending) from a text file.

    ``.gz`` files are decompressed; CRLF and CR endings are handled; bytes that are not
    UTF-8 are replaced (U+FFFD) rather than failing, as old collections hold Latin-1 stray bytes.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as raw:
        for line_no, line in enumerate(raw, start=1):
            yield line_no, line.decode("utf-8", errors="replace").rstrip("\r\n").rstrip("\r")


def require_file(folder: Path, name: str, fmt: str) -> Path:
    """The file ``name`` inside ``folder``, or a FileNotFoundError saying what the format expects."""
    path = Path(folder) / name
    if not path.is_file():
        raise FileNotFoundError(f"{fmt} collection at {folder}: expected the file {name!r}, which is missing")
    return path
