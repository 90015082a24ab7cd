"""Schedules: batch runs of specs on a cron or an interval, read from a YAML file kept in git beside
the specs (default ``specs/schedules.yaml``).

```yaml
schedules:
  - name: nightly                  # the deployment's name on the Prefect server
    cron: "0 3 * * *"              # or interval: 3600 / "1h" / "1h30m" / "1d" / "1w"
    timezone: Europe/Paris         # optional; default UTC
    specs: ["**/*.yaml"]           # paths or globs, relative to this file
    force: [sample]                # as `recut run --force` (optional)
    no_dvc: false                  # as `recut run --no-dvc` (optional)
    store: ../.recut/store         # as `recut run --store`, relative to this file (optional)
    paused: false                  # registered, but no run fires (optional)
    description: free text         # shown in the dashboard (optional)
```

A schedules file is validated like a spec, once, at the edge: every problem is a
:class:`~recut.spec.SpecIssue` (``file:line: field.path: message``) and the CLI exits 2. Every spec a
schedule matches must validate too. The globs are expanded again each time a schedule fires
(:func:`expand`), so a spec added to a folder later is picked up by the next run.

This module is light (pydantic and YAML): `recut` imports it at start-up. Prefect is imported only to
check a cron string with Prefect's own parser, and only when a file has one.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from recut.spec import (
    SpecBase,
    SpecError,
    SpecIssue,
    _duplicate_keys,
    _line_for,
    _line_index,
    _message,
    _Strict,
    find_project_root,
    load_spec,
    read_yaml,
)

DEFAULT_FILE = Path("specs") / "schedules.yaml"
#: The flow every schedule's deployment runs (flows/scheduled.py).
FLOW_NAME = "recut-scheduled"
#: Every deployment recut registers carries this tag, and one naming its schedules file
#: (``recut-schedules:specs/schedules.yaml``): `recut schedule` removes only deployments with both.
TAG = "recut"
FILE_TAG = "recut-schedules:"
#: A glob matches these files only (a bare path may name any file).
SPEC_SUFFIXES = (".yaml", ".yml")
_GLOB_CHARS = re.compile(r"[*?\[]")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: Any) -> int:
    """Seconds of an interval: a number of seconds, or a duration string (``90s``, ``15m``, ``1h30m``,
    ``1d``, ``1w``)."""
    if isinstance(value, bool):
        raise ValueError(f"give seconds (a number) or a duration such as '1h', '30m', '1d' (got {value!r})")
    if isinstance(value, (int, float)):
        seconds = value
    else:
        text = str(value).strip().lower().replace(" ", "")
        m = _DURATION.match(text) if text else None
        if text.isdigit():
            seconds = int(text)
        elif m is None or not any(m.groups()):
            raise ValueError(
                f"not a duration: {value!r}; give seconds (3600) or a duration such as '1h', '30m', '1h30m', '1d', '1w'"
            )
        else:
            seconds = sum(int(n) * _UNITS[u] for n, u in zip(m.groups(), "wdhms", strict=True) if n)
    if not 1 <= seconds <= 366 * 86400 or seconds != int(seconds):
        raise ValueError(f"an interval is a whole number of seconds from 1 s to 366 days (got {value!r})")
    return int(seconds)


def _check_cron(value: str) -> str:
    from prefect._internal.schemas.validators import validate_cron_string  # what the server accepts

    try:
        return validate_cron_string(value)
    except ValueError:
        raise ValueError(
            f"not a cron string: {value!r}; five fields, minute hour day-of-month month day-of-week, "
            "e.g. '0 3 * * *' (03:00 every day) or '0 4 * * sun'"
        ) from None


class Schedule(_Strict):
    """One schedule: a batch run of some specs, on a cron or on an interval."""

    name: str = Field(
        ...,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        description="The deployment's name on the Prefect server (letters, digits, '-', '_', '.').",
    )
    description: str | None = Field(None, description="Free text, shown in the dashboard.")
    cron: str | None = Field(
        None, description="A cron string (minute hour day-of-month month day-of-week). Exactly one of cron, interval."
    )
    interval: int | str | None = Field(
        None,
        description="Seconds between runs, or a duration ('90s', '15m', '1h', '1h30m', '1d', '1w'). Runs are "
        "aligned to midnight of 2000-01-01 in `timezone` (so '1h' fires on the hour). Exactly one of cron, interval.",
    )
    timezone: str | None = Field(None, description="IANA time zone of the cron (or interval alignment); default UTC.")
    specs: list[str] = Field(
        ...,
        min_length=1,
        description="Spec files: paths or globs (`**` for any depth), relative to the schedules file. Globs match "
        ".yaml/.yml files; they are expanded again at every run.",
    )
    force: list[str] = Field(
        default_factory=list, description="Stages to recompute with everything downstream (as `recut run --force`)."
    )
    no_dvc: bool = Field(False, description="Do not record artifacts in DVC (as `recut run --no-dvc`).")
    store: str | None = Field(None, description="Artifact store (as `recut run --store`), relative to this file.")
    paused: bool = Field(False, description="Register the schedule paused: no run fires until it is resumed.")

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        return None if v is None else _check_cron(v)

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, v: Any) -> Any:
        return None if v is None else parse_duration(v)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str | None) -> str | None:
        from zoneinfo import available_timezones  # Prefect checks time zones against the same list

        if v is not None and v not in available_timezones():
            raise ValueError(f"unknown time zone {v!r}; give an IANA name such as 'UTC' or 'Europe/Paris'")
        return v

    @field_validator("specs")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        if any(not p.strip() for p in v):
            raise ValueError("an empty path; give a spec file or a glob such as 'examples/*.yaml'")
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> Schedule:
        if (self.cron is None) == (self.interval is None):
            which = "both" if self.cron is not None else "neither"
            raise ValueError(f"give exactly one of `cron` and `interval` (got {which})")
        return self

    @property
    def seconds(self) -> int | None:
        return None if self.interval is None else int(self.interval)

    def when(self) -> str:
        """The schedule in words: ``cron 0 3 * * * (Europe/Paris)`` or ``every 1h``."""
        tz = f" ({self.timezone})" if self.timezone else ""
        return f"cron {self.cron}{tz}" if self.cron else f"every {format_seconds(int(self.interval or 0))}{tz}"


class SchedulesFile(_Strict):
    """A schedules file: its format version and its schedules."""

    version: Literal[1] = Field(1, description="Schedules file format version; 1.")
    schedules: list[Schedule] = Field(
        default_factory=list, description="The schedules; `recut schedule` makes the server's match this list."
    )


def format_seconds(seconds: int) -> str:
    """``3600`` -> ``1h``; ``5400`` -> ``1h30m``."""
    parts, rest = [], seconds
    for unit, size in _UNITS.items():
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


# --------------------------------------------------------------------------- globs


def expand(patterns: Iterable[str], base_dir: str | Path, exclude: Iterable[str | Path] = ()) -> dict[str, list[Path]]:
    """Each pattern (relative to ``base_dir``) with the spec files it matches now, sorted. A bare path
    matches itself if it is a file; a glob matches .yaml/.yml files only. ``exclude`` (the schedules
    file itself) is never matched."""
    skip = {Path(e).resolve() for e in exclude}
    found: dict[str, list[Path]] = {}
    for pattern in patterns:
        full = os.path.join(str(base_dir), os.path.expanduser(pattern))
        if _GLOB_CHARS.search(pattern):
            hits = [Path(h) for h in glob.glob(full, recursive=True) if h.endswith(SPEC_SUFFIXES)]
        else:
            hits = [Path(full)]
        found[pattern] = sorted(
            {Path(os.path.normpath(h)) for h in hits if h.is_file() and h.resolve() not in skip}, key=str
        )
    return found


def unique(matches: dict[str, list[Path]]) -> list[Path]:
    """Every matched file once, in the order the patterns give them."""
    return list(dict.fromkeys(p for ps in matches.values() for p in ps))


def _glob_folder(base_dir: Path, pattern: str) -> Path:
    """The folder a glob searches: its path up to the first part with a wildcard."""
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if _GLOB_CHARS.search(p))]]
    return Path(os.path.normpath(base_dir.joinpath(*fixed)))


def known_stages(specs: Iterable[SpecBase]) -> list[str]:
    """Stage names `force` may name: those of the given specs' methods, or of every method if none."""
    from recut.registry import methods

    names = {s.method for s in specs} or set(methods())  # type: ignore[attr-defined]
    return list(dict.fromkeys(st.name for m in sorted(names) for st in methods()[m].engine.stages))


# --------------------------------------------------------------------------- loading


@dataclass
class Schedules:
    """A validated schedules file."""

    path: Path  #: resolved
    shown: str  #: as given, for messages
    root: Path  #: the project root
    schedules: list[Schedule]
    #: per schedule name: each pattern with the spec files it matched at validation
    matches: dict[str, dict[str, list[Path]]] = field(default_factory=dict)
    warnings: list[SpecIssue] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def file_tag(self) -> str:
        try:
            rel = self.path.relative_to(self.root)
        except ValueError:
            rel = self.path
        return FILE_TAG + rel.as_posix()

    def store_for(self, s: Schedule) -> str | None:
        if s.store is None:
            return None
        return os.path.normpath(self.base_dir / os.path.expanduser(s.store))


def load_schedules(path: str | Path, check_specs: bool = True) -> Schedules:
    """Read and validate a schedules file; raise :class:`~recut.spec.SpecError` with every problem.

    Checked: the YAML (duplicate keys included), the schema (one of cron and interval, a valid cron,
    time zone and interval, no unknown field), unique names, and, with ``check_specs``, that every path
    or glob matches a spec file inside the project and every matched spec validates, and that each
    `force` stage is a stage of a matched spec's method. A glob that matches nothing is an error,
    unless the folder it searches exists: then it is a warning (a folder meant to fill up over time).
    """
    p = Path(path)
    shown = str(path)
    data, node = read_yaml(p, "schedules")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError([SpecIssue(shown, 1, "", "a schedules file must be a YAML mapping (`schedules:` list)")])
    lines = _line_index(node)

    def issue(loc: tuple[Any, ...], message: str, line: int | None = None, warning: bool = False) -> SpecIssue:
        return SpecIssue(shown, line or _line_for(lines, loc), ".".join(map(str, loc)), message, warning)

    early = [issue(loc, msg, line) for loc, line, msg in _duplicate_keys(node)]
    try:
        parsed = SchedulesFile.model_validate(data)
    except ValidationError as exc:
        raise SpecError(early + [issue(tuple(e["loc"]), _message(dict(e))) for e in exc.errors()]) from None
    if early:
        raise SpecError(early)
    base_dir = p.resolve().parent
    out = Schedules(p.resolve(), shown, find_project_root(base_dir), list(parsed.schedules))

    problems: list[SpecIssue] = []
    first: dict[str, int] = {}
    for i, s in enumerate(out.schedules):
        if s.name in first:
            line = _line_for(lines, ("schedules", first[s.name], "name"))
            problems.append(
                issue(("schedules", i, "name"), f"duplicate schedule name {s.name!r} (first on line {line})")
            )
        first.setdefault(s.name, i)
    if not check_specs:
        if problems:
            raise SpecError(problems)
        return out

    loaded: dict[Path, SpecBase | SpecError] = {}
    spec_issues: list[SpecIssue] = []
    for i, s in enumerate(out.schedules):
        matches = expand(s.specs, base_dir, exclude=[out.path])
        out.matches[s.name] = matches
        ok: list[SpecBase] = []
        for j, pattern in enumerate(s.specs):
            loc = ("schedules", i, "specs", j)
            hits = matches[pattern]
            if not hits:
                if _GLOB_CHARS.search(pattern) and _glob_folder(base_dir, pattern).is_dir():
                    where = _glob_folder(base_dir, pattern)
                    out.warnings.append(
                        issue(
                            loc,
                            f"{pattern!r} matches no spec yet; each run picks up the specs in {where}",
                            warning=True,
                        )
                    )
                elif _GLOB_CHARS.search(pattern):
                    problems.append(
                        issue(loc, f"{pattern!r} matches no spec file (searched {base_dir}, .yaml/.yml files)")
                    )
                else:
                    problems.append(issue(loc, f"file not found: {pattern!r} (looked at {base_dir / pattern})"))
                continue
            for hit in hits:
                if not hit.resolve().is_relative_to(out.root):
                    problems.append(issue(loc, f"{pattern!r} matches {hit}, outside the project root {out.root}"))
                    continue
                if hit not in loaded:
                    try:
                        loaded[hit] = load_spec(hit, emit_warnings=False)
                    except SpecError as exc:
                        loaded[hit] = exc
                        spec_issues.extend(exc.issues)
                got = loaded[hit]
                if isinstance(got, SpecError):
                    n = len(got.issues)
                    problems.append(
                        issue(loc, f"{pattern!r} matches {_rel(hit)}, which does not validate ({n} problem(s) below)")
                    )
                else:
                    ok.append(got)
        stages = known_stages(ok)
        for j, name in enumerate(s.force):
            if name != "all" and name not in stages:
                whose = "the matched specs' methods have" if ok else "the methods have"
                problems.append(
                    issue(
                        ("schedules", i, "force", j), f"unknown stage {name!r}; {whose} {', '.join(stages)} (or 'all')"
                    )
                )
    if problems or spec_issues:
        raise SpecError(problems + spec_issues)
    return out


def _rel(p: Path) -> str:
    try:
        return os.path.relpath(p)
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------- the Prefect server


class NoServer(RuntimeError):
    """No Prefect server to register schedules on."""


def server_api() -> str:
    """The API URL of the running Prefect server that `recut run` would use; raise :class:`NoServer`.

    Schedules live on a server (its scheduler creates the runs), so neither `recut schedule` nor
    `recut serve` falls back to Prefect's ephemeral mode. Imports no Prefect."""
    from recut import prefect_env

    mode = prefect_env.configure()
    api = os.environ.get("PREFECT_API_URL") or prefect_env._profile_api_url()
    if not prefect_env.records(mode) or not api:
        raise NoServer(
            "no Prefect server is running: schedules are registered on a server. Start one with "
            "`recut dashboard` (in another terminal), or set PREFECT_API_URL to a running server"
        )
    if not prefect_env._healthy(api, timeout=3):
        raise NoServer(
            f"the Prefect server at {api} does not answer; start it (`recut dashboard`) or fix PREFECT_API_URL"
        )
    return api
