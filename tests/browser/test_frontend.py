"""The example workflows as a user meets them: ComfyUI's real frontend (the comfyui-frontend-package ComfyUI pins)
in headless Chromium. Every UI workflow loads with no missing node and no page error, its graphToPrompt output is
its API twin input by input (before and after a run: no value drifts), no two nodes overlap and no title is cut,
and the demo workflows queued from the page complete."""
import json
import math
import time
from pathlib import Path

import pytest

from scripts.workflows import DEMO_SPECS, SPECS, ui_path
from tests.browser.frontend import ComfyServer, Page, find_chromium, open_frontend
from tests.comfy_harness import comfyui_found, comfyui_path

REPO = Path(__file__).resolve().parents[2]
NAMES = sorted(SPECS)
# page errors that are ComfyUI's, not the workflows': the core template index is a separate package
IGNORED_ERRORS = ("Error loading core workflow templates",)

LOAD = """async (wf, name) => {
  await app.loadGraphData(wf, true, true, name);
  const nodes = app.graph._nodes ?? app.graph.nodes;
  const ctx = app.canvas.ctx;
  ctx.save(); ctx.font = app.canvas.title_text_font || LiteGraph.NODE_TEXT_SIZE + 'px Arial';
  const info = nodes.map(n => ({id: n.id, type: n.type, title: n.title, pos: [...n.pos], size: [...n.size],
                                registered: !!LiteGraph.registered_node_types[n.type],
                                titleWidth: ctx.measureText(n.title || '').width}));
  ctx.restore();
  const {output} = await app.graphToPrompt();
  return {nodes: info, output, titleHeight: LiteGraph.NODE_TITLE_HEIGHT};
}"""

QUEUE = """async () => await app.queuePrompt(0, 1)"""


@pytest.fixture(scope="module")
def frontend():
    if not comfyui_found():
        pytest.skip(f"no ComfyUI at {comfyui_path()}: the browser test needs it")
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium (apt-get install chromium): the browser test is skipped")
    server = ComfyServer(comfyui_path())
    page = None
    try:
        server.wait_ready()
        page = Page(chromium)
        open_frontend(server, page)
        yield server, page
    finally:
        if page is not None:
            page.close()
        server.close()


def page_errors(page: Page) -> list[str]:
    errors = [e for e in page.errors if not any(i in e for i in IGNORED_ERRORS)]
    page.errors.clear()
    return errors


def same_value(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-6,
                                                                                           abs_tol=1e-9)
    return a == b


def differences(output: dict, api: dict) -> list[str]:
    """Where the frontend's prompt differs from the API twin, node by node and input by input."""
    diffs = []
    if set(output) != set(api):
        diffs.append(f"nodes {sorted(output)} vs {sorted(api)}")
    for node_id in sorted(set(output) & set(api)):
        got, want = output[node_id], api[node_id]
        if got["class_type"] != want["class_type"]:
            diffs.append(f"node {node_id}: {got['class_type']} vs {want['class_type']}")
        for name in sorted(set(got["inputs"]) | set(want["inputs"])):
            a, b = got["inputs"].get(name, "<missing>"), want["inputs"].get(name, "<missing>")
            if not same_value(a, b):
                diffs.append(f"node {node_id} ({want['class_type']}) input {name}: {a!r} vs {b!r}")
    return diffs


def overlaps(nodes: list[dict], title_height: float) -> list[str]:
    boxes = [(n, n["pos"][0], n["pos"][1] - title_height, n["pos"][0] + n["size"][0],
              n["pos"][1] + n["size"][1]) for n in nodes]
    found = []
    for i, (a, ax0, ay0, ax1, ay1) in enumerate(boxes):
        for b, bx0, by0, bx1, by1 in boxes[i + 1:]:
            if ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1:
                found.append(f"{a['title']} (#{a['id']}) and {b['title']} (#{b['id']})")
    return found


def api_twin(name: str) -> dict:
    return json.loads((REPO / "workflows" / "api" / f"{name}.json").read_text())


def check_loaded(page: Page, name: str) -> dict:
    path = ui_path(name)
    ui = json.loads(path.read_text())
    api = api_twin(name)
    state = page.call(LOAD, ui, path.stem)
    missing = [n["type"] for n in state["nodes"] if not n["registered"]]
    assert not missing, f"{path.name}: missing nodes {missing}"
    assert not page_errors(page), f"{path.name}: page errors"
    diffs = differences(state["output"], api)
    assert not diffs, f"{path.name}: graphToPrompt differs from its API twin:\n" + "\n".join(diffs)
    assert not overlaps(state["nodes"], state["titleHeight"]), f"{path.name}: overlapping nodes"
    cut = [n["title"] for n in state["nodes"] if n["titleWidth"] + 2 * state["titleHeight"] > n["size"][0]]
    assert not cut, f"{path.name}: titles wider than their node: {cut}"
    return state


def test_every_ui_workflow_has_an_api_twin():
    ui = sorted(p.name for p in (REPO / "example_workflows").glob("*.json"))
    assert ui == sorted(ui_path(n).name for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_workflow_loads_as_its_api_twin_with_no_overlap(frontend, name):
    check_loaded(frontend[1], name)


@pytest.mark.parametrize("name", sorted(DEMO_SPECS))
def test_demo_workflow_queued_from_the_page_completes_and_nothing_drifts(frontend, name):
    server, page = frontend
    path = ui_path(name)
    check_loaded(page, name)
    before = set(server.get("/api/history"))
    page.call(QUEUE)
    deadline = time.time() + 600
    while time.time() < deadline:
        runs = {k: v for k, v in server.get("/api/history").items() if k not in before}
        if runs and all(r.get("status", {}).get("completed") or r.get("status", {}).get("status_str") == "error"
                        for r in runs.values()):
            break
        time.sleep(1)
    assert len(runs) == 1, f"{path.name}: {len(runs)} prompts ran; page errors {page.errors}\n{server.log_tail()}"
    status = next(iter(runs.values()))["status"]
    assert status["status_str"] == "success", f"{path.name}: {status}\n{server.log_tail()}"
    # after the run: the same prompt (no seed drifted), and image previews grew over nothing
    time.sleep(1.0)  # the previews load and the nodes resize
    state = page.call("""async () => {
      const nodes = app.graph._nodes ?? app.graph.nodes;
      const {output} = await app.graphToPrompt();
      return {output, nodes: nodes.map(n => ({id: n.id, title: n.title, pos: [...n.pos], size: [...n.size]})),
              titleHeight: LiteGraph.NODE_TITLE_HEIGHT};
    }""")
    diffs = differences(state["output"], api_twin(name))
    assert not diffs, f"{path.name}: after a run:\n" + "\n".join(diffs)
    assert not overlaps(state["nodes"], state["titleHeight"]), f"{path.name}: overlapping nodes after a run"
    assert not page_errors(page)


def test_template_browser_lists_every_workflow_by_title_with_its_thumbnail(frontend):
    import urllib.parse
    import urllib.request

    server, _ = frontend
    listed = server.get("/api/workflow_templates").get("comfyui-attention-edit", [])
    assert sorted(listed) == sorted(ui_path(n).stem for n in NAMES)
    for title in listed:
        url = f"{server.url}/api/workflow_templates/comfyui-attention-edit/{urllib.parse.quote(title)}.jpg"
        with urllib.request.urlopen(url) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg", title
