"""Every input of the bad-input corpus (tests/bad_inputs.py), through the CLI and through the app.

A correct program gives a valid image of the right size or a clear message: never a traceback,
never a hang, and the server keeps serving. Each case is bounded in time; a summary table
(input, path, outcome, seconds) is printed at the end of the run and written to
test-artifacts/bad_inputs.md.

Files go through `upscale IN OUT` and the app's /upscale; bad numbers through `upscale --tile`,
`toygan`, `anomaly` and the app's /train_toygan and /ks_check. CLI cases run `srgan_core.cli.main`
in a process forked, per case, from a helper that imported the library once: the same code path,
exit status and stderr as `python -m srgan_core ...` (an uncaught exception prints its traceback
and exits 1, as the interpreter does) without paying the torch and scipy imports 50 times on a
busy machine. One real `python -m srgan_core upscale CORPUS OUT` over the whole corpus folder
checks the entry point itself.
"""
from __future__ import annotations

import json
import math
import os
import re
import select
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from app_server import ROOT, START_TIMEOUT_S, STOP_TIMEOUT_S, make_weights, running_app
from bad_inputs import EITHER, IMAGE, PARAM_CASES, REFUSED, SCALE, FileCase, ParamCase, file_cases, write_corpus
from srgan_core import images

CASE_TIMEOUT_S = 60.0  # per input and path: a few seconds is normal, a minute is a hang
FOLDER_TIMEOUT_S = 180.0
# What gradio_client raises when the app let an exception escape (no message for the user).
UNHANDLED = "raised an exception but has not enabled verbose error reporting"
LIMIT_WORDS = ("limit", "max", "too large", "too big", "exceed", "at most", "larger than")

CASES: list[FileCase] = []  # filled by the corpus fixture
FILE_IDS = [c.name for c, _ in file_cases(images.MAX_INPUT_PIXELS, images.MAX_INPUT_SIDE)]
CLI_PARAMS = [p for p in PARAM_CASES if p.path == "cli"]
APP_PARAMS = [p for p in PARAM_CASES if p.path == "app"]


# ----------------------------------------------------------------------------- the summary table


@dataclass
class Row:
    input: str
    path: str
    expect: str
    outcome: str
    seconds: float
    detail: str


ROWS: list[Row] = []


class SummaryTable:
    """A plugin object registered while this module runs: prints ROWS in the terminal summary."""

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not ROWS:
            return
        terminalreporter.section("bad-input corpus: input / path / outcome / seconds")
        for line in table_lines():
            terminalreporter.write_line(line)


def table_lines() -> list[str]:
    lines = [f"{'input':<28} {'path':<24} {'expect':<8} {'outcome':<9} {'s':>6}  detail"]
    for r in ROWS:
        lines.append(f"{r.input[:28]:<28} {r.path:<24} {r.expect:<8} {r.outcome:<9} {r.seconds:>6.2f}  {r.detail[:90]}")
    return lines


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    plugin = SummaryTable()
    request.config.pluginmanager.register(plugin, "bad-input-summary")
    yield
    out = ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / "bad_inputs.md").write_text("```\n" + "\n".join(table_lines()) + "\n```\n")


def record(name: str, path: str, expect: str, outcome: str, seconds: float, detail: str) -> None:
    detail = re.sub(r"(?:/[^\s/:'\"]+)+/", "", " ".join(detail.split()))  # folders of temporary paths
    ROWS.append(Row(name, path, expect, outcome, seconds, detail))


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    CASES[:] = write_corpus(folder, images.MAX_INPUT_PIXELS, images.MAX_INPUT_SIDE)
    assert len(CASES) + len(PARAM_CASES) >= 25
    return folder


def case_named(name: str) -> FileCase:
    return next(c for c in CASES if c.name == name)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    """Tiny random-init generators under the bundled names: the tests check behaviour on bad
    input, not picture quality, so they need not wait for trained weights."""
    return make_weights(tmp_path_factory.mktemp("weights"))


def child_env(weights_dir: Path) -> dict[str, str]:
    env = dict(os.environ, SRGAN_WEIGHTS_DIR=str(weights_dir), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


# ----------------------------------------------------------------------------- the CLI path

RUNNER = r"""
import json, os, sys, time, traceback
import scipy.stats, srgan_core.anomaly, srgan_core.cli, srgan_core.toygan, srgan_core.upscale  # slow imports, once
print("ready", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child behaves as `python -m srgan_core ARGV` would
        for fd, name in ((1, req["stdout"]), (2, req["stderr"])):
            os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        sys.argv = ["srgan_core", *req["argv"]]
        code = 1
        try:
            code = srgan_core.cli.main(req["argv"])
        except SystemExit as e:
            if e.code is None or isinstance(e.code, int):
                code = e.code or 0
            else:  # sys.exit("message"): printed, status 1
                print(e.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(int(code or 0))
    rc = None
    while time.monotonic() - t0 < req["timeout"]:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            rc = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.02)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    print(json.dumps({"rc": rc, "seconds": time.monotonic() - t0}), flush=True)
"""


class CliRunner:
    def __init__(self, env: dict[str, str], workdir: Path):
        self.workdir = workdir
        self.proc = subprocess.Popen([sys.executable, "-c", RUNNER], cwd=ROOT, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._line(120) == "ready", "the CLI runner did not start"
        self.count = 0

    def _line(self, timeout: float) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"CLI runner gave no answer within {timeout:.0f} s")
        return self.proc.stdout.readline().strip()

    def run(self, argv: list[str], timeout: float = CASE_TIMEOUT_S) -> tuple[int | None, str, str, float]:
        """(exit status or None on timeout, stdout, stderr, seconds)."""
        self.count += 1
        out, err = self.workdir / f"{self.count}.out", self.workdir / f"{self.count}.err"
        request = {"argv": argv, "timeout": timeout, "stdout": str(out), "stderr": str(err)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self._line(timeout + 30))
        return answer["rc"], out.read_text(errors="replace"), err.read_text(errors="replace"), answer["seconds"]

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cli(weights_dir, tmp_path_factory):
    runner = CliRunner(child_env(weights_dir), tmp_path_factory.mktemp("cli-logs"))
    yield runner
    runner.close()


def looks_clear(message: str) -> bool:
    """A message a user can act on: some words, no traceback, no unhandled-error stand-in."""
    return "Traceback" not in message and UNHANDLED not in message and len(message.strip()) >= 10


def names_a_limit(message: str) -> bool:
    digits = re.sub(r"[,_ \u202f]", "", message)
    numbers = (str(images.MAX_INPUT_PIXELS), str(images.MAX_INPUT_SIDE), f"{images.MAX_INPUT_PIXELS / 1e6:.1f}")
    return any(n in digits for n in numbers) or any(w in message.lower() for w in LIMIT_WORDS)


def check_image(path: Path, case: FileCase) -> str:
    """'' if `path` is the right upscaled image for `case`, else what is wrong."""
    try:
        with Image.open(path) as im:
            im.load()
            size, mode = im.size, im.mode
    except Exception as exc:  # any failure to read the output is the finding
        return f"output unreadable: {exc}"
    want = (case.size[0] * SCALE, case.size[1] * SCALE)
    want_mode = "RGBA" if case.alpha else "RGB"
    if size != want or mode != want_mode:
        return f"output {size[0]}x{size[1]} {mode}, expected {want[0]}x{want[1]} {want_mode}"
    return ""


@pytest.mark.parametrize("name", FILE_IDS)
def test_cli_file(cli, corpus, tmp_path, name):
    case = case_named(name)
    out = tmp_path / "out.png"
    rc, stdout, stderr, seconds = cli.run(["upscale", str(corpus / name), str(out)])
    outcome, detail = classify_cli(rc, stderr, out, case)
    record(name, "cli upscale", case.expect, outcome, seconds, detail or stdout)
    assert outcome != "hang", f"{name}: no answer within {CASE_TIMEOUT_S:.0f} s"
    assert "Traceback" not in stderr, f"{name}: traceback on stderr:\n{stderr}"
    if case.expect == IMAGE:
        assert outcome == "image", f"{name} ({case.what}): {detail}"
    elif case.expect == REFUSED:
        assert outcome == "refused", f"{name} ({case.what}): {detail or 'not refused'}"
        assert not out.exists(), "a refused input left an output file"
    else:
        assert outcome in ("image", "refused"), f"{name} ({case.what}): {detail}"
    if outcome == "refused":
        assert name in stderr, f"the message does not name the file: {stderr!r}"
        if name.startswith(("over_", "bomb")):
            assert names_a_limit(stderr), f"the message does not name the limit: {stderr!r}"


def classify_cli(rc: int | None, stderr: str, out: Path, case: FileCase | None) -> tuple[str, str]:
    if rc is None:
        return "hang", f"killed after {CASE_TIMEOUT_S:.0f} s"
    if "Traceback" in stderr:
        return "crash", stderr.strip().splitlines()[-1]
    if rc == 0:
        if case is None or not out.exists():
            return ("image", "") if out.exists() else ("wrong", "exit 0 but no output file")
        problem = check_image(out, case)
        return ("wrong", problem) if problem else ("image", "")
    lines = stderr.strip().splitlines()
    if looks_clear(stderr) and lines and "error:" in lines[-1]:  # one error line (argparse: after its usage)
        return "refused", lines[-1]
    return "unclear", f"exit {rc}: {stderr.strip()[:200]!r}"


@pytest.mark.parametrize("param", CLI_PARAMS, ids=[p.name for p in CLI_PARAMS])
def test_cli_param(cli, corpus, tmp_path, param: ParamCase):
    out = tmp_path / "out.png"
    command = param.endpoint
    argv = [command, str(corpus / "rgba.png"), str(out)] if command == "upscale" else [command]
    rc, stdout, stderr, seconds = cli.run([*argv, *param.args])
    case = case_named("rgba.png") if param.expect == IMAGE else None
    outcome, detail = classify_cli(rc, stderr, out, case)
    if command != "upscale" and outcome == "wrong":  # exit 0 from a command that writes no image
        outcome, detail = "accepted", stdout.strip().splitlines()[-1] if stdout.strip() else ""
    record(param.name, f"cli {command}", param.expect, outcome, seconds, detail or stdout)
    assert outcome not in ("hang", "crash", "unclear", "wrong"), f"{param.what}: {detail}"
    if param.expect == REFUSED:
        assert outcome == "refused" and not out.exists(), f"{param.what}: accepted ({detail})"
        option = [a for a in param.args if str(a).startswith("--")][-1].split("=")[0].lstrip("-").replace("-", "_")
        assert option.split("_")[0] in stderr.replace("-", "_"), f"the message does not name {option}: {stderr!r}"
    elif param.expect == IMAGE:
        assert outcome == "image", f"{param.what}: {detail}"


def test_cli_folder_entry_point(corpus, weights_dir, tmp_path):
    """The real `python -m srgan_core upscale CORPUS OUT`: every file is tried, bad ones are
    reported one line each, and the run ends with a count and a non-zero status."""
    t0 = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "srgan_core", "upscale", str(corpus), str(tmp_path / "out")],
                              cwd=ROOT, env=child_env(weights_dir), capture_output=True, text=True,
                              timeout=FOLDER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        record("(corpus folder)", "cli upscale DIR", "-", "hang", time.monotonic() - t0, "")
        pytest.fail(f"python -m srgan_core upscale on the corpus folder took over {FOLDER_TIMEOUT_S:.0f} s")
    seconds = time.monotonic() - t0
    files = sorted(p.name for p in corpus.iterdir())
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    record("(corpus folder)", "cli upscale DIR", "-", f"exit {done.returncode}", seconds,
           done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-200:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 1, done.stderr[-3000:]
    refused = [c.name for c in CASES if c.expect == REFUSED] + ["manifest.json"]
    for name in refused:
        assert any(name in line for line in errors), f"no error line for {name}:\n{done.stderr[-3000:]}"
    either = sum(1 for c in CASES if c.expect == EITHER)
    assert len(refused) <= len(errors) <= len(refused) + either
    assert f"of {len(files)} images upscaled" in done.stdout


# ----------------------------------------------------------------------------- the app path


class BackgroundApp(threading.Thread):
    """`python app.py` started while the CLI cases run: its start-up (torch, gradio) overlaps them."""

    def __init__(self, env: dict[str, str]):
        super().__init__(daemon=True)
        self.env, self.url, self.error = env, None, None
        self.ready, self.done = threading.Event(), threading.Event()

    def run(self) -> None:
        try:
            with running_app(env=self.env) as url:
                self.url = url
                self.ready.set()
                self.done.wait()
        except BaseException as exc:  # reported to the test that needs the server
            self.error = exc
            self.ready.set()


@pytest.fixture(scope="module", autouse=True)
def background_app(weights_dir):
    app = BackgroundApp({"SRGAN_WEIGHTS_DIR": str(weights_dir)})
    app.start()
    yield app
    app.done.set()
    app.join(timeout=STOP_TIMEOUT_S * 2 + 5)


@pytest.fixture(scope="module")
def app_url(background_app) -> str:
    assert background_app.ready.wait(START_TIMEOUT_S + 30), "app.py did not start"
    if background_app.error is not None:
        raise background_app.error
    return background_app.url


@pytest.fixture(scope="module")
def client(app_url, tmp_path_factory) -> Client:
    return Client(app_url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def server_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/config", timeout=10) as r:
            return r.status == 200
    except OSError:
        return False


def call_app(client: Client, endpoint: str, args: tuple) -> tuple[str, object, float]:
    """('ok', result) | ('error', message) | ('hang', None), and the seconds it took."""
    t0 = time.monotonic()
    job = client.submit(*args, api_name=endpoint)
    try:
        result = job.result(timeout=CASE_TIMEOUT_S)
        return "ok", result, time.monotonic() - t0
    except FutureTimeout:
        job.cancel()
        return "hang", None, time.monotonic() - t0
    except Exception as exc:  # AppError, or the upload itself refused; the message is the finding
        return "error", f"{type(exc).__name__}: {exc}", time.monotonic() - t0


def call_http(url: str, endpoint: str, args: tuple) -> tuple[str, object, float]:
    """The same call over the app's plain HTTP API (POST /gradio_api/call/NAME, then read its event
    stream), with the body written by Python's json module: NaN and Infinity go out as the bare
    literals many JSON writers produce. gradio_client refuses to send them at all, and a browser
    sends null, so this is how non-finite numbers reach the server."""
    t0 = time.monotonic()
    name = endpoint.lstrip("/")
    body = json.dumps({"data": list(args)}).encode()
    request = urllib.request.Request(f"{url}/gradio_api/call/{name}", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=CASE_TIMEOUT_S) as r:
            event_id = json.loads(r.read())["event_id"]
        with urllib.request.urlopen(f"{url}/gradio_api/call/{name}/{event_id}", timeout=CASE_TIMEOUT_S) as r:
            event = None
            for raw in r:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    data = json.loads(line[5:])
                    if event == "complete":
                        return "ok", data, time.monotonic() - t0
                    message = data.get("error") if isinstance(data, dict) else data
                    return "error", f"AppError: {message or UNHANDLED}", time.monotonic() - t0
                if time.monotonic() - t0 > CASE_TIMEOUT_S:
                    break
        return "hang", None, time.monotonic() - t0
    except urllib.error.HTTPError as exc:  # refused before it was queued, e.g. 422
        return "error", f"HTTP {exc.code}: {exc.read()[:300].decode('utf-8', 'replace')}", time.monotonic() - t0
    except TimeoutError:
        return "hang", None, time.monotonic() - t0


def classify_app_error(message: str) -> tuple[str, str]:
    text = message.split(": ", 1)[1] if ": " in message else message
    if UNHANDLED in text:
        return "crash", "unhandled exception (the user sees a generic error)"
    if not looks_clear(text):
        return "unclear", text[:200]
    return "refused", text


@pytest.mark.parametrize("name", FILE_IDS)
def test_app_file(client, app_url, corpus, name):
    case = case_named(name)
    kind, value, seconds = call_app(client, "/upscale", (handle_file(str(corpus / name)), "srgan_x4"))
    if kind == "ok":
        *_, sr_path = value  # the app's outputs end with the model's output file
        problem = check_image(Path(sr_path), case)
        outcome, detail = ("wrong", problem) if problem else ("image", "")
    elif kind == "hang":
        outcome, detail = "hang", f"no answer within {CASE_TIMEOUT_S:.0f} s"
    else:
        outcome, detail = classify_app_error(value)
    record(name, "app /upscale", case.expect, outcome, seconds, detail)
    assert server_answers(app_url), f"the server stopped answering after {name}"
    assert outcome not in ("hang", "crash", "unclear", "wrong"), f"{name} ({case.what}): {outcome}: {detail}"
    if case.expect != EITHER:
        assert outcome == case.expect, f"{name} ({case.what}): {outcome} {detail}"
    if outcome == "refused" and name.startswith(("over_", "bomb")):
        assert names_a_limit(detail), f"the message does not name the limit: {detail!r}"


@pytest.mark.parametrize("param", APP_PARAMS, ids=[p.name for p in APP_PARAMS])
def test_app_param(client, app_url, param: ParamCase):
    finite = all(not isinstance(a, float) or math.isfinite(a) for a in param.args)
    if finite:
        path = f"app {param.endpoint}"
        kind, value, seconds = call_app(client, param.endpoint, param.args)
    else:
        path = f"app http {param.endpoint}"
        kind, value, seconds = call_http(app_url, param.endpoint, param.args)
    if kind == "ok":
        outcome, detail = "answered", ""
        if param.endpoint == "/ks_check":
            stats = value[-1]
            bad = [k for k in ("statistic", "p_value") if not (isinstance(stats[k], float) and math.isfinite(stats[k]))]
            outcome, detail = ("wrong", f"non-finite {bad}") if bad else ("answered", json.dumps(stats)[:90])
    elif kind == "hang":
        outcome, detail = "hang", f"no answer within {CASE_TIMEOUT_S:.0f} s"
    else:
        outcome, detail = classify_app_error(value)
    record(param.name, path, param.expect, outcome, seconds, detail)
    assert server_answers(app_url), f"the server stopped answering after {param.name}"
    assert outcome not in ("hang", "crash", "unclear", "wrong"), f"{param.what}: {outcome}: {detail}"
    if param.expect == REFUSED:
        assert outcome == "refused", f"{param.what}: accepted ({detail})"


def test_server_still_serves(client, app_url, tmp_path):
    """After the whole corpus, an ordinary request still gets an ordinary answer."""
    src = tmp_path / "fine.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(src)
    kind, value, seconds = call_app(client, "/upscale", (handle_file(str(src)), "srgan_x4"))
    record("(good 16x12 image)", "app /upscale", IMAGE, "image" if kind == "ok" else kind, seconds,
           "" if kind == "ok" else str(value))
    assert kind == "ok", value
    *_, sr_path = value  # the app's outputs end with the model's output file
    assert Image.open(sr_path).size == (64, 48)
    assert server_answers(app_url)
