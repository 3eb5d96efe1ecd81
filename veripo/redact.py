"""Secrets never reach a file or a log: :func:`redact_url` for URLs, :func:`redact_text` for free text.

A URL keeps its scheme, host, port and path; a password in it (``user:password@host``) becomes ``***`` and so
does the value of a query parameter that names a secret (``api_key``, ``key``, ``token``, ``password``,
``secret``, ``sig``...). Free text additionally loses ``Bearer <token>`` values, ``sk-...`` style API keys and
any literal secret given (e.g. the judge's API key read from the environment). :func:`redact_tree` does the
same for a whole config on its way to disk (``config.yaml``, ``loop_config.yaml``).
"""
from __future__ import annotations

import re
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRET_PARAM = re.compile(r"(?i)(api[_-]?key|key|token|access[_-]?token|password|passwd|pwd|secret|sig|signature|auth)")
_URL_CRED = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s:]*):(?P<pw>[^/@\s]*)@")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
_API_KEY = re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_-]{8,}")


def redact_url(url: str | None) -> str | None:
    """``https://user:pw@host/v1?api_key=k&x=1`` -> ``https://user:***@host/v1?api_key=***&x=1``."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL_CRED.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAM.fullmatch(k) for k, _ in pairs):
            query = urlencode([(k, MASK if _SECRET_PARAM.fullmatch(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every URL redacted (:func:`redact_url`), bearer tokens, ``sk-`` keys and the literal
    ``secrets`` (strings of 4+ characters) replaced by ``***``."""
    if not text:
        return text
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, MASK)
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)) or "", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _API_KEY.sub(lambda m: f"{m.group(1)}-{MASK}", text)


def redact_tree(value: Any) -> Any:
    """A copy of a config tree (dicts, lists, scalars) fit for disk: every URL in a string redacted
    (:func:`redact_url`) and the string value of a key that names a secret (``api_key``, ``token``,
    ``password``...) replaced by ``***``. Other values are kept as they are (paths, names, numbers)."""
    if isinstance(value, dict):
        return {k: (MASK if isinstance(v, str) and v and isinstance(k, str) and _SECRET_PARAM.fullmatch(k)
                    else redact_tree(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_tree(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)) or "", value)
    return value
