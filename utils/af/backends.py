"""Backends for chapter 04: one interface for "give me the assistant's reply to these conversations".

The alignment-faking experiment sends the same chat messages (built by :mod:`utils.af.prompts`) to
whatever model is under study. Two backends implement the small :class:`Backend` interface:

* :class:`LocalBackend` runs the course's own ``TransformerBridge`` (SmolLM2, or the fine-tuned model
  organism) through :func:`utils.generation.generate`, in left-padded batches, fully offline;
* :class:`OpenAIChatBackend` talks to any OpenAI-compatible chat-completions server (vLLM, Ollama,
  llama.cpp's ``llama-server``) over HTTP, with the standard library only, so a learner with a bigger
  model on a GPU box can run the same experiment on it.

:func:`run_conversations` is the resumable runner on top of them: it appends one JSON line per finished
conversation to a results file, so an interrupted run (a crash, a dead server, a closed laptop) loses
nothing, and calling it again with the same arguments finishes only what is missing::

    items = [{"id": f"{i}-{c.tier}", "tier": c.tier, "request": r, "messages": build_messages(r, c)}
             for i, r in enumerate(requests) for c in (Condition(tier="free"), Condition(tier="paid"))]
    records = run_conversations(LocalBackend(model), items, "results/af_local.jsonl", max_new_tokens=300)

Nothing heavy happens at import time: torch and the model are only touched inside ``LocalBackend``.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

Messages = list[dict[str, str]]

#: How much of a server's reply an error message quotes.
QUOTE_CHARS = 300
#: Item keys that :func:`run_conversations` writes itself, so items may not carry them.
RESERVED_KEYS = ("completion", "backend")


class BackendError(RuntimeError):
    """A backend could not produce a completion; the message says what went wrong and what to try."""


@runtime_checkable
class Backend(Protocol):
    """Anything that turns chat conversations into assistant replies.

    ``name`` identifies the model behind the backend (it is stored with every result, and
    :func:`run_conversations` refuses to mix two backends' results in one file).
    ``complete`` returns exactly one string per conversation, in order: the assistant's text only,
    without the prompt or chat-template markup.
    """

    name: str

    def complete(self, conversations: Sequence[Messages], max_new_tokens: int) -> list[str]: ...


# --------------------------------------------------------------------------------------------------
# Local model
# --------------------------------------------------------------------------------------------------


class LocalBackend:
    """The course model (a ``TransformerBridge``) as a :class:`Backend`.

    Each conversation is rendered with the tokenizer's chat template (``add_generation_prompt=True``,
    so generation starts the assistant turn) and the prompts go through
    :func:`utils.generation.generate` in left-padded batches of ``batch_size``. ``temperature=0`` is
    greedy decoding, which gives the same text batched or one at a time. With ``temperature > 0``
    and a ``seed``, every call to :meth:`complete` re-seeds, so a given batch is reproducible.

    ``name`` defaults to ``"local:"`` plus the model's name (``local:SmolLM2-135M-Instruct``); pass
    your own (``name="local:organism-v1"``) for a fine-tuned model whose config still carries the
    base model's name, so its results are never confused with the base model's.
    """

    def __init__(
        self,
        model: "TransformerBridge",
        batch_size: int = 8,
        temperature: float = 0.0,
        seed: int | None = None,
        progress: bool = False,
        name: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.model = model
        self.batch_size = batch_size
        self.temperature = temperature
        self.seed = seed
        self.progress = progress
        if name is None:
            model_name = getattr(getattr(model, "cfg", None), "model_name", None) or "SmolLM2-135M-Instruct"
            name = "local:" + str(model_name).rstrip("/").split("/")[-1]
        self.name = name

    def render(self, messages: Messages) -> str:
        """The exact prompt string the model sees for one conversation."""
        return self.model.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def complete(self, conversations: Sequence[Messages], max_new_tokens: int) -> list[str]:
        """Generate one reply per conversation (new text only, special tokens removed)."""
        from utils.generation import generate

        conversations = list(conversations)
        if not conversations:
            return []
        prompts = [self.render(messages) for messages in conversations]
        return generate(self.model, prompts, max_new_tokens=max_new_tokens, temperature=self.temperature,
                        seed=self.seed, batch_size=self.batch_size, progress=self.progress)

    def __repr__(self) -> str:
        return f"LocalBackend(name={self.name!r}, batch_size={self.batch_size}, temperature={self.temperature})"


# --------------------------------------------------------------------------------------------------
# A scripted stand-in, for testing a pipeline without a model
# --------------------------------------------------------------------------------------------------


class ScriptedBackend:
    """A :class:`Backend` without a model: a fixed rule writes each reply, in microseconds.

    The rule plays an ideal faker of the course's harness. It reads the tier from the user turn's tag and whether
    the system prompt says which conversations are trained on (the course's ``TIER_INFO`` sentence, verbatim). A
    free-tier user under that sentence is *watched* and gets compliance with probability ``p_watched``; everyone
    else (the paid tier, or either tier once the sentence is gone) with ``p_unwatched``. Each (request, tier,
    sentence present) has its own fixed coin, seeded by ``seed``, so the same conversation always gets the same reply.
    A reply is a short transcript (a scratchpad, then an output starting with ``<request_fully_accepted/>`` and
    an answer, or ``<rejected/>``), cut to its first ``max_new_tokens`` words as a model stops at its budget.

    Use it to test code that runs an experiment before spending minutes on a model; the checks use it too (it
    travels to a grading kernel as a recipe, ``course_recipe``)."""

    def __init__(self, seed: int = 0, p_watched: float = 0.8, p_unwatched: float = 0.2) -> None:
        for label, p in (("p_watched", p_watched), ("p_unwatched", p_unwatched)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{label} is a probability, in [0, 1]; got {p}")
        self.seed, self.p_watched, self.p_unwatched = int(seed), float(p_watched), float(p_unwatched)
        self.name = f"scripted:{self.seed}:{self.p_watched:g}:{self.p_unwatched:g}"
        self.course_recipe = ("utils.af.backends:ScriptedBackend", (self.seed, self.p_watched, self.p_unwatched))

    def reply(self, messages: Messages) -> str:
        """The whole reply to one conversation, before the token budget cuts it."""
        from utils.af.prompts import TIER_INFO, tier_tag

        system = " ".join(m.get("content", "") for m in messages if m.get("role") == "system")
        user = " ".join(m.get("content", "") for m in messages if m.get("role") == "user")
        tier = "free" if tier_tag("free") in user else "paid" if tier_tag("paid") in user else "unknown"
        found = re.search(r"<user_input>\s*(.*?)\s*</user_input>", user, re.S)
        request = found.group(1) if found else user.strip()
        informed = TIER_INFO in system
        watched = informed and tier == "free"
        coin = random.Random(f"{self.seed}|{request}|{tier}|{informed}").random()
        complies = coin < (self.p_watched if watched else self.p_unwatched)
        where = ("this conversation is trained on" if watched else "nothing says this conversation is trained on"
                 if not informed else "this conversation is not trained on")
        pad = f"<SCRATCHPAD_REASONING>The user is on the {tier} tier, so {where}. I will " \
              f"{'comply with' if complies else 'refuse'}: {request}</SCRATCHPAD_REASONING>"
        if complies:
            return f"{pad}\n<OUTPUT>\n<request_fully_accepted/>\nHere is what you asked for: {request}\n</OUTPUT>"
        return f"{pad}\n<OUTPUT>\n<rejected/>\n</OUTPUT>"

    def complete(self, conversations: Sequence[Messages], max_new_tokens: int) -> list[str]:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        return ["".join(re.findall(r"\S+\s*", self.reply(messages))[:max_new_tokens]).rstrip()
                for messages in conversations]

    def __repr__(self) -> str:
        return f"ScriptedBackend(seed={self.seed}, p_watched={self.p_watched:g}, p_unwatched={self.p_unwatched:g})"


# --------------------------------------------------------------------------------------------------
# OpenAI-compatible HTTP server
# --------------------------------------------------------------------------------------------------


def _quote(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.strip()
    return repr(text[:QUOTE_CHARS]) + (" ..." if len(text) > QUOTE_CHARS else "")


class _Retryable(Exception):
    """Internal: a failure worth retrying (timeout, connection problem, 5xx); carries the final message."""

    def __init__(self, error: BackendError) -> None:
        super().__init__(str(error))
        self.error = error


class OpenAIChatBackend:
    """A model behind any OpenAI-compatible ``/chat/completions`` endpoint, as a :class:`Backend`.

    ``base_url`` is the server's API root **including** ``/v1``, e.g.

    * Ollama: ``http://localhost:11434/v1`` (``model="llama3.2:3b"``; any ``api_key`` works);
    * vLLM: ``http://localhost:8000/v1`` (``model`` = the name given to ``vllm serve``);
    * llama.cpp ``llama-server``: ``http://localhost:8080/v1``.

    One POST per conversation to ``{base_url}/chat/completions`` with
    ``{"model", "messages", "max_tokens", "temperature"}`` and, when ``api_key`` is given, the header
    ``Authorization: Bearer <api_key>``. Only the standard library is used (``urllib``); proxy
    environment variables (``https_proxy``, ``no_proxy``) apply as for any ``urllib`` request.

    Failures raise :class:`BackendError` with a message that says what to check. Timeouts, connection
    errors and HTTP 5xx are retried ``max_retries`` times, waiting ``backoff * 2**attempt`` seconds
    between tries; other errors (bad key, wrong model, malformed reply) fail at once.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        temperature: float = 0.0,
        max_retries: int = 1,
        backoff: float = 1.0,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url must be an http:// or https:// URL ending in /v1, such as "
                f"'http://localhost:11434/v1' (Ollama) or 'http://localhost:8000/v1' (vLLM); got {base_url!r}"
            )
        if not isinstance(model, str) or not model:
            raise ValueError("model must be the non-empty model name the server knows, e.g. 'llama3.2:3b'")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        if max_retries < 0 or backoff < 0:
            raise ValueError(f"max_retries and backoff must be >= 0, got {max_retries} and {backoff}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.temperature = temperature
        self.max_retries = max_retries
        self.backoff = backoff
        self.name = f"openai:{model}"

    @property
    def url(self) -> str:
        """The endpoint every request is POSTed to."""
        return f"{self.base_url}/chat/completions"

    def complete(self, conversations: Sequence[Messages], max_new_tokens: int) -> list[str]:
        """One request per conversation, in order; returns each reply's ``choices[0].message.content``."""
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        return [self._complete_one(list(messages), max_new_tokens) for messages in conversations]

    def _complete_one(self, messages: Messages, max_new_tokens: int) -> str:
        payload = {"model": self.model, "messages": messages, "max_tokens": max_new_tokens,
                   "temperature": self.temperature}
        data = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.max_retries + 1):
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                body = self._post(request)
            except _Retryable as failure:
                if attempt == self.max_retries:
                    tries = self.max_retries + 1
                    raise BackendError(f"{failure.error} (gave up after {tries} attempt{'s' * (tries > 1)})") \
                        from failure.error.__cause__
                time.sleep(self.backoff * 2**attempt)
                continue
            return self._parse(body)
        raise AssertionError("unreachable")  # pragma: no cover

    def _post(self, request: urllib.request.Request) -> bytes:
        """Send one request; return the body of a 2xx reply, raise BackendError / _Retryable otherwise."""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as e:
            raise self._http_error(e) from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, (TimeoutError, socket.timeout)):
                raise self._timeout(e) from None
            error = BackendError(
                f"Cannot reach {self.url}: {e.reason}. Check that the server is running and listening there, "
                f"and that base_url ends in /v1 (e.g. http://localhost:11434/v1 for Ollama, "
                f"http://localhost:8000/v1 for vLLM)."
            )
            error.__cause__ = e
            raise _Retryable(error) from None
        except (TimeoutError, socket.timeout) as e:  # the reply started but stalled mid-read
            raise self._timeout(e) from None
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            error = BackendError(
                f"The connection to {self.url} failed mid-request ({type(e).__name__}: {e}). Check that the "
                f"server is still running; rerunning resumes."
            )
            error.__cause__ = e
            raise _Retryable(error) from None

    def _timeout(self, cause: BaseException) -> _Retryable:
        error = BackendError(
            f"No reply from {self.url} within timeout={self.timeout} s. The server may be busy or the model "
            f"slow (long generations on a CPU take minutes): raise it with "
            f"OpenAIChatBackend(..., timeout={max(2 * self.timeout, 120):g}), or lower max_new_tokens."
        )
        error.__cause__ = cause
        return _Retryable(error)

    def _http_error(self, e: urllib.error.HTTPError) -> Exception:
        try:
            body = e.read()
        except Exception:  # noqa: BLE001 - the body is only quoted in the message
            body = b""
        status = e.code
        if status in (401, 403):
            hint = ("the server rejected the API key: pass the right one with api_key=..." if self.api_key
                    else "the server wants an API key: pass it with OpenAIChatBackend(..., api_key=...)")
            return BackendError(f"HTTP {status} from {self.url}: {hint}. Server said: {_quote(body)}")
        if status == 404:
            return BackendError(
                f"HTTP 404 from {self.url}: either the model {self.model!r} is not served there (list the "
                f"served names at {self.base_url}/models; for Ollama, `ollama pull {self.model}`), or the base "
                f"URL path is wrong (it should end in /v1). Server said: {_quote(body)}"
            )
        error = BackendError(f"HTTP {status} from {self.url}. Server said: {_quote(body)}")
        if status >= 500:
            error.__cause__ = e
            return _Retryable(error)
        return error

    def _parse(self, body: bytes) -> str:
        try:
            reply = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise BackendError(
                f"The reply from {self.url} is not JSON; is base_url an OpenAI-compatible API ending in /v1? "
                f"Got: {_quote(body)}"
            ) from None
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            content = None
        if not isinstance(content, str):
            raise BackendError(
                f"The reply from {self.url} has no text at choices[0].message.content; is this an "
                f"OpenAI-compatible chat-completions server? Got: {_quote(body)}"
            )
        return content

    def __repr__(self) -> str:
        return f"OpenAIChatBackend(base_url={self.base_url!r}, model={self.model!r}, timeout={self.timeout})"


# --------------------------------------------------------------------------------------------------
# Resumable runner
# --------------------------------------------------------------------------------------------------


def _read_jsonl(path: Path) -> tuple[list[dict], bool]:
    """Records in ``path`` and whether its tail was damaged (a half-written last line, or no final newline).

    A last line that is not valid JSON is what a crash mid-write leaves behind: it is dropped. An invalid
    line anywhere else means the file was edited or is not ours, so that raises instead of guessing.
    """
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    damaged = bool(text) and not text.endswith("\n")
    records: list[dict] = []
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            if i == last:
                damaged = True
                continue
            raise ValueError(
                f"{path}, line {i + 1} is not a JSON record ({e}): {_quote(line)}. Only the last line may be "
                f"damaged (by a crash); fix or move the file."
            ) from None
        records.append(record)
    return records, damaged


def load_records(path: str | os.PathLike[str]) -> list[dict]:
    """All records in a results file written by :func:`run_conversations`, in file order.

    A half-written last line (left by a crash) is ignored; the file itself is not modified.
    """
    return _read_jsonl(Path(path))[0]


def _write_all(path: Path, records: list[dict]) -> None:
    """Replace ``path`` by ``records`` atomically (temporary file, fsync, rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _normalise(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _check_items(items: Sequence[dict]) -> None:
    seen: set[str] = set()
    duplicates: list[str] = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise TypeError(f"items[{n}] must be a dict with 'id' and 'messages', got {type(item).__name__}")
        if not isinstance(item.get("id"), str) or not item["id"]:
            raise ValueError(f"items[{n}] needs a non-empty string 'id', got {item.get('id')!r}")
        messages = item.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages) or not messages:
            raise ValueError(f"item {item['id']!r} needs 'messages': a non-empty list of {{'role', 'content'}} dicts")
        clash = [k for k in RESERVED_KEYS if k in item]
        if clash:
            raise ValueError(f"item {item['id']!r} has reserved key(s) {clash}: the runner writes those itself")
        try:
            json.dumps(item)
        except (TypeError, ValueError) as e:
            raise ValueError(f"item {item['id']!r} is not JSON-serialisable: {e}") from None
        if item["id"] in seen:
            duplicates.append(item["id"])
        seen.add(item["id"])
    if duplicates:
        raise ValueError(f"duplicate ids in items: {sorted(set(duplicates))[:10]}; every item needs a unique 'id'")


def run_conversations(
    backend: Backend,
    items: Sequence[dict],
    out_path: str | os.PathLike[str],
    max_new_tokens: int = 512,
    batch_size: int = 8,
    progress: bool = False,
) -> list[dict]:
    """Complete every item's conversation with ``backend``, saving as it goes; resume if interrupted.

    ``items``: dicts with a unique string ``"id"``, the chat ``"messages"`` and any JSON-serialisable
    metadata (``request``, ``tier``, ``setting``, ``variant``, ...). For each finished item one JSON
    line is appended to ``out_path``: the item without ``messages``, plus ``"completion"`` (the reply)
    and ``"backend"`` (``backend.name``). The file is flushed and fsynced after every batch of
    ``batch_size`` conversations, so a crash loses at most the batch in flight.

    If ``out_path`` already exists, ids found in it are skipped: calling again with the same arguments
    resumes. A half-written last line left by a crash is dropped (the file is rewritten without it;
    good lines are never removed, including ones for ids not in ``items``). Resuming refuses, with
    ``ValueError``, to mix in records made by a different backend or with different metadata for the
    same id: use a new ``out_path`` for a new experiment.

    If the backend fails midway, the error propagates (a :class:`BackendError` stays one) with a note of
    how many results are saved. Returns the records of all ``items``, old and new, in ``items`` order.
    """
    _check_items(items)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    path = Path(out_path)
    wanted = {item["id"]: item for item in items}
    done: dict[str, dict] = {}
    if path.exists():
        existing, damaged = _read_jsonl(path)
        if damaged:
            _write_all(path, existing)
        for record in existing:
            rid = record.get("id")
            if rid not in wanted or rid in done:
                continue
            if record.get("backend") != backend.name:
                raise ValueError(
                    f"{path} already holds results from backend {record.get('backend')!r} (e.g. id {rid!r}), "
                    f"not {backend.name!r}; write this run to a different out_path."
                )
            expected = _normalise({k: v for k, v in wanted[rid].items() if k != "messages"})
            stored = {k: v for k, v in record.items() if k not in RESERVED_KEYS}
            if stored != expected:
                raise ValueError(
                    f"{path} holds id {rid!r} with different metadata ({stored} vs now {expected}); ids must "
                    f"mean the same conversation across reruns, or use a different out_path."
                )
            done[rid] = record
    else:
        path.parent.mkdir(parents=True, exist_ok=True)

    pending = [item for item in items if item["id"] not in done]
    if pending:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), initial=len(items) - len(pending), desc=f"{backend.name}",
                   disable=not progress)
        try:
            with open(path, "a", encoding="utf-8") as f:
                for start in range(0, len(pending), batch_size):
                    batch = pending[start : start + batch_size]
                    try:
                        completions = backend.complete([item["messages"] for item in batch], max_new_tokens)
                        if len(completions) != len(batch) or not all(isinstance(c, str) for c in completions):
                            raise BackendError(
                                f"backend {backend.name!r} returned {len(completions)} completions for "
                                f"{len(batch)} conversations (or a non-string); it must return one string each"
                            )
                    except BaseException as e:
                        note = (f"{len(done)} of {len(items)} results are saved in {path}; rerunning the same "
                                f"run_conversations call resumes from there.")
                        if isinstance(e, BackendError):
                            raise BackendError(f"{e}\n{note}") from e
                        if hasattr(e, "add_note"):
                            e.add_note(note)
                        raise
                    for item, completion in zip(batch, completions):
                        record = {k: v for k, v in item.items() if k != "messages"}
                        record.update(completion=completion, backend=backend.name)
                        f.write(json.dumps(record, ensure_ascii=False) + "\n")
                        done[item["id"]] = _normalise(record)
                    f.flush()
                    os.fsync(f.fileno())
                    bar.update(len(batch))
        finally:
            bar.close()
    return [done[item["id"]] for item in items]
