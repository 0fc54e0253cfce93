"""`actorproxy settings`: read and change the settings file, its secrets and its key.

    actorproxy settings -c proxy.yaml get KEY
    actorproxy settings -c proxy.yaml set KEY VALUE          (--secret: the value from stdin or a prompt)
    actorproxy settings -c proxy.yaml has KEY | all | forget KEY | tree
    actorproxy settings -c proxy.yaml key:generate [--force] [--show] [--cipher C]
    actorproxy settings -c proxy.yaml encrypt [--key K] [--cipher C] [--force] [--readable] [--prune]
    actorproxy settings -c proxy.yaml decrypt [--key K] [--cipher C] [--force] [--path DIR] [--filename F]

Rules:
- KEY is a variable name in upper case (`UPSTREAM_TOKEN`, for `${secret:UPSTREAM_TOKEN}`) or a dot path of
  the configuration (`services.0.listeners.0.address`), stored as the `ACTORPROXY__...` variable that
  overrides it.
- `set` and `forget` with `-c` load the configuration with the changed file first: a change that makes it
  invalid is refused and the file is left as it was. Then the file is written (whole or not at all), the
  running server reloads when a changed key can be applied by a reload: through its admin API when the
  configuration has an `admin` listener (the answer says whether the reload applied; a refusal fails the
  command), else by SIGHUP to the process in `pid_file`; the keys that need a restart are named, and the
  `hooks.after_set` commands run with the changed keys in `ACTORPROXY_CHANGED_KEYS`; a hook that fails
  makes the command fail.
- A secret is never printed except by `get`, which is asked for it by name; errors are redacted.
- `encrypt` and `decrypt` are Laravel's `env:encrypt` and `env:decrypt` for the settings file:
  `<file>.encrypted`, the same options, the same payloads.

Exit status: 0 done (`has`: the key is set); 1 refused or failed (`has`: not set); 2 a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from actorproxy.config import (
    DEFAULT_SETTINGS_FILE,
    ConfigError,
    Leaf,
    ServerConf,
    SettingsPlace,
    changed_paths,
    explain_conf,
    find_settings,
    key_for_variable,
    load_explained,
    variable_for_key,
)
from actorproxy.declared import applies_live, build_proxy
from actorproxy.server import Server
from actorproxy.settings import (
    CIPHERS,
    DEFAULT_CIPHER,
    KEY_VARIABLE,
    REDACTED,
    Encrypter,
    Keyring,
    SettingsError,
    SettingsFile,
    appears_encrypted,
    check_name,
    format_key,
    generate_key,
    keyring_from_env,
    parse_key,
    quote,
    read_key_file,
    redact,
    write_atomically,
    write_key_file,
)

__all__ = ["ENCRYPTION_KEY_VARIABLE", "settings_main"]

#: Where `decrypt` takes its key from when `--key` is not given (Laravel: LARAVEL_ENV_ENCRYPTION_KEY).
ENCRYPTION_KEY_VARIABLE = "ACTORPROXY_ENV_ENCRYPTION_KEY"
# The suffix `env:encrypt` gives the encrypted file.
ENCRYPTED_SUFFIX = ".encrypted"


class _Refused(Exception):
    """The command cannot do what was asked; the message says why (exit status 1)."""


@attrs.frozen
class _Context:
    """What every subcommand works on: the settings file's place, and the configuration file if any."""

    place: SettingsPlace
    conf_path: str | None
    env: Mapping[str, str]

    @property
    def settings_path(self) -> str:
        assert self.place.path is not None  # _context always finds a settings file
        return self.place.path

    def read(self) -> SettingsFile:
        return SettingsFile.read(self.settings_path)

    def keyring(self) -> Keyring:
        keyring = keyring_from_env(self.env)
        key_file = self.place.key_file
        if keyring is None and key_file is not None and os.path.lexists(key_file):
            keyring = read_key_file(key_file)
        if keyring is None:
            where = f" or create {key_file}" if key_file else ""
            raise _Refused(f"no key: set {KEY_VARIABLE}{where} with `actorproxy settings key:generate`")
        return keyring

    def encrypter(self) -> Encrypter:
        return self.keyring().encrypter(self.place.cipher)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actorproxy settings",
        description="Read and change the settings file (dotenv), its encrypted secrets and its key.",
    )
    parser.add_argument("-c", "--conf", help="the configuration file; the settings file is found from it")
    parser.add_argument(
        "--file", help=f"the settings file, without a configuration (default {DEFAULT_SETTINGS_FILE})"
    )
    parser.add_argument("--key-file", help="the key file (default: the configuration's settings.key_file)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("get", help="print a value (decrypted)").add_argument("key")
    setter = commands.add_parser("set", help="set a value; with -c, check, write, reload, run the hooks")
    setter.add_argument("key")
    setter.add_argument("value", nargs="?")
    setter.add_argument(
        "--secret", action="store_true", help="encrypt it; the value comes from stdin or a prompt"
    )
    setter.add_argument("--no-reload", action="store_true", help="do not signal the running server")
    commands.add_parser("has", help="exit 0 if the key is set, 1 if not").add_argument("key")
    commands.add_parser("all", help="every variable of the file (secrets shown as ••••)")
    forget = commands.add_parser("forget", help="remove a value; with -c, as set")
    forget.add_argument("key")
    forget.add_argument("--no-reload", action="store_true", help="do not signal the running server")
    tree = commands.add_parser("tree", help="the effective configuration, each value with where it came from")
    tree.add_argument("--no-defaults", action="store_true", help="leave out the values nobody set")
    generate = commands.add_parser("key:generate", help="write a new key to the key file")
    generate.add_argument("--cipher", choices=CIPHERS, help="the cipher the key is for")
    generate.add_argument("--show", action="store_true", help="print the key instead of writing it")
    generate.add_argument(
        "--force", action="store_true", help="replace the key (the old one stays a previous key)"
    )
    encrypt = commands.add_parser("encrypt", help=f"write the whole file encrypted to FILE{ENCRYPTED_SUFFIX}")
    encrypt.add_argument("--key", help="the encryption key (default: a new one, printed)")
    encrypt.add_argument("--cipher", choices=CIPHERS, default=DEFAULT_CIPHER)
    encrypt.add_argument("--force", action="store_true", help="overwrite the encrypted file")
    encrypt.add_argument("--readable", action="store_true", help="encrypt each value, keeping the names")
    encrypt.add_argument("--prune", action="store_true", help="delete the plain file afterwards")
    decrypt = commands.add_parser("decrypt", help=f"write FILE{ENCRYPTED_SUFFIX} back decrypted")
    decrypt.add_argument(
        "--key", help=f"the encryption key (default: {ENCRYPTION_KEY_VARIABLE}, or a prompt)"
    )
    decrypt.add_argument("--cipher", choices=CIPHERS, default=DEFAULT_CIPHER)
    decrypt.add_argument("--force", action="store_true", help="overwrite the plain file")
    decrypt.add_argument("--path", help="the directory to write to (default: the settings file's)")
    decrypt.add_argument("--filename", help="the name to write (default: the settings file's)")
    return parser


def settings_main(args: Sequence[str], env: Mapping[str, str] = os.environ) -> int:
    """Run `actorproxy settings ARGS`; return the exit status."""
    parser = _parser()
    options = parser.parse_args(args)
    if options.conf and options.file:
        parser.error("give -c FILE or --file SETTINGS, not both")
    commands: dict[str, Callable[[_Context, argparse.Namespace], int]] = {
        "get": _get,
        "set": _set,
        "has": _has,
        "all": _all,
        "forget": _forget,
        "tree": _tree,
        "key:generate": _generate,
        "encrypt": _encrypt,
        "decrypt": _decrypt,
    }
    try:
        context = _context(options, env)
        return commands[options.command](context, options)
    except (_Refused, SettingsError, ConfigError, OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.filename is None and exc.strerror else exc
        print(f"actorproxy settings: {redact(str(reason))}", file=sys.stderr)
        return 1


def _context(options: argparse.Namespace, env: Mapping[str, str]) -> _Context:
    if options.conf:
        place = find_settings(options.conf, env=env)
    else:
        place = SettingsPlace(os.path.abspath(options.file or DEFAULT_SETTINGS_FILE), None)
    if options.key_file:
        place = attrs.evolve(place, key_file=os.path.abspath(options.key_file))
    return _Context(place, options.conf, env)


def _name(key: str) -> str:
    """The variable of the settings file that KEY names (see the module rules)."""
    if key.isupper() or key.startswith("_"):
        return check_name(key)
    return variable_for_key(key)


# -- reading -----------------------------------------------------------------------------------------------


def _get(context: _Context, options: argparse.Namespace) -> int:
    name = _name(options.key)
    settings = context.read()
    if settings.get(name) is None:
        raise _Refused(f"{options.key} is not set in {settings.path}")
    encrypter = context.encrypter() if settings.is_encrypted(name) else None
    print(settings.decrypted(name, encrypter))
    return 0


def _has(context: _Context, options: argparse.Namespace) -> int:
    return 0 if context.read().get(_name(options.key)) is not None else 1


def _all(context: _Context, options: argparse.Namespace) -> int:
    for name, value in context.read().values().items():
        key = key_for_variable(name)
        shown = REDACTED if appears_encrypted(value) else redact(value)
        print(f"{name}={shown}" + (f"    # {key}" if key else ""))
    return 0


def _tree(context: _Context, options: argparse.Namespace) -> int:
    if context.conf_path is None:
        raise _Refused("tree shows the effective configuration: give it with -c FILE")
    leaves = explain_conf(load_explained(context.conf_path, env=context.env))
    if options.no_defaults:
        leaves = [leaf for leaf in leaves if leaf.origin != "default"]
    for line in render_tree(leaves):
        print(line)
    return 0


def render_tree(leaves: Sequence[Leaf]) -> list[str]:
    """The leaves as an indented tree, each value followed by where it came from."""
    lines: list[str] = []
    shown: tuple[Any, ...] = ()
    for leaf in leaves:
        parents = leaf.parts[:-1]
        common = 0
        while common < min(len(parents), len(shown)) and parents[common] == shown[common]:
            common += 1
        for depth in range(common, len(parents)):
            lines.append(f"{'  ' * depth}{_label(parents[depth])}:")
        shown = parents
        label = _label(leaf.parts[-1]) if leaf.parts else "(root)"
        text = f"{'  ' * len(parents)}{label}: {_scalar(leaf.value)}"
        origin = leaf.origin
        for reference in leaf.references:
            origin += f", {reference.text} from {reference.found_in}"
        if leaf.secret:
            origin += ", secret"
        lines.append(f"{text:<60} # {origin}")
    return lines


def _label(part: object) -> str:
    return f"[{part}]" if isinstance(part, int) else str(part)


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return "''"
    return str(value)


# -- changing ----------------------------------------------------------------------------------------------


def _set(context: _Context, options: argparse.Namespace) -> int:
    name = _name(options.key)
    settings = context.read()
    if options.secret:
        if options.value is not None:
            raise _Refused(
                "--secret reads the value from stdin or a prompt, so it stays out of shell history"
            )
        value = _read_secret(options.key)
        changed = settings.with_value(name, value, context.encrypter())
    else:
        if options.value is None:
            raise _Refused(f"set {options.key}: give a VALUE, or --secret to type it")
        if settings.is_encrypted(name):
            raise _Refused(f"{options.key} is encrypted: set it with --secret, or forget it first")
        changed = settings.with_value(name, options.value)
    return _apply(context, settings, changed, options.key, options.no_reload)


def _forget(context: _Context, options: argparse.Namespace) -> int:
    name = _name(options.key)
    settings = context.read()
    if settings.get(name) is None:
        raise _Refused(f"{options.key} is not set in {settings.path}")
    return _apply(context, settings, settings.without(name), options.key, options.no_reload)


def _read_secret(key: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(f"{key}: ")
    value = sys.stdin.read()
    return value.removesuffix("\n").removesuffix("\r")


def _apply(context: _Context, before: SettingsFile, after: SettingsFile, key: str, no_reload: bool) -> int:
    """Check the configuration with `after`, write it, reload the running server, run the hooks."""
    if context.conf_path is None:
        after.save()
        print(f"{key}: saved in {after.path}")
        return 0
    old = _loaded_conf(context, before)
    try:
        new = load_explained(context.conf_path, env=context.env, settings_file=after).record
        # What only building finds (a certificate that does not load), as `actorproxy check` does.
        build_proxy(Server(new), new)
    except ConfigError as exc:
        raise _Refused(f"refused, {after.path} is unchanged: {exc}") from None
    after.save()
    print(f"{key}: saved in {after.path}")
    paths = changed_paths(old, new) if old is not None else []
    live = [path for path in paths if applies_live(path)]
    restart = [path for path in paths if not applies_live(path)]
    if old is not None and not paths:
        print("the effective configuration is unchanged")
    elif not no_reload and (live or old is None):
        said, refused = _reload(new)
        print(said)
        if refused:
            return 1
    if restart:
        print(f"needs a restart (or a graceful upgrade) to take effect: {', '.join(restart)}")
    return _run_hooks(new, context, [key], paths)


# Seconds to wait for the admin API's answer to a reload (a reload builds clusters; give it time).
ADMIN_RELOAD_TIMEOUT = 30.0


def _loaded_conf(context: _Context, settings: SettingsFile) -> ServerConf | None:
    assert context.conf_path is not None
    try:
        return load_explained(context.conf_path, env=context.env, settings_file=settings).record
    except ConfigError:
        return None  # the change is checked on its own; everything counts as changed


def _reload(conf: ServerConf) -> tuple[str, bool]:
    """Reload the running server: through its admin API when it has one (the answer says whether the
    reload applied), else by SIGHUP to the process in `conf.pid_file`. Returns what happened, and whether
    the server refused the change."""
    answer = _reload_through_admin(conf)
    if answer is not None:
        return answer
    pid = _server_pid(conf.pid_file)
    if pid is None:
        return (
            f"no running server (no live process in {conf.pid_file}): the change applies when it starts",
            False,
        )
    os.kill(pid, signal.SIGHUP)
    return f"sent SIGHUP to the server (pid {pid}): it reloads the configuration", False


def _reload_through_admin(conf: ServerConf) -> tuple[str, bool] | None:
    """POST the admin API's reload; None when there is no admin listener to reach (then SIGHUP)."""
    admin = conf.admin
    if admin is None or admin.listen.endswith(":0"):
        return None
    host, _, port = admin.listen.rpartition(":")
    host = host.strip("[]")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/api/reload"
    request = urllib.request.Request(
        url, method="POST", data=b"", headers={"X-Admin-Token": admin.token or "-"}
    )
    try:
        with urllib.request.urlopen(request, timeout=ADMIN_RELOAD_TIMEOUT) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return f"the admin API refused the reload ({exc.code}): {exc.read().decode(errors='replace')}", True
    except (OSError, ValueError):
        return None  # not listening (or not ours): the pid file's process gets SIGHUP instead
    if answer.get("ok"):
        return "reloaded through the admin API: the change applies now", False
    reasons = "; ".join(hook.get("message", "") for hook in answer.get("hooks", []) if not hook.get("ok"))
    return f"the server refused the reload and goes on with what it had: {reasons}", True


def _server_pid(pid_file: str) -> int | None:
    try:
        pid = int(Path(pid_file).read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by another user: SIGHUP will say whether we may signal it
    cmdline = Path(f"/proc/{pid}/cmdline")
    # A stale pid file can name a process that reused the pid: never signal one that is not ours.
    with contextlib.suppress(OSError):
        if b"actorproxy" not in cmdline.read_bytes():
            return None
    return pid


def _run_hooks(conf: ServerConf, context: _Context, keys: list[str], paths: list[str]) -> int:
    commands = conf.hooks.after_set
    if not commands:
        return 0
    env = dict(context.env)
    env.update(
        ACTORPROXY_CHANGED_KEYS=" ".join(keys),
        ACTORPROXY_CHANGED_PATHS=" ".join(paths),
        ACTORPROXY_SETTINGS_FILE=context.settings_path,
        ACTORPROXY_CONF=os.path.abspath(context.conf_path or ""),
    )
    failed = 0
    for command in commands:
        try:
            status = subprocess.run(command, shell=True, env=env, check=False).returncode
        except OSError as exc:
            print(f"actorproxy settings: hook {command!r} could not run: {exc}", file=sys.stderr)
            failed += 1
            continue
        if status != 0:
            print(f"actorproxy settings: hook {command!r} failed with exit status {status}", file=sys.stderr)
            failed += 1
    if failed:
        print(
            f"actorproxy settings: {failed} of {len(commands)} hooks failed; the change itself is saved",
            file=sys.stderr,
        )
        return 1
    return 0


# -- keys and whole-file encryption ------------------------------------------------------------------------


def _generate(context: _Context, options: argparse.Namespace) -> int:
    cipher = options.cipher or context.place.cipher
    key = generate_key(cipher)
    if options.show:
        print(format_key(key))
        return 0
    key_file = context.place.key_file
    if key_file is None:
        raise _Refused("no key file: give --key-file FILE, or -c with the configuration")
    previous: tuple[bytes, ...] = ()
    if os.path.lexists(key_file):
        if not options.force:
            raise _Refused(
                f"{key_file} exists; --force replaces the key (the old one is kept as a previous key)"
            )
        old = read_key_file(key_file)
        previous = (old.key, *old.previous)
    write_key_file(key_file, Keyring(key, previous))
    print(f"a new {cipher} key is in {key_file} (mode 0600)")
    if KEY_VARIABLE in context.env:
        print(f"note: {KEY_VARIABLE} is set, and takes precedence over the key file")
    return 0


def _encrypt(context: _Context, options: argparse.Namespace) -> int:
    source = context.settings_path
    target = source + ENCRYPTED_SUFFIX
    key = parse_key(options.key) if options.key else generate_key(options.cipher)
    if not os.path.exists(source):
        raise _Refused(f"settings file not found: {source}")
    if os.path.exists(target) and not options.force:
        raise _Refused(f"the encrypted file already exists: {target} (--force overwrites it)")
    encrypter = Encrypter(key, options.cipher)
    settings = SettingsFile.read(source)
    if options.readable:
        lines = [
            f"{name}={encrypter.encrypt_string(quote(value))}\n" for name, value in settings.values().items()
        ]
        encrypted = "".join(lines)
    else:
        encrypted = encrypter.encrypt(settings.text)
    write_atomically(target, encrypted.encode("ascii"), mode=0o644)
    if options.prune:
        os.unlink(source)
    print(f"encrypted: {target}")
    print(f"key: {options.key if options.key else format_key(key)}")
    print(f"cipher: {options.cipher}")
    return 0


def _decrypt(context: _Context, options: argparse.Namespace) -> int:
    text = options.key or context.env.get(ENCRYPTION_KEY_VARIABLE, "")
    if not text and sys.stdin.isatty():
        text = getpass.getpass("decryption key: ")
    if not text:
        raise _Refused(f"a decryption key is required: --key, or {ENCRYPTION_KEY_VARIABLE}")
    source = context.settings_path + ENCRYPTED_SUFFIX
    directory = options.path or os.path.dirname(context.settings_path)
    target = os.path.join(
        directory, (options.filename or os.path.basename(context.settings_path)).lstrip("/")
    )
    if target.endswith(ENCRYPTED_SUFFIX):
        raise _Refused(f"invalid file name {target}: it ends with {ENCRYPTED_SUFFIX}")
    if not os.path.exists(source):
        raise _Refused(f"encrypted settings file not found: {source}")
    if os.path.exists(target) and not options.force:
        raise _Refused(f"the settings file already exists: {target} (--force overwrites it)")
    encrypter = Encrypter(parse_key(text), options.cipher)
    encrypted = Path(source).read_text(encoding="utf-8")
    if appears_encrypted(encrypted.strip()):
        decrypted = encrypter.decrypt(encrypted.strip())
    else:  # the readable format: each value encrypted on its own
        lines = []
        for name, value in SettingsFile(source, encrypted).values().items():
            try:
                lines.append(f"{name}={encrypter.decrypt_string(value)}\n")
            except SettingsError as exc:
                raise _Refused(f"{name} in {source}: {exc}") from None
        decrypted = "".join(lines)
    write_atomically(target, decrypted.encode("utf-8"), mode=0o600)
    print(f"decrypted: {target}")
    return 0
