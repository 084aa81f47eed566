"""Where runs go: an MLflow tracking URI and an experiment, and keeping credentials out of everything.

Credentials come only from MLflow's own environment variables (MLFLOW_TRACKING_USERNAME / _PASSWORD /
_TOKEN, DATABRICKS_TOKEN, cloud storage keys), which MLflow reads itself. We never store them, and every
text we store or print that came from MLflow (an error message) is scrubbed of their values, as is a
tracking URI of any user:password@ part.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ..errors import PykernelExtError

ENV_URI = "PYKERNEL_EXT_MLFLOW_URI"
ENV_EXPERIMENT = "PYKERNEL_EXT_MLFLOW_EXPERIMENT"
DEFAULT_EXPERIMENT = "Default"  # the experiment every MLflow tracking server has (id 0)

# Variables whose values are secrets; read only to scrub them from messages.
SECRET_VARIABLES = (
    "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_ACCESS_KEY", "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_CLIENT_SECRET", ENV_URI, "MLFLOW_TRACKING_URI",
)
_REDACTED = "***"


class MlflowSyncError(PykernelExtError):
    """Pushing to or pulling from MLflow failed; the message says what to do."""


class MlflowTargetError(MlflowSyncError):
    """No tracking URI was given, or it is not one MLflow understands."""


class ServerUnreachable(MlflowSyncError):
    """Nothing answers at the tracking server's address (it is down, or the address is wrong)."""


@dataclass(frozen=True)
class MlflowTarget:
    """A tracking URI (as given: it may embed credentials, so never store or print it) and an experiment."""

    tracking_uri: str
    experiment: str

    @property
    def label(self) -> str:
        """The tracking URI without credentials: what the outbox stores and messages show."""
        return redact_uri(self.tracking_uri)

    @property
    def is_http(self) -> bool:
        return urlsplit(self.tracking_uri).scheme in ("http", "https")

    @classmethod
    def from_env(cls) -> "MlflowTarget | None":
        """The mirror's target: PYKERNEL_EXT_MLFLOW_URI (+ PYKERNEL_EXT_MLFLOW_EXPERIMENT), or None when unset."""
        uri = os.environ.get(ENV_URI, "").strip()
        if not uri:
            return None
        return cls(uri, os.environ.get(ENV_EXPERIMENT, "").strip() or DEFAULT_EXPERIMENT)

    @classmethod
    def resolve(cls, tracking_uri: str | None, experiment: str | None) -> "MlflowTarget":
        """The target of a command: the options given, else the mirror's variables, else MLflow's own."""
        uri = (tracking_uri or os.environ.get(ENV_URI) or os.environ.get("MLFLOW_TRACKING_URI") or "").strip()
        if not uri:
            raise MlflowTargetError(
                f"no MLflow tracking server given: pass --tracking-uri URI (e.g. http://mlflow.example:5000 or "
                f"sqlite:///mlflow.db) or set {ENV_URI}")
        scheme = urlsplit(uri).scheme
        if not scheme or ("://" not in uri and scheme not in ("databricks", "databricks-uc", "file")):
            raise MlflowTargetError(
                f"--tracking-uri {redact_uri(uri)!r} has no scheme: write http://HOST:PORT for a tracking server, "
                "sqlite:///PATH for a database, or file:///PATH for a folder")
        name = (experiment or os.environ.get(ENV_EXPERIMENT) or os.environ.get("MLFLOW_EXPERIMENT_NAME")
                or DEFAULT_EXPERIMENT).strip()
        return cls(uri, name)


def redact_uri(uri: str) -> str:
    """`uri` without user:password@ and without a query string (which may carry a token)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return _REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def scrub(text: str, *uris: str) -> str:
    """`text` with every secret it could carry replaced: the values of the secret variables and the
    userinfo and query of the given URIs (as they appear in MLflow's error messages)."""
    secrets = [os.environ.get(name, "") for name in SECRET_VARIABLES]
    for uri in uris:
        parts = urlsplit(uri) if uri else None
        if parts is None:
            continue
        if "@" in parts.netloc:
            secrets.append(parts.netloc.rsplit("@", 1)[0])
        if parts.query:
            secrets.append(parts.query)
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        if secret in (os.environ.get(ENV_URI), os.environ.get("MLFLOW_TRACKING_URI")):
            text = text.replace(secret, redact_uri(secret))
        else:
            text = text.replace(secret, _REDACTED)
    return _BASIC_AUTH.sub(r"\1" + _REDACTED, text)


# An Authorization header echoed in an error message (requests does that in some exceptions).
_BASIC_AUTH = re.compile(r"((?:Basic|Bearer)\s+)[A-Za-z0-9+/=._-]{8,}")
