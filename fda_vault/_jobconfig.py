"""The job's config file (TOML): what ``fda-vault run`` backs up, where, and who hears.

``--config FILE``, else ``$FDA_VAULT_CONFIG``, else ``$XDG_CONFIG_HOME/fda-vault/config.toml``
(default ``~/.config/fda-vault/config.toml``). Validated by pydantic with unknown keys
refused (a typo must not silently turn a retention rule off); every error names the
file, the line and the key.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fda_vault._config import DEFAULT_FULL_EVERY_DAYS, DEFAULT_LEVEL, xdg_home

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover (3.10: the same parser, from PyPI)
    import tomli as tomllib
from fda_vault._errors import UsageError

__all__ = [
    "CONFIG_ENV",
    "Destination",
    "JobConfig",
    "KeepPolicy",
    "config_json_schema",
    "default_config_path",
    "load_config",
    "mask_url",
    "masked",
    "resolve_config_path",
    "template",
    "write_template",
]

CONFIG_ENV = "FDA_VAULT_CONFIG"


_S3_URL = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?")
_NOTIFY_ON = Literal["failure", "success"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeepPolicy(_Strict):
    """A destination's retention (``prune``'s rules; 0 turns a rule off)."""

    last: int = Field(default=0, ge=0, description="the N newest")
    hourly: int = Field(default=0, ge=0)
    daily: int = Field(default=0, ge=0)
    weekly: int = Field(default=0, ge=0)
    monthly: int = Field(default=0, ge=0)
    yearly: int = Field(default=0, ge=0)
    within: str | None = Field(default=None, description="all within DURATION: 30d, 6m, 1y")

    @field_validator("within")
    @classmethod
    def _a_duration(cls, value: str | None) -> str | None:
        if value is not None:
            from fda_vault._prune import parse_duration

            try:
                parse_duration(value, "within")
            except UsageError as exc:  # said as the config's own error: file, line, key
                raise ValueError(exc.why) from None
        return value


class Destination(_Strict):
    """Where the archives go: the first is where ``run`` writes them, the others get
    copies (each verified there)."""

    location: str = Field(description="a folder (~ expanded) or s3://BUCKET/PREFIX")
    keep: KeepPolicy | None = Field(default=None, description="prune with this; none: keep all")
    object_lock_days: int = Field(default=0, ge=0, description="s3:// only: Object Lock days")
    object_lock_mode: Literal["governance", "compliance"] = "governance"

    @field_validator("location")
    @classmethod
    def _a_location(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty location")
        if value.startswith("s3:") and not re.fullmatch(
            r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?", value
        ):
            raise ValueError(f"not an s3://BUCKET/PREFIX URL: {value!r}")
        return value

    def resolved(self) -> Path | str:
        """The location as the library takes it: an absolute folder, or the URL."""
        if self.location.startswith("s3://"):
            return self.location.rstrip("/")
        return Path(self.location).expanduser().absolute()


class JobConfig(_Strict):
    """The whole job."""

    projects_dir: str = Field(default="~/fda-510k-data/projects", description="projects root")
    projects: list[str] = Field(default_factory=list, description="empty: every project")
    exclude: list[str] = Field(default_factory=list, description="backup --exclude globs")
    level: int = Field(default=DEFAULT_LEVEL, ge=0, le=9, description="0 stores, 1-9 deflate")
    full_every: int = Field(
        default=DEFAULT_FULL_EVERY_DAYS, ge=0, description="read every file this often (days)"
    )
    encrypt_to: list[str] = Field(default_factory=list, description="age recipients, @FILE")
    passphrase_file: str = Field(default="", description="OpenPGP AES-256 instead of age")
    identity: list[str] = Field(
        default_factory=list,
        description="age identity files that open the encrypted archives (to copy unchanged "
        "files from the last one, verify and prune)",
    )
    sign_key: str = Field(default="", description="minisign secret key: sign each archive")
    trusted_keys: list[str] = Field(
        default_factory=list, description="public keys the verify step requires"
    )
    notify: list[str] = Field(default_factory=list, description="Apprise URLs")
    notify_on: list[_NOTIFY_ON] = Field(default_factory=lambda: list[_NOTIFY_ON](["failure"]))
    ping_url: str = Field(default="", description="healthchecks-style: /start, /fail")
    destination: list[Destination] = Field(min_length=1)

    @field_validator("ping_url")
    @classmethod
    def _an_http_url(cls, value: str) -> str:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in {"http", "https"} or not parts.netloc:
                raise ValueError(f"not an http(s):// URL: {value!r}")
        return value

    @field_validator("notify")
    @classmethod
    def _apprise_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not re.fullmatch(r"[a-z][a-z0-9+.-]*://\S+", url):
                raise ValueError(f"not an Apprise URL (scheme://...): {url!r}")
        if value:
            import apprise  # only when there is something to check: it loads ~100 plugins

            for url in value:
                if not apprise.Apprise().add(url):
                    raise ValueError(f"Apprise does not know this URL: {mask_url(url)!r}")
        return value

    @property
    def projects_root(self) -> Path:
        return Path(self.projects_dir).expanduser().absolute()

    def path_of(self, text: str) -> Path:
        return Path(text).expanduser()


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/fda-vault/config.toml`` (default ``~/.config/...``)."""
    return xdg_home("XDG_CONFIG_HOME", ".config") / "fda-vault" / "config.toml"


def resolve_config_path(flag: Path | None) -> Path:
    """``--config``, else ``$FDA_VAULT_CONFIG``, else the XDG default; absolute."""
    if flag is not None:
        return flag.expanduser().absolute()
    env = os.environ.get(CONFIG_ENV)
    return Path(env).expanduser().absolute() if env else default_config_path()


def load_config(path: Path) -> JobConfig:
    """Read and validate ``path``; a UsageError naming the file, line and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(
            path, "no config file (`fda-vault config init` writes one)", reason="not_found"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(path, f"cannot read it ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = found.group(1) if found else str(max(1, len(text.splitlines())))  # at the end
        why = re.sub(r" \(at (line \d+, column \d+|end of document)\)$", "", str(exc))
        raise UsageError(f"{path}: line {line}", f"not valid TOML: {why}") from None
    try:
        return JobConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        key = _dotted(loc)
        message = "unknown key (a typo?)" if first["type"] == "extra_forbidden" else first["msg"]
        message = message.removeprefix("Value error, ")
        raise UsageError(f"{path}: line {_line_of(text, loc)}", f"{key}: {message}") from None


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_TABLE = re.compile(r"^\s*\[")


def _line_of(text: str, loc: tuple[Any, ...]) -> int:
    """The line of the key at ``loc`` (a best effort: TOML parsers keep no positions):
    the key's own line, else its table's header, else 1."""
    lines = text.splitlines()
    start, end = 0, len(lines)
    keys = [part for part in loc if isinstance(part, str)]
    if keys and keys[0] == "destination" and len(loc) > 1 and isinstance(loc[1], int):
        headers = [
            n for n, line in enumerate(lines) if re.match(r"^\s*\[\[\s*destination\s*\]\]", line)
        ]
        if loc[1] < len(headers):
            start = headers[loc[1]]
            following = [n for n in range(start + 1, len(lines)) if _TABLE.match(lines[n])]
            end = following[0] if following else len(lines)
            keys = keys[1:]
            if not keys:
                return start + 1
        else:
            keys = keys[:1]
    else:
        tables = [n for n, line in enumerate(lines) if _TABLE.match(line)]
        end = tables[0] if tables else len(lines)
    for key in keys[:1]:
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=|^\s*\[+\s*{re.escape(key)}\s*\]+")
        for n in range(start, end):
            if pattern.match(lines[n]):
                return n + 1
        for n in range(len(lines)):  # a table header of that name, anywhere
            if re.match(rf"^\s*\[+\s*{re.escape(key)}\s*\]+", lines[n]):
                return n + 1
    return start + 1


def mask_url(url: str) -> str:
    """``scheme://user:****@host/****``: no password, token or key path shown."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = (
        f"{parts.username}:****@"
        if parts.password
        else (f"{parts.username}@" if parts.username else "")
    )
    rest = "/****" if parts.path.strip("/") else ""
    query = "?…" if parts.query else ""
    return f"{parts.scheme}://{user}{host}{rest}{query}"


def masked(config: JobConfig) -> dict[str, Any]:
    """The effective settings for ``config check``: every default filled in, the URLs
    that may carry passwords or tokens masked."""
    data = config.model_dump(mode="json")
    data["notify"] = [mask_url(url) for url in config.notify]
    data["ping_url"] = mask_url(config.ping_url) if config.ping_url else ""
    return data


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file (docs/config.schema.json)."""
    return JobConfig.model_json_schema()


def render_config_schema() -> str:
    """The schema as committed: sorted keys, two-space indent, trailing newline."""
    return json.dumps(config_json_schema(), indent=2, sort_keys=True) + "\n"


def template() -> str:
    """A commented config to start from (``config init``): valid as it is."""
    return _TEMPLATE


_TEMPLATE = """\
# fda-vault job: `fda-vault run` backs up, verifies, copies to every destination and
# prunes each with its own policy. Check it with `fda-vault config check`.
# Every key: docs/config.schema.json. Unknown keys are errors.

projects_dir = "~/fda-510k-data/projects"
projects = []                      # empty: all projects
exclude = ["*.tmp", "guidance_cache/"]
level = 6                          # 0 stores, 1-9 deflate
full_every = 30                    # read every file at least every N days

# Encryption (optional): age recipients (age1..., "ssh-ed25519 ...", "@FILE"), with the
# identity that opens them for verify and prune; or an OpenPGP passphrase file instead.
encrypt_to = []
identity = []
# passphrase_file = "~/.config/fda-vault/passphrase"

sign_key = ""                      # minisign secret key (fda-vault key generate --sign)
trusted_keys = []                  # the verify step then requires this signature

notify = []                        # Apprise URLs, e.g. "mailtos://user:pass@smtp.example.com?to=qa@example.com"
notify_on = ["failure"]            # and/or "success"
ping_url = ""                      # healthchecks-style: /start, then the URL or /fail

# The first destination is where the archives are written; the others get copies.
[[destination]]
location = "~/fda-510k-data/projects/backups"
keep = { last = 3, daily = 7, weekly = 4, monthly = 12 }

# [[destination]]
# location = "s3://acme-fda-backups/laptop-1"
# keep = { daily = 30, monthly = 24 }
# object_lock_days = 365
"""


def write_template(path: Path) -> Path:
    """Write :func:`template` to ``path`` (its folder made if needed; never over a file)."""
    from fda_vault._fsio import write_new_file

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(path.parent, f"cannot create the folder ({exc.strerror})") from None
    write_new_file(path, template(), 0o600, "a config file")
    return path
