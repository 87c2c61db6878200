"""Reading the text files of test collections: plain or gzipped, any line ending, any bytes."""
import gzip
import io
import zlib
from pathlib import Path
from typing import Dict, Iterator, Tuple


class MalformedFileError(ValueError):
    """A collection file that does not follow its format; the message names the file and line."""

    def __init__(self, path, line_no: int, problem: str):
        super().__init__(f"{path}, line {line_no}: {problem}")
        self.path, self.line_no = str(path), line_no


def numbered_lines(path, *, complete: bool = False) -> Iterator[Tuple[int, str]]:
    """Yield (line number from 1, line without its ending) from a text file.

    ``.gz`` files are decompressed; LF, CRLF and CR endings are handled; bytes that are not
    UTF-8 are replaced (U+FFFD) rather than failing, as old collections hold Latin-1 stray bytes.
    With ``complete``, a last line with no line break is taken as a file cut short and refused.
    A corrupt or truncated gzip stream raises :class:`MalformedFileError`; any other read error an
    ``OSError``; both name the file and the line reached.
    """
    path = Path(path)
    line_no = 0
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None)
        try:
            for line_no, line in enumerate(text, start=1):
                if complete and not line.endswith("\n"):
                    raise MalformedFileError(path, line_no, "the last line has no line break: the file looks cut short")
                yield line_no, line.rstrip("\n")
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise MalformedFileError(path, line_no + 1, f"corrupt or truncated gzip data ({error})") from error
        except OSError as error:
            raise OSError(error.errno, f"{path}, line {line_no + 1}: {error.strerror or error}", str(path)) from error


def require_file(folder: Path, name: str, fmt: str) -> Path:
    """The file ``name`` inside ``folder``, or a FileNotFoundError saying what the format expects."""
    path = Path(folder) / name
    if not path.is_file():
        raise FileNotFoundError(f"{fmt} collection at {folder}: expected the file {name!r}, which is missing")
    return path


class UniqueIds:
    """The ids met so far in one collection (docnos or qids), refusing an empty or repeated one
    with the file and line of both occurrences."""

    def __init__(self, kind: str):
        self.kind = kind
        self._seen: Dict[str, Tuple[Path, int]] = {}

    def add(self, value, path, line_no: int) -> str:
        if not isinstance(value, str) or not value.strip():
            raise MalformedFileError(path, line_no, f"empty or missing {self.kind} ({value!r})")
        if value in self._seen:
            first_path, first_line = self._seen[value]
            where = f"line {first_line}" if str(first_path) == str(path) else f"{first_path}, line {first_line}"
            raise MalformedFileError(path, line_no, f"{self.kind} {value!r} repeats the one at {where}")
        self._seen[value] = (path, line_no)
        return value

    def __len__(self) -> int:
        return len(self._seen)
