"""The smoke study as a person sees it: a real `mlflow server` on its store and headless Chromium
on the MLflow UI (the study's child runs in the runs table, a trial's sample grid in its Artifacts)."""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from study.tracking import GRID_KEY, ROLE

STUDY = "smoke"  # search_spaces/smoke.yaml's name: the experiment's name
# per UI step; about 10 s in all on an idle machine, but a loaded one (2 cores running
# other studies) takes minutes to parse the UI's JavaScript on the first page
FIRST_PAGE_MS = 240_000
STEP_MS = 90_000
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 # without these Chromium keeps calling home, which a sandboxed CI network punishes
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    """The system Chromium (never a downloaded one); skip where it or playwright is missing."""
    path = "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else shutil.which("chromium")
    if path is None:
        pytest.skip("no system Chromium (/usr/bin/chromium or `chromium` on PATH) to drive the MLflow UI")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright; no browser download needed)")
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ui_server(smoke_study, tmp_path):
    """`mlflow server` on the smoke study's store; yields its URL, then stops its process group."""
    port = free_port()
    log = open(tmp_path / "mlflow_server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{smoke_study / 'mlflow.db'}", "--workers", "1"],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # its imports alone take a minute or more on a loaded machine
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not come up:\n{(tmp_path / 'mlflow_server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        stop_group(proc)
        log.close()


def stop_group(proc: subprocess.Popen, grace_s: float = 30) -> None:
    """SIGTERM the process group this test started (its leader is `proc`), SIGKILL what is left after grace_s.

    Waiting for the server's own process is not enough: it starts job consumers (huey) in its group.
    """
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            time.sleep(0.2)
            proc.poll()  # reap the leader: a zombie would still count as a member below
            os.killpg(proc.pid, 0)  # raises once every member has exited
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def last_grid(client: MlflowClient, run_id: str) -> str | None:
    """The newest epoch's sample-grid PNG under the run's images/ (MLflow names it `<key>+step+<n>+...png`)."""
    pngs = [a.path.split("/")[-1] for a in client.list_artifacts(run_id, "images")
            if a.path.endswith(".png") and a.path.split("/")[-1].startswith(f"{GRID_KEY}+step+")]
    return max(pngs, key=lambda name: int(name.split("+")[2]), default=None)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # may include the session's smoke study (tests/conftest.py)
def test_the_smoke_study_in_the_mlflow_ui(smoke_study, ui_server, tmp_path):
    executable = chromium()
    from playwright.sync_api import sync_playwright

    # what a person should find, read from the store
    client = MlflowClient(f"sqlite:///{smoke_study / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(STUDY)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parent = next(r for r in runs if r.data.tags.get(ROLE) == "study")
    kids = sorted((r for r in runs if r.data.tags.get(ROLE) == "trial"), key=lambda r: r.info.run_name)
    assert kids, "the smoke study logged no child runs"
    kid, grid = next((k, g) for k in kids if (g := last_grid(client, k.info.run_id)) is not None)
    with Image.open(client.download_artifacts(kid.info.run_id, f"images/{grid}", str(tmp_path))) as png:
        width, height = png.size

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            # keep the AI-assistant side panel shut so it does not cover half of each screenshot
            context.add_init_script("localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
                                    "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true')")
            page = context.new_page()
            page.set_default_timeout(STEP_MS)
            try:
                walk_through(page, ui_server, experiment.experiment_id, parent, kids, kid, grid, (width, height),
                             tmp_path)
            except Exception:
                page.screenshot(path=tmp_path / "mlflow_ui_failure.png")  # what the page showed when a step failed
                raise
        finally:
            browser.close()


def walk_through(page, url: str, experiment_id: str, parent, kids: list, kid, grid: str, size: tuple[int, int],
                 tmp_path: Path) -> None:
    """The person's clicks: the study's runs, its trials under it, one trial's newest sample grid."""
    # (1) the experiment's runs table. MLflow 3.x opens an experiment on its GenAI overview (whose
    # "Detect Issues" pop-over then blocks every click); this is the page its "Model training" toggle opens.
    page.goto(f"{url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning", wait_until="domcontentloaded",
              timeout=FIRST_PAGE_MS)
    parent_link = page.get_by_role("link", name=parent.info.run_name, exact=True)
    parent_link.wait_for(timeout=FIRST_PAGE_MS)
    kid_links = [page.get_by_role("link", name=k.info.run_name, exact=True) for k in kids]
    if kid_links[0].count() == 0:  # the trials are nested under the study's row, collapsed: expand it
        row = page.get_by_role("row").filter(has=parent_link)
        row.get_by_role("gridcell").filter(has=parent_link).get_by_role("button").click()
    for link in kid_links:
        link.wait_for()  # every trial is listed under the study, by its run name
    page.screenshot(path=tmp_path / "mlflow_ui_experiment.png")

    # (2) a trial's page, then its newest sample grid in the Artifacts tab, decoded by the browser
    page.get_by_role("link", name=kid.info.run_name, exact=True).click()
    page.wait_for_url(f"**/runs/{kid.info.run_id}**")
    page.get_by_role("heading", name=kid.info.run_name).wait_for()
    page.get_by_role("tab", name="Artifacts").click()
    page.get_by_label("images", exact=True).click()  # the folder in the artifact tree
    page.get_by_label(grid, exact=True).click()
    image = page.get_by_alt_text(f"images/{grid}", exact=True)  # the preview pane
    image.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(), timeout=STEP_MS)
    assert tuple(image.evaluate("img => [img.naturalWidth, img.naturalHeight]")) == size  # the PNG, not a broken icon
    page.screenshot(path=tmp_path / "mlflow_ui_run.png")
