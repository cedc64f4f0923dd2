"""A burst of traffic against the real app on 127.0.0.1: 20 SR requests, 12 more that all send the
same image, and 5 toy-GAN trainings, submitted at the same moment, each from its own session
(benchmarks/load.py does the work). Every file of every answer must decode to the last pixel, and
the 12 identical requests must get identical images.

Every request must be answered (or politely refused) with the right result before the deadline,
the page must keep answering while the queue drains, and the server's resident memory must stay
under a stated bound. Latency percentiles are printed in the terminal summary and written to
test-artifacts/load.md. The server runs tiny random-init generators (SRGAN_WEIGHTS_DIR): this
checks queueing and memory, not picture quality, in well under a minute of load.
"""
from __future__ import annotations

import importlib.util
import json
import sys
import urllib.request

import pytest

from app_server import ROOT, make_weights, running_app

# benchmarks/ is not a package: load its driver by path (registered first, as dataclasses need)
spec = importlib.util.spec_from_file_location("benchmarks_load", ROOT / "benchmarks" / "load.py")
load = sys.modules["benchmarks_load"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(load)

SR_REQUESTS, IDENTICAL, TOY_TRAININGS = 20, 12, 5
SR_SIZE = 160  # inputs between 80 and 160 px a side: outputs up to 640x640
TOY_EPOCHS = 300  # the app takes about 400 snapshots per run at most: 300 epochs is about 5 s of CPU
DEADLINE_S = 150.0  # the whole burst; requests still open then count as unanswered
# Memory bound. SR jobs run one at a time (the app's SR concurrency limit is 1), so a burst may
# add only one SR job's images and activations, the queued uploads (on disk, not in memory) and
# the toy trainings (a few MB each) to what the idle server holds.
RSS_GROWTH_BOUND_MB = 512
RSS_BOUND_MB = 2048
PAGE_LATENCY_BOUND_S = 5.0

REPORT: list[str] = []


class LoadSummary:
    def pytest_terminal_summary(self, terminalreporter) -> None:
        if REPORT:
            terminalreporter.section("load: 20 SR requests + 12 identical ones + 5 toy trainings at once")
            for line in REPORT:
                terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, request):
    request.config.pluginmanager.register(LoadSummary(), "load-summary")
    folder = make_weights(tmp_path_factory.mktemp("weights"))
    with running_app(env={"SRGAN_WEIGHTS_DIR": str(folder)}) as url:
        yield url


def test_burst_is_answered_within_bounds(app_url):
    pid = load.server_pid(app_url)
    assert pid is not None, "cannot find the server process to measure its memory"
    report = load.run_load(app_url, sr=SR_REQUESTS, identical=IDENTICAL, toy=TOY_TRAININGS, sr_size=SR_SIZE, toy_epochs=TOY_EPOCHS,
                           deadline_s=DEADLINE_S, pid=pid)
    REPORT[:] = report.lines() + [f"bounds: RSS peak <= {RSS_BOUND_MB} MB and <= idle + {RSS_GROWTH_BOUND_MB} MB; "
                                  f"page answers within {PAGE_LATENCY_BOUND_S:.0f} s; burst within {DEADLINE_S:.0f} s"]
    out = ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / "load.md").write_text("```\n" + "\n".join(report.request_lines() + REPORT) + "\n```\n")
    (out / "load.json").write_text(json.dumps(report.to_dict(), indent=1))

    unanswered = [o for o in report.outcomes if o.status not in ("answered", "refused")]
    assert not unanswered, "requests not answered: " + "; ".join(f"{o.endpoint} {o.status}: {o.check}" for o in unanswered)
    wrong = [o for o in report.outcomes if o.status == "answered" and not o.ok]
    assert not wrong, "wrong answers: " + "; ".join(f"{o.endpoint}: {o.check}" for o in wrong)
    assert sum(o.status == "answered" for o in report.outcomes) >= SR_REQUESTS, "most of the burst was refused"
    same = [o for o in report.outcomes if o.kind == "sr"][-IDENTICAL:]
    assert all(o.status == "answered" and o.ok for o in same), [o.check for o in same]
    assert len({o.digest for o in same}) == 1 and same[0].digest

    assert report.page_failures == 0 and report.page_latency_max_s < PAGE_LATENCY_BOUND_S, \
        f"the page stopped answering under load: worst {report.page_latency_max_s:.1f} s, {report.page_failures} failures"
    assert report.rss_peak_mb <= RSS_BOUND_MB, f"server RSS peaked at {report.rss_peak_mb:.0f} MB"
    growth = report.rss_peak_mb - report.rss_baseline_mb
    assert growth <= RSS_GROWTH_BOUND_MB, f"server RSS grew by {growth:.0f} MB under load"

    with urllib.request.urlopen(app_url + "/config", timeout=10) as r:  # still up afterwards
        assert r.status == 200
