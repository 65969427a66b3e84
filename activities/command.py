"""The `command` adapter: the operator's own scripts carry out a system's interface, one script per method.

    [systems.gateway]
    adapter = "command"
    otherwise = "http"                       # methods without an action: the http adapter (the sandbox in dev)
    env = { GATEWAY_HOME = "${GATEWAY_HOME}" }

    [systems.gateway.actions.safe_restart]   # an action is named after the interface method it carries out
    argv = ["bin/safe-restart", "--gateway", "{gateway}"]
    timeout_s = 25
    done = [0]                               # the defaults: 0 done, 3 refused, anything else failed
    refused = [3]

How an action runs:

- `argv` is a list, run without a shell; `{field}` is that field of the method's request model (`{{` for a
  brace). An `argv[0]` with a slash in it and no leading `/` is relative to the policy file's directory; one
  without a slash is looked up on `PATH`. Placeholders and action names are checked when the worker starts.
- The environment is not the worker's: only `PATH`, `HOME`, `LANG`, `LC_ALL`, `TZ`, `TMPDIR`, `USER` and
  `LOGNAME` are passed on, then the adapter's `env`, the action's `env` (both may use `{field}` too),
  `secret_env` (a script variable from a worker variable holding a secret, scrubbed from every message), and
  the request: `STANCH_ACTION`, `STANCH_REQUEST` (the request model as JSON), and from its fields
  `STANCH_IDEMPOTENCY_KEY`, `STANCH_REASON` and, when a human approved, `STANCH_APPROVED_BY`.
- The script runs in a process group of its own; past `timeout_s` the whole group is killed (a script's
  children too), and so it is when the activity is cancelled.
- Exit code in `done`: stdout is one JSON object, parsed into the method's result model. In `refused`: the
  system said no — `refused()`, not retried, the runbook pages. Anything else, a timeout, or stdout that is
  not the result: an ordinary error, which Temporal retries with the same idempotency key, so the script
  must answer a key it has already carried out with its first result (docs/connect-your-systems.md, "The
  command adapter"). Its stderr (scrubbed, cut to its last lines) is in the failure's message.

A method without an action is delegated to the http adapter of the same system when `otherwise = "http"`
(with its settings under `http = {...}`), or refused (`otherwise = "refuse"`, the default).

A system's command adapter is the interface plus this class, nothing else: `CommandAdapter` writes one
method per abstract method of the interface (see `activities/gateway/command.py`).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from temporalio.exceptions import ApplicationError

from activities.adapters import (
    Adapter,
    AdapterConfigError,
    AdapterContext,
    AdapterSettings,
    adapter_class,
    refused,
    require_idempotency_key,
    settings_from_policy,
)
from activities.processes import Finished, run_command
from schemas.systems import SystemCheck
from stanch.redact import scrub, scrub_known

# What a script inherits from the worker; the rest (database URL, payload key, tokens) it never sees.
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME")
# The tail of stderr a failure message keeps: the end of a script's output is where it says why.
STDERR_KEPT_CHARS = 2000
# Enough of a junk stdout to recognise it.
STDOUT_SHOWN_CHARS = 300
# The action a `check()` runs when it is configured; no interface has a method of that name to carry out.
CHECK_ACTION = "check"


class CommandAction(BaseModel):
    """`[systems.<name>.actions.<method>]`: the command that carries out one interface method."""

    model_config = ConfigDict(extra="forbid")

    argv: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    # Relative to the policy file's directory; None: the policy file's directory.
    cwd: str | None = None
    # None: the adapter's `timeout_s`.
    timeout_s: float | None = Field(None, gt=0, le=3600)
    done: list[int] = Field(default_factory=lambda: [0], min_length=1)
    refused: list[int] = Field(default_factory=lambda: [3])

    @model_validator(mode="after")
    def _done_is_not_refused(self) -> CommandAction:
        both = sorted(set(self.done) & set(self.refused))
        if both:
            raise ValueError(f"exit code(s) {both} cannot mean both done and refused")
        return self


class CommandSettings(AdapterSettings):
    """`[systems.<name>] adapter = "command"`."""

    actions: dict[str, CommandAction] = Field(default_factory=dict)
    # For every action, before the action's own `env`.
    env: dict[str, str] = Field(default_factory=dict)
    # The script's variable → the worker's variable that holds a secret for it (never the value itself).
    secret_env: dict[str, str] = Field(default_factory=dict)
    # Inside the 30 s start-to-close timeout of a runbook's effect (workflows/steps/policies.py).
    timeout_s: float = Field(25.0, gt=0, le=3600)
    otherwise: Literal["http", "refuse"] = "refuse"
    # The http adapter's settings, for `otherwise = "http"` (base_url, token_env, timeout_s).
    http: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """One interface method a command can carry out: what it takes and what it answers."""

    name: str
    request: type[BaseModel]
    result: type[BaseModel]


def interface_methods(cls: type) -> dict[str, Method]:
    """The abstract methods `cls` has not implemented, each with its request and result model (its one
    parameter and its return annotation, as every interface method of `activities/<system>/` has)."""
    methods: dict[str, Method] = {}
    for base in cls.__mro__:
        for name, value in vars(base).items():
            if name in methods or not getattr(value, "__isabstractmethod__", False):
                continue
            if not getattr(getattr(cls, name), "__isabstractmethod__", False):
                continue  # implemented further down the MRO
            hints = get_type_hints(value)
            result = hints.pop("return", None)
            parameters = list(hints.values())
            if len(parameters) != 1 or not (_is_model(parameters[0]) and _is_model(result)):
                raise TypeError(f"{cls.__name__}.{name}: a command carries out `(request: Model) -> Model`")
            methods[name] = Method(name, parameters[0], result)
    return methods


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _carry_out(method: Method) -> Callable[[CommandAdapter, BaseModel], Awaitable[BaseModel]]:
    async def carry_out(self: CommandAdapter, request: BaseModel) -> BaseModel:
        return await self.carry_out(method.name, request)

    carry_out.__name__ = carry_out.__qualname__ = method.name
    carry_out.__doc__ = (
        f"`actions.{method.name}`: {method.request.__name__} in, {method.result.__name__} out."
    )
    return carry_out


def _placeholders(template: str, where: str) -> set[str]:
    names = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise AdapterConfigError(f"{where}: {error} in {template!r} (write {{{{ for a brace)") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise AdapterConfigError(f"{where}: {{{field}}} must be a plain field name of the request")
        names.add(field)
    return names


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _tail(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


class CommandAdapter(Adapter):
    """Carries out a system's interface through the commands of `[systems.<name>.actions]`. Mix it in before
    the interface, `class CommandGateway(CommandAdapter, Gateway)`: every method of the interface becomes
    `carry_out("<method>", request)`."""

    adapter: ClassVar[str] = "command"
    Settings: ClassVar[type[AdapterSettings]] = CommandSettings
    settings: CommandSettings
    methods: ClassVar[dict[str, Method]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Runs before ABCMeta counts what is still abstract, so the class it makes is a concrete one.
        cls.methods = {**cls.methods, **interface_methods(cls)}
        for method in cls.methods.values():
            if getattr(getattr(cls, method.name), "__isabstractmethod__", False):
                setattr(cls, method.name, _carry_out(method))

    def __init__(self, settings: AdapterSettings, context: AdapterContext) -> None:
        assert isinstance(settings, CommandSettings)
        super().__init__(settings, context)
        environ = {**os.environ, **context.environ}
        for name, action in settings.actions.items():
            self._check_templates(name, action)
        self._secret_env: dict[str, str] = {}
        for variable, source in settings.secret_env.items():
            if source not in environ:
                raise AdapterConfigError(f"secret_env.{variable}: environment variable {source!r} is not set")
            self._secret_env[variable] = environ[source]
        self._otherwise: Adapter | None = None
        if settings.otherwise == "http":
            http_class = adapter_class(self.system, "http")
            try:
                http_settings = settings_from_policy(http_class, settings.http, environ)
            except AdapterConfigError as error:
                raise AdapterConfigError(f"http.{error}") from None
            self._otherwise = http_class(http_settings, context)
        elif settings.http:
            raise AdapterConfigError('http: only used with otherwise = "http"')

    def _check_templates(self, name: str, action: CommandAction) -> None:
        """Unknown actions and `{field}`s that the request does not have stop the worker at start. The
        adapter's own `env` is filled for every action, so its fields must be in every action's request."""
        where = f"actions.{name}"
        if name == CHECK_ACTION:
            fields: set[str] = set()
        elif name in self.methods:
            fields = set(self.methods[name].request.model_fields)
        else:
            known = ", ".join(sorted([*self.methods, CHECK_ACTION]))
            raise AdapterConfigError(f"{where}: {self.system} has no method {name!r} (known: {known})")
        if _placeholders(action.argv[0], f"{where}.argv.0"):
            # `check()` must be able to say whether the program is there before any request comes.
            raise AdapterConfigError(f"{where}.argv.0: the program is a path, not a template")
        templates = {
            **{f"{where}.argv.{index}": part for index, part in enumerate(action.argv)},
            **{f"{where}.env.{key}": value for key, value in action.env.items()},
            **{f"env.{key} (for {where})": value for key, value in self.settings.env.items()},
        }
        for key, template in templates.items():
            unknown = _placeholders(template, key) - fields
            if unknown:
                have = ", ".join(sorted(fields)) or "none: it takes no request"
                raise AdapterConfigError(
                    f"{key}: no field {{{sorted(unknown)[0]}}} in the request (fields: {have})"
                )

    # ---- running an action -------------------------------------------------------------------------

    async def carry_out(self, name: str, request: BaseModel) -> BaseModel:
        """Carry out interface method `name` with its command, or with what `otherwise` says."""
        method = self.methods[name]
        what = f"{self.system} {name}"
        action = self.settings.actions.get(name)
        if action is None:
            if self._otherwise is not None:
                result: BaseModel = await getattr(self._otherwise, name)(request)
                return result
            raise refused(
                what,
                f'no command is configured for it ([systems.{self.system}.actions.{name}]) and otherwise = "refuse"',
                kind="CommandNotConfigured",
            )
        key = getattr(request, "idempotency_key", None)
        require_idempotency_key(what, key)
        values = {field: _as_text(value) for field, value in request.model_dump(mode="json").items()}
        finished = await self._run(what, action, values, self._request_environment(name, request))
        return self._result(what, action, finished, method.result)

    def _request_environment(self, name: str, request: BaseModel) -> dict[str, str]:
        env = {"STANCH_ACTION": name, "STANCH_REQUEST": request.model_dump_json()}
        for variable, field in (("STANCH_IDEMPOTENCY_KEY", "idempotency_key"), ("STANCH_REASON", "reason")):
            if field in type(request).model_fields:
                env[variable] = str(getattr(request, field))
        approved_by = getattr(request, "approved_by", "")
        if approved_by:
            env["STANCH_APPROVED_BY"] = str(approved_by)
        return env

    def _environment(
        self, action: CommandAction, values: dict[str, str], request_env: dict[str, str]
    ) -> dict[str, str]:
        env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
        env.update(self.context.environ)
        for extra in (self.settings.env, action.env):
            env.update({variable: value.format_map(values) for variable, value in extra.items()})
        env.update(self._secret_env)
        env.update(request_env)
        return env

    def executable(self, action: CommandAction) -> Path | None:
        """Where `argv[0]` is: relative to the policy's directory when it has a slash, else on PATH."""
        program = action.argv[0]
        if "/" in program:
            return self.context.resolve(program)
        path = {**os.environ, **self.context.environ, **self.settings.env}.get("PATH")
        found = shutil.which(program, path=path)
        return Path(found) if found else None

    async def _run(
        self, what: str, action: CommandAction, values: dict[str, str], request_env: dict[str, str]
    ) -> Finished:
        argv = [part.format_map(values) for part in action.argv]
        executable = self.executable(action)
        if executable is None:
            raise refused(what, f"{argv[0]!r} is not on PATH", kind="CommandNotRunnable")
        argv[0] = str(executable)
        cwd = self.context.resolve(action.cwd) if action.cwd else self.context.base_dir
        timeout_s = action.timeout_s or self.settings.timeout_s
        try:
            return await run_command(argv, self._environment(action, values, request_env), cwd, timeout_s)
        except OSError as error:
            # Missing, not executable, a bad working directory: no retry mends the host; `check()` says so too.
            raise refused(
                what, self._scrub(f"cannot run {shlex.join(argv)}: {error}"), kind="CommandNotRunnable"
            ) from None

    def _result(
        self, what: str, action: CommandAction, finished: Finished, model: type[BaseModel]
    ) -> BaseModel:
        command = Path(action.argv[0]).name
        stderr = self._scrub(_tail(finished.stderr, STDERR_KEPT_CHARS)) or "(nothing on stderr)"
        timeout_s = action.timeout_s or self.settings.timeout_s
        if finished.timed_out:
            raise ApplicationError(
                f"{what}: {command} did not finish within {timeout_s:g} s and its process group was killed; "
                f"stderr: {stderr}",
                type="CommandTimedOut",
            )
        code = finished.returncode
        assert code is not None
        if code in action.refused:
            raise refused(what, f"{command} exited {code}: {stderr}", kind="CommandRefused")
        if code not in action.done:
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited {code}"
            raise ApplicationError(f"{what}: {command} {how}; stderr: {stderr}", type="CommandFailed")
        try:
            return model.model_validate_json(finished.stdout)
        except ValidationError as error:
            shown = self._scrub(_tail(finished.stdout, STDOUT_SHOWN_CHARS)) or "(nothing)"
            first = error.errors()[0]
            problem = f"{'.'.join(str(part) for part in first['loc']) or 'stdout'}: {first['msg']}"
            raise ApplicationError(
                f"{what}: {command} exited {code} but its stdout is not a {model.__name__} ({problem}); "
                f"stdout: {shown}; stderr: {stderr}",
                type="CommandBadOutput",
            ) from None

    def _scrub(self, text: str) -> str:
        return scrub_known(scrub(text, self._secret_env.values()))

    # ---- check -------------------------------------------------------------------------------------

    async def check(self) -> SystemCheck:
        """Every action's program exists and is executable; then the `check` action, when configured, exits
        done; then, with `otherwise = "http"`, the http adapter's own check."""
        try:
            problems = []
            for name, action in sorted(self.settings.actions.items()):
                executable = self.executable(action)
                if executable is None or not executable.is_file():
                    problems.append(f"{name}: {executable or action.argv[0]} does not exist")
                elif not os.access(executable, os.X_OK):
                    problems.append(f"{name}: {executable} is not executable")
            detail = f"{len(self.settings.actions)} command(s) ready"
            check_action = self.settings.actions.get(CHECK_ACTION)
            if check_action is not None and not problems:
                detail = await self._run_check(check_action, problems) or detail
            if self._otherwise is not None:
                delegated = await self._otherwise.check()
                if not delegated.ok:
                    problems.append(f"otherwise (http): {delegated.detail}")
                else:
                    detail += f"; otherwise http: {delegated.detail}"
        except Exception as error:  # a check never raises: it reports
            return self.checked(False, self._scrub(f"check failed: {error}"))
        return self.checked(not problems, "; ".join(problems) or detail)

    async def _run_check(self, action: CommandAction, problems: list[str]) -> str:
        what = f"{self.system} check"
        try:
            finished = await self._run(what, action, {}, {"STANCH_ACTION": CHECK_ACTION})
        except ApplicationError as error:
            problems.append(str(error))
            return ""
        stderr = self._scrub(_tail(finished.stderr, STDERR_KEPT_CHARS)) or "(nothing on stderr)"
        if finished.timed_out:
            problems.append(f"check: no answer within {action.timeout_s or self.settings.timeout_s:g} s")
        elif finished.returncode not in action.done:
            problems.append(f"check: exited {finished.returncode}: {stderr}")
        lines = finished.stdout.strip().splitlines()
        return self._scrub(f"check: {lines[0]}") if lines else "check passed"

    async def aclose(self) -> None:
        if self._otherwise is not None:
            await self._otherwise.aclose()
