"""The real `kaggle` client, imported quietly and with its failures as one-line errors.

Shared by `kit data download` and the submission commands. `import kaggle` authenticates at
import time and prints a help text to stdout when there are no credentials; here it is
imported with stdout captured, and every error a user can fix becomes a `KitError`.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

from kit.errors import KitError

CREDENTIALS_HELP = (
    "put kaggle.json in {config_dir} (or set KAGGLE_USERNAME/KAGGLE_KEY, or KAGGLE_API_TOKEN); "
    "create the token at https://www.kaggle.com/settings/api"
)


def _config_dir() -> str:
    """Where kaggle 2.x looks for kaggle.json, computed now (the library computes it at import)."""
    config_dir = os.environ.get("KAGGLE_CONFIG_DIR") or ""
    if not config_dir:
        config_dir = os.path.join(os.path.expanduser("~"), ".kaggle")
        if sys.platform.startswith("linux") and not os.path.exists(config_dir):
            xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
            config_dir = os.path.join(xdg, "kaggle")
    return config_dir


def _credentials_help() -> str:
    where = os.environ.get("KAGGLE_CONFIG_DIR") or "~/.kaggle"
    return CREDENTIALS_HELP.format(config_dir=where)


def _import_kaggle() -> Any:
    """Import the client quietly: `import kaggle` authenticates at import and prints help on failure."""
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            from kaggle.api.kaggle_api_extended import KaggleApi
        except ImportError as e:  # pragma: no cover - kaggle is a dependency
            raise KitError(f"the kaggle client is not installed ({e}): pip install 'kaggle>=1.6'") from None
        except SystemExit:  # pragma: no cover - defensive: the package's import-time auth calls exit(1)
            from kaggle.api.kaggle_api_extended import KaggleApi
    return KaggleApi


def _use_env_endpoint(api: Any) -> None:
    """Make the client honour KAGGLE_API_ENVIRONMENT (TEST = http://localhost:7777, STAGING...).

    kagglesdk reads that variable, but kaggle 2.x's KaggleApi.build_kaggle_client passes PROD
    explicitly unless its import-time args say --local/--staging, so TEST is otherwise ignored.
    """
    name = os.environ.get("KAGGLE_API_ENVIRONMENT")
    if not name or name == "PROD":
        return
    from kagglesdk import KaggleClient
    from kagglesdk.kaggle_env import get_env

    try:
        env = get_env()
    except Exception:
        raise KitError(
            f"KAGGLE_API_ENVIRONMENT={name!r} is not a Kaggle environment: unset it "
            "(or use PROD, LOCALHOST, STAGING, ADMIN, QA, TEST)"
        ) from None
    verbose = "--verbose" in api.args

    def build_kaggle_client() -> Any:
        return KaggleClient(
            env=env,
            verbose=verbose,
            username=api.config_values.get(api.CONFIG_NAME_USER),
            password=api.config_values.get(api.CONFIG_NAME_KEY),
            api_token=api.config_values.get(api.CONFIG_NAME_TOKEN),
            response_processor=api.get_response_processor(),
        )

    api.build_kaggle_client = build_kaggle_client


def kaggle_api(slug: str | None = None) -> Any:
    """An authenticated `KaggleApi`, or a one-line KitError saying how to fix the credentials."""
    KaggleApi = _import_kaggle()
    api = KaggleApi()
    # The class computes its kaggle.json path when first imported; recompute it for this call.
    api.config_dir = _config_dir()
    api.config = os.path.join(api.config_dir, api.config_file)
    _use_env_endpoint(api)
    with kaggle_errors(slug), contextlib.redirect_stdout(io.StringIO()):
        try:
            api.authenticate()
        except SystemExit:  # authenticate() prints help and calls exit(1) when it finds nothing
            raise KitError(f"no Kaggle credentials: {_credentials_help()}") from None
    return api


def _unreachable(e: BaseException) -> str:
    url = getattr(getattr(e, "request", None), "url", None) or ""
    host = re.sub(r"^(\w+://[^/]+).*$", r"\1", url) if url else "api.kaggle.com"
    return f"cannot reach Kaggle (offline?) at {host}: check your network connection, then run again"


def http_error_message(status: int | None, slug: str | None, detail: str = "") -> str:
    """The one-line what-to-do message for a Kaggle HTTP error status."""
    what = f"competition '{slug}'" if slug else "this request"
    if status == 401:
        return (
            "Kaggle rejected your credentials (401): check username/key in "
            f"{os.environ.get('KAGGLE_CONFIG_DIR') or '~/.kaggle'}/kaggle.json (or KAGGLE_USERNAME/KAGGLE_KEY, "
            "KAGGLE_API_TOKEN), or create a new token at https://www.kaggle.com/settings/api"
        )
    if status == 403:
        if slug:
            return (
                f"Kaggle refused access to {what} (403): accept the competition rules at "
                f"https://www.kaggle.com/c/{slug}/rules (join the competition), then run again"
            )
        return "Kaggle refused access (403): check you joined the competition and accepted its rules"
    if status == 404:
        if slug:
            return (
                f"competition '{slug}' not found on Kaggle (404): check data.competition in params.yaml "
                "(the slug is the part after kaggle.com/c/)"
            )
        return "not found on Kaggle (404): check the competition slug (data.competition in params.yaml)"
    if status == 429:
        return "Kaggle rate limit hit (429): too many requests, wait a few minutes and run again"
    if status is not None and status >= 500:
        return f"Kaggle server error ({status}) for {what}: Kaggle may be down, try again later"
    extra = f": {detail}" if detail else ""
    return f"Kaggle answered HTTP {status} for {what}{extra}"


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def kaggle_errors(slug: str | None = None) -> Iterator[None]:
    """Turn the kaggle client's exceptions (requests errors, exit(1)...) into one-line KitErrors."""
    import requests

    try:
        yield
    except KitError:
        raise
    except requests.exceptions.HTTPError as e:
        status = e.response.status_code if e.response is not None else None
        raise KitError(one_line(http_error_message(status, slug, str(e)))) from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
        raise KitError(_unreachable(e)) from None
    except requests.exceptions.RequestException as e:
        raise KitError(one_line(f"Kaggle request failed ({type(e).__name__}: {e}): run again")) from None
    except SystemExit:
        raise KitError(f"no Kaggle credentials: {_credentials_help()}") from None
