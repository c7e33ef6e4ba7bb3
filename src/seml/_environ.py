"""Which environment variables an attested workload may receive, and which it never does.

The measurement covers seml's own files, the service's code and its command, not the
environment, so a variable that makes a program load other code (`PYTHONPATH` pointing at a
`sitecustomize.py`, `LD_PRELOAD`, `NODE_OPTIONS`, ...) would run unmeasured code inside the
workload, next to its secrets, with the same measurement. So:

- from the host, a workload gets only `HOST_ALLOWED` (locale, time zone, terminal, `PATH`,
  user name), never anything else;
- a session's `environment`, and the variables a machine's operator passes on
  (`RunOptions.pass_env`), may set anything except a code-loading variable (`code_loading`);
- `seml run` itself refuses to start with a code-loading variable set (`refuse_code_loading`).

Pure and light (no imports beyond the standard library): the session schema, the runtime and
the CLI's start all use it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from seml.errors import UsageError

__all__ = [
    "FORCED",
    "HOST_ALLOWED",
    "check_names",
    "code_loading",
    "from_host",
    "refuse_code_loading",
    "seconds",
]

# Taken from the host when set there. PATH is the one that decides which executable a command
# names: executables and the interpreter are not measured (see docs/threat-model.md).
_HOST_NAMES = frozenset({"PATH", "LANG", "LANGUAGE", "TZ", "TERM", "USER", "LOGNAME"})
_HOST_PREFIXES = ("LC_",)
HOST_ALLOWED = (*sorted(_HOST_NAMES), *(p + "*" for p in _HOST_PREFIXES))

# Always set for the workload: Python must not add the (host-controlled) user site-packages,
# nor write compiled caches into the code folders (the next run refuses a folder holding one:
# a cache is loaded instead of its measured source, see seml.runtime's measurement).
FORCED = {"PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}

# Variables that load code, choose where code or its compiled form is read from, or run code
# on start (interpreters, the dynamic linker, glibc, OpenSSL, shells). Matched exactly.
_CODE_LOADING = frozenset(
    {
        # shells
        "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND",
        # glibc and the dynamic loader (LD_* and DYLD_* are matched as prefixes below)
        "GCONV_PATH", "GLIBC_TUNABLES", "HOSTALIASES", "NLSPATH", "LOCPATH", "MALLOC_TRACE",
        # OpenSSL loads engines and providers from its configuration
        "OPENSSL_CONF", "OPENSSL_ENGINES", "OPENSSL_MODULES", "SSLKEYLOGFILE",
        # other interpreters
        "PERL5LIB", "PERLLIB", "PERL5OPT", "PERL5DB", "RUBYLIB", "RUBYOPT", "NODE_OPTIONS",
        "NODE_PATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH",
        "R_PROFILE", "R_PROFILE_USER", "R_ENVIRON", "R_ENVIRON_USER", "R_LIBS", "R_LIBS_USER",
        "LUA_INIT", "LUA_PATH", "LUA_CPATH", "GEM_PATH", "GEM_HOME", "TCLLIBPATH",
        "JULIA_LOAD_PATH", "JULIA_DEPOT_PATH",
        # Python's own loaders are every PYTHON* below, except the harmless ones
        # boto3/botocore: a config file's credential_process runs a command
        "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
    }
)  # fmt: skip
_CODE_LOADING_PREFIXES = ("LD_", "DYLD_", "BASH_FUNC_", "PYTHON")
# PYTHON* variables that change no code that runs (output buffering, encodings, hashing seed),
# and the ones the official Python images set to describe themselves. Any other PYTHON* name
# is refused: new interpreter versions add variables, and an unknown one may load code.
_PYTHON_HARMLESS = frozenset(
    {
        "PYTHONUNBUFFERED", "PYTHONIOENCODING", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE",
        "PYTHONUTF8", "PYTHONFAULTHANDLER", "PYTHONNOUSERSITE", "PYTHONSAFEPATH",
        "PYTHON_VERSION", "PYTHON_SHA256", "PYTHON_PIP_VERSION", "PYTHON_SETUPTOOLS_VERSION",
        "PYTHON_GET_PIP_URL", "PYTHON_GET_PIP_SHA256",
    }
)  # fmt: skip
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def code_loading(name: str) -> bool:
    """Whether a variable named `name` can make a program load or run other code."""
    upper = name.upper()
    if upper in _PYTHON_HARMLESS:
        return False
    return upper in _CODE_LOADING or upper.startswith(_CODE_LOADING_PREFIXES)


def from_host(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of the host's environment a workload receives (`HOST_ALLOWED`)."""
    return {k: v for k, v in environ.items() if k in _HOST_NAMES or k.startswith(_HOST_PREFIXES)}


def check_names(names: Iterable[str], what: str) -> None:
    """UsageError naming every code-loading or malformed variable name in `names`."""
    bad = sorted(n for n in names if code_loading(n))
    if bad:
        raise UsageError(
            f"{what} may not set {', '.join(bad)}: such variables load code the measurement "
            "does not cover"
        )
    malformed = sorted(n for n in names if not _NAME.match(n))
    if malformed:
        raise UsageError(f"{what}: {', '.join(map(repr, malformed))} is not a variable name")


def refuse_code_loading(environ: Mapping[str, str], program: str) -> None:
    """Refuse to go on when this process's own environment has a code-loading variable set.

    Such a variable has already acted on this process when this runs (the interpreter read it
    at start), so this catches mistakes and honest operators; a machine's owner who wants to
    run other code can, until hardware measures the whole image (docs/threat-model.md).
    """
    bad = sorted(k for k, v in environ.items() if v and code_loading(k))
    if bad:
        raise UsageError(
            f"{program} does not run with {', '.join(bad)} set: such variables load code the "
            f"measurement does not cover; unset {'it' if len(bad) == 1 else 'them'} and retry"
        )


def seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    """The positive, finite number of seconds `environ[name]` says, or `default` when it is
    unset or empty; UsageError naming the variable for anything else."""
    text = environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{name} must be a positive number of seconds, not {text!r}")
    return value
