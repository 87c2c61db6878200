"""A griffe extension for the documentation site: the Sphinx roles of the package's docstrings
(``:class:`~pyterrier_gaia.VectorIndex```, ``:meth:`fit```) shown as inline code, as Python's
``help()`` readers see them, instead of raw role markup (mkdocstrings' Sphinx style parses the
``:param:`` fields, not the roles)."""
import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:meth|class|func|data|attr|mod|obj|exc):`(?P<body>[^`]+)`")


def plain(match: re.Match) -> str:
    """A role's text: ``text <target>`` gives text, ``~a.b.c`` gives c, anything else stays whole."""
    body = match.group("body").strip()
    titled = re.fullmatch(r"(?P<title>.+?)\s*<[^>]+>", body)
    if titled:
        body = titled.group("title")
    elif body.startswith("~"):
        body = body[1:].rsplit(".", 1)[-1]
    return f"`{body}`"


class SphinxRoles(griffe.Extension):
    """Rewrites each docstring's roles with :func:`plain` as griffe loads the object."""

    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(plain, obj.docstring.value)
